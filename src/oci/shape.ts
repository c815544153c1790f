/**
 * A small checker of JSON values against a table of shapes: the type of each field and the
 * range hull accepts, so that a configuration from a file, a shim request or a command line is
 * refused before anything is started, with one line naming the field (`mounts[2].source`) and
 * the value, cut short. Fields a table does not name are let through: the runtime-spec asks a
 * runtime to ignore properties it does not know.
 *
 * (A JSON Schema validator would read the runtime-spec's published schemas, but those give
 * types only, not hull's bounds or the words of the refusal, and none is a dependency here.)
 */

/** Checks `value`, found at `path`; throws a ShapeError if it does not fit. */
export type Shape = (value: unknown, path: string) => void;

export class ShapeError extends Error {
  constructor(
    readonly path: string,
    readonly value: unknown,
    readonly why: string,
  ) {
    // A list or an object is not shown: `why` gives its size where that is the fault.
    const shown =
      value === undefined || (typeof value === 'object' && value !== null) ? '' : ` ${cut(value)}`;
    super(`${path}${shown} ${why}`);
    this.name = 'ShapeError';
  }
}

/** Characters of a value shown in an error; a longer one ends in "…". */
export const SHOWN_CHARS = 60;

/** A value as JSON text, one line, at most SHOWN_CHARS characters (and an ellipsis). */
export function cut(value: unknown, max = SHOWN_CHARS): string {
  let shown: string;
  if (typeof value === 'string') {
    // Cut before quoting, so a megabyte string is never copied whole.
    shown = JSON.stringify(value.length > max ? value.slice(0, max) : value);
    if (value.length > max) shown = `${shown.slice(0, -1)}…"`;
    return shown;
  }
  shown = typeof value === 'number' ? String(value) : String(JSON.stringify(value));
  return shown.length > max ? `${shown.slice(0, max)}…` : shown;
}

/** A string for a message, not quoted, cut to `max` characters and an ellipsis. */
export function clip(s: string, max = SHOWN_CHARS): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/** A map key as it is written in a path: `linux.sysctl["net.ipv4.ip_forward"]`. */
const keyPath = (path: string, key: string) => `${path}[${cut(key, 40)}]`;

const typeName = (value: unknown) =>
  value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;

function expect(ok: boolean, path: string, value: unknown, why: string): void {
  if (!ok) throw new ShapeError(path, value, why);
}

export interface TextRules {
  /** Longest accepted, in UTF-16 units (what JSON.parse gives); the reason follows. */
  max: number;
  why: string;
  absolutePath?: boolean;
  nonEmpty?: boolean;
  /** A further rule, and what to write instead when it fails. */
  pattern?: RegExp;
  hint?: string;
}

export function text(rules: TextRules): Shape {
  return (value, path) => {
    expect(typeof value === 'string', path, value, `must be a string, not ${typeName(value)}`);
    const s = value as string;
    expect(s.length <= rules.max, path, value, `is ${s.length} characters long: ${rules.why}`);
    expect(!s.includes('\0'), path, value, 'holds a NUL byte, which no kernel interface takes');
    if (rules.nonEmpty) expect(s.length > 0, path, value, 'is empty');
    if (rules.absolutePath) expect(s.startsWith('/'), path, value, 'must be an absolute path (from /)');
    if (rules.pattern) expect(rules.pattern.test(s), path, value, rules.hint ?? 'is not valid');
  };
}

/**
 * A whole number from `min` to `max`; `hint` says what to give. Bounds above 2^53 are for
 * fields whose convention is 2^64 - 1 (RLIM_INFINITY): JSON numbers there are not exact.
 */
export function integer(min: number, max: number, hint: string, accept?: (n: number) => boolean): Shape {
  return (value, path) => {
    expect(typeof value === 'number', path, value, `must be a number, not ${typeName(value)}: ${hint}`);
    const n = value as number;
    const ok = Number.isInteger(n) && n >= min && n <= max && (accept?.(n) ?? true);
    expect(ok, path, value, `is out of range: ${hint}`);
  };
}

export const flag: Shape = (value, path) =>
  expect(typeof value === 'boolean', path, value, 'must be true or false');

export function oneOf(allowed: ReadonlySet<string>, hint: string): Shape {
  return (value, path) =>
    expect(typeof value === 'string' && allowed.has(value), path, value, `is not valid: ${hint}`);
}

export function listOf(item: Shape, limits: { max: number; why: string; min?: number }): Shape {
  return (value, path) => {
    expect(Array.isArray(value), path, value, `must be a list, not ${typeName(value)}`);
    const list = value as unknown[];
    expect(
      list.length <= limits.max,
      path,
      value,
      `has ${list.length} entries: at most ${limits.max} (${limits.why})`,
    );
    expect(
      list.length >= (limits.min ?? 0),
      path,
      value,
      list.length ? `needs ${limits.min} entries` : 'is empty',
    );
    for (const [index, entry] of list.entries()) item(entry, `${path}[${index}]`);
  };
}

/** An object whose named fields have the given shapes; `required` ones must be there. */
export function fields(table: Record<string, Shape>, required: readonly string[] = []): Shape {
  return (value, path) => {
    const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
    expect(isObject, path || 'the configuration', value, `must be an object, not ${typeName(value)}`);
    const object = value as Record<string, unknown>;
    for (const name of required) {
      if (object[name] === undefined) throw new ShapeError(join(path, name), undefined, 'is missing');
    }
    for (const [name, shape] of Object.entries(table)) {
      if (object[name] === undefined) continue;
      shape(object[name], join(path, name));
    }
  };
}

/** An object used as a map from names to values of one shape. */
export function mapOf(value: Shape, limits: { maxEntries: number; maxKey: number; why: string }): Shape {
  return (map, path) => {
    const isObject = map !== null && typeof map === 'object' && !Array.isArray(map);
    expect(isObject, path, map, `must map names to values, not be ${typeName(map)}`);
    const entries = Object.entries(map as Record<string, unknown>);
    expect(
      entries.length <= limits.maxEntries,
      path,
      map,
      `has ${entries.length} entries: at most ${limits.maxEntries} (${limits.why})`,
    );
    for (const [key, entry] of entries) {
      expect(key.length <= limits.maxKey, keyPath(path, key), key, `is a name longer than ${limits.maxKey}`);
      value(entry, keyPath(path, key));
    }
  };
}

/** Every shape in turn. */
export const allOf =
  (...shapes: Shape[]): Shape =>
  (value, path) => {
    for (const shape of shapes) shape(value, path);
  };

const join = (path: string, name: string) => (path ? `${path}.${name}` : name);
