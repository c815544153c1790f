import { channel } from 'node:diagnostics_channel';
import { isHullError } from '../errors.js';
import { TtrpcError } from '../ttrpc/status.js';

/**
 * Each request the host makes to a guest agent, published when it ends by the agent client,
 * so the process owning the sandbox (monitor, shim) can keep a latency histogram without the
 * client knowing of Prometheus.
 */
export interface AgentRequestEnd {
  method: string;
  seconds: number;
  /** The failure's stable code (see errors.ts); absent when the request succeeded. */
  failure?: string;
}

export const agentRequests = channel('hull:agent-request');

/** Runs one agent request and publishes how long it took and how it ended. */
export async function timedAgentRequest<T>(
  method: string,
  request: () => Promise<T>,
  codeOf: (err: unknown) => unknown,
): Promise<T> {
  if (!agentRequests.hasSubscribers) return request();
  const start = performance.now();
  const publish = (failure?: string) =>
    agentRequests.publish({
      method,
      seconds: (performance.now() - start) / 1000,
      ...(failure ? { failure } : {}),
    } satisfies AgentRequestEnd);
  try {
    const result = await request();
    publish();
    return result;
  } catch (err) {
    publish(failureCode(codeOf(err)));
    throw err;
  }
}

/** The stable code of anything a request threw: hull's own, or what a wait's signal gave. */
export function failureCode(err: unknown): string {
  if (isHullError(err)) return err.code;
  if (err instanceof TtrpcError) return 'ERR_AGENT';
  const name = (err as Error | undefined)?.name;
  if (name === 'TimeoutError') return 'ERR_AGENT_TIMEOUT';
  if (name === 'AbortError') return 'ERR_ABORTED';
  return 'ERR_INTERNAL';
}
