/**
 * Built-in modules the agent loads at first use instead of at start. The agent's heap is
 * saved in a startup snapshot (entry.ts), and Node does not vouch for child_process state
 * captured in a snapshot; loading it after the snapshot is restored sidesteps that.
 */
export function childProcess(): typeof import('node:child_process') {
  return process.getBuiltinModule('node:child_process');
}
