/**
 * The pieces every schema of the API is made of (api-schemas.ts, api-session-schemas.ts):
 * its size limits, bounded string maps and guest paths, in one place.
 */

/** Limits of the API's input; bodies are bounded as a whole by the server (server.ts). */
export const LIMITS = {
  imageRefChars: 512,
  mapEntries: 64,
  keyChars: 128,
  valueChars: 4096,
  pathChars: 4096,
  argvEntries: 1024,
  argChars: 65536,
  maxTimeoutMs: 7 * 24 * 3600 * 1000,
  maxCpus: 64,
  maxMemoryMiB: 1024 * 1024,
  /** The most copies one fork makes (each is a sandbox, counted by the server's limit too). */
  maxForks: 16,
} as const;

export const stringMap = {
  type: 'object',
  maxProperties: LIMITS.mapEntries,
  propertyNames: { type: 'string', minLength: 1, maxLength: LIMITS.keyChars, pattern: '^[^=\\u0000]+$' },
  additionalProperties: { type: 'string', maxLength: LIMITS.valueChars, pattern: '^[^\\u0000]*$' },
} as const;

/** An absolute path in the container: resolved in the guest, never on the host. */
export const guestPath = {
  type: 'string',
  minLength: 1,
  maxLength: LIMITS.pathChars,
  pattern: '^/[^\\u0000]*$',
} as const;

/** A command as an argv: bounded, without NUL bytes. */
export const argv = {
  type: 'array',
  minItems: 1,
  maxItems: LIMITS.argvEntries,
  items: { type: 'string', maxLength: LIMITS.argChars, pattern: '^[^\\u0000]*$' },
} as const;

/** Who a process runs as in the container: root or uid[:gid]. */
export const guestUser = { type: 'string', pattern: '^(root|[0-9]{1,10}(:[0-9]{1,10})?)$' } as const;
