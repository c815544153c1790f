import type { FastifyReply, FastifyRequest } from 'fastify';
import { HullError } from '../errors.js';
import type { ApiErrorCode } from './api-types.js';

/** The server's limits on what it takes at once; each refusal has a stable code and status. */
export interface AdmissionLimits {
  /** Live sandboxes (made, being made, or being killed); past it creates get 429 ERR_LIMIT. */
  maxSandboxes: number;
  /** HTTP requests in hand at once; past it requests get 503 ERR_BUSY with Retry-After. */
  maxRequests: number;
  /** Open WebSockets (command and terminal streams); past it upgrades get 503 ERR_BUSY. */
  maxStreams: number;
}

export const DEFAULT_ADMISSION: AdmissionLimits = { maxSandboxes: 64, maxRequests: 512, maxStreams: 1024 };

type Refuse = (reply: FastifyReply, code: ApiErrorCode, message: string, status?: number) => unknown;

/**
 * Counts what the server has in hand and refuses what is over a limit before any work is done
 * for it, so that a flood of requests costs the server a refusal each, never memory or a guest
 * process each. A request holds its place until its answer is sent or its connection ends.
 */
export class Admission {
  private requests = 0;
  private streams = 0;
  private creating = 0;

  constructor(readonly limits: AdmissionLimits) {}

  /** fastify's onRequest hook. */
  hook(refuse: Refuse) {
    return async (request: FastifyRequest, reply: FastifyReply) => {
      const upgrade = request.headers.upgrade !== undefined;
      const kind = upgrade ? 'streams' : 'requests';
      const limit = upgrade ? this.limits.maxStreams : this.limits.maxRequests;
      if (this[kind] >= limit) {
        reply.header('retry-after', '1');
        return refuse(
          reply,
          'ERR_BUSY',
          `the server has ${limit} ${upgrade ? 'streams open' : 'requests in hand'}: retry in a moment`,
          503,
        );
      }
      this[kind]++;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this[kind]--;
      };
      // A WebSocket holds its place as long as its connection; a request until its answer is out.
      if (upgrade) request.raw.socket.once('close', release);
      else {
        reply.raw.once('close', release);
        reply.raw.once('finish', release);
      }
    };
  }

  /** Runs a create if there is room for one more sandbox beside the `live` ones, else ERR_LIMIT. */
  async createSandbox<T>(live: number, create: () => Promise<T>, count = 1): Promise<T> {
    if (live + this.creating + count > this.limits.maxSandboxes) {
      throw new HullError(
        'ERR_LIMIT',
        count > 1
          ? `${count} more sandboxes would take the server past its ${this.limits.maxSandboxes} (its --max-sandboxes): kill some, fork fewer, or retry later`
          : `the server already has ${this.limits.maxSandboxes} sandboxes (its --max-sandboxes): kill one, or retry later`,
      );
    }
    this.creating += count;
    try {
      return await create();
    } finally {
      this.creating -= count;
    }
  }
}
