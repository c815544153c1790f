/** gRPC status codes as ttRPC carries them in `Response.status.code`. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

/** An RPC failure with its wire status. Servers throw it; clients receive it. */
export class TtrpcError extends Error {
  readonly code: Code;
  constructor(code: Code, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TtrpcError';
    this.code = code;
  }
}

export function isTtrpcError(err: unknown, code?: Code): err is TtrpcError {
  return err instanceof TtrpcError && (code === undefined || err.code === code);
}
