/**
 * The question a monitor asks its `create` (see askParent) when the container's createRuntime
 * hooks are due, followed by the container's state as JSON. A module of its own, so that the
 * monitor does not load `create` and what only `create` uses.
 */
export const HOOKS_QUESTION = 'createRuntime-hooks ';
