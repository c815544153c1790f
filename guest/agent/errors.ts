import { Code, TtrpcError } from '../../src/ttrpc/status.js';

/** Why an agent request failed; turned into a ttRPC status in exactly one place (toStatus). */
export type AgentErrorKind =
  | 'not-found'
  | 'exists'
  | 'invalid'
  | 'wrong-state'
  | 'unsupported'
  | 'runtime-failed';

export class AgentError extends Error {
  constructor(
    readonly kind: AgentErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'AgentError';
  }
}

const CODES: Record<AgentErrorKind, Code> = {
  'not-found': Code.NOT_FOUND,
  exists: Code.ALREADY_EXISTS,
  invalid: Code.INVALID_ARGUMENT,
  'wrong-state': Code.FAILED_PRECONDITION,
  unsupported: Code.UNIMPLEMENTED,
  'runtime-failed': Code.INTERNAL,
};

export function toStatus(err: unknown): TtrpcError {
  if (err instanceof TtrpcError) return err;
  if (err instanceof AgentError) return new TtrpcError(CODES[err.kind], err.message);
  return new TtrpcError(Code.UNKNOWN, err instanceof Error ? err.message : String(err));
}
