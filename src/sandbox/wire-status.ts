import { type ErrorCode, HullError, messageOf } from '../errors.js';
import { Code, TtrpcError } from '../ttrpc/status.js';

/** hull's error codes as ttRPC statuses; the agent client's toHullError turns them back. */
const WIRE_CODES: Partial<Record<ErrorCode, Code>> = {
  ERR_STATE: Code.FAILED_PRECONDITION,
  ERR_NOT_FOUND: Code.NOT_FOUND,
  ERR_EXISTS: Code.ALREADY_EXISTS,
  ERR_UNSUPPORTED: Code.UNIMPLEMENTED,
  ERR_CONFIG: Code.INVALID_ARGUMENT,
  ERR_BUNDLE: Code.INVALID_ARGUMENT,
  ERR_INVALID_ID: Code.INVALID_ARGUMENT,
  ERR_VM_EXITED: Code.UNAVAILABLE,
};

/**
 * Any error a hull service handler throws, as the status on the wire. Used by every ttRPC
 * service hull serves (the monitor's, the containerd shim's), so a code means one thing.
 */
export function toWireStatus(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  if (err instanceof HullError) return new TtrpcError(WIRE_CODES[err.code] ?? Code.UNKNOWN, err.message);
  return new TtrpcError(Code.UNKNOWN, messageOf(err));
}
