/**
 * hull's error type. Every failure that reaches a user carries a stable `code` (for scripts
 * and tests: never match on message text) and a one-line message that says what is wrong and
 * what to do. Context is added at the edges by wrapping, keeping the original as `cause`.
 */
export type ErrorCode =
  | 'ERR_INVALID_ID'
  | 'ERR_BUNDLE'
  | 'ERR_CONFIG'
  | 'ERR_EXISTS'
  | 'ERR_NOT_FOUND'
  | 'ERR_STATE'
  | 'ERR_IMAGE_MISSING'
  | 'ERR_IMAGE_STALE'
  | 'ERR_IMAGE_BUILD'
  | 'ERR_QEMU_MISSING'
  | 'ERR_VM_START'
  | 'ERR_VM_BOOT_TIMEOUT'
  | 'ERR_VM_EXITED'
  /** A host process of hull's (a container's monitor) died, killed, before it had done its part. */
  | 'ERR_PROCESS_LOST'
  | 'ERR_AGENT_TIMEOUT'
  | 'ERR_TEMPLATE'
  /** A saved VM's state: no room to write it, or a file that is not what was saved. */
  | 'ERR_SAVED_STATE'
  /** A copy of a saved running VM whose boot id could not be made new before it ran. */
  | 'ERR_BOOT_ID'
  | 'ERR_AGENT'
  | 'ERR_MOUNT'
  | 'ERR_NETWORK'
  /** A sandbox made with network 'none' has no network to reach a port of. */
  | 'ERR_NO_NETWORK'
  | 'ERR_REGISTRY'
  | 'ERR_UNSUPPORTED'
  | 'ERR_ABORTED'
  | 'ERR_USAGE'
  /** A server-wide limit reached (live sandboxes, commands per sandbox): retry later. */
  | 'ERR_LIMIT'
  /** The server has as many requests in hand as it takes: retry shortly. */
  | 'ERR_BUSY'
  /** What hull prints could not be written: its reader has gone (`hull list | head -0`). */
  | 'ERR_OUTPUT'
  | 'ERR_INTERNAL';

export class HullError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HullError';
    this.code = code;
  }
}

export function isHullError(err: unknown, code?: ErrorCode): err is HullError {
  return err instanceof HullError && (code === undefined || err.code === code);
}

/** The message of anything thrown, for logs and wrapped errors. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
