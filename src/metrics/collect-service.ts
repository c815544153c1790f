import { callMapped } from '../agent/client.js';
import { Metrics } from '../gen/hull/metrics/v1/metrics_pb.js';
import { connectUnix } from '../sys/unix-socket.js';
import { TtrpcClient } from '../ttrpc/client.js';
import type { ServiceImpl } from '../ttrpc/server.js';
import type { RegistryJson } from './owner-metrics.js';

/** The Metrics service of a sandbox's owner: `collect` gathers its registry at each request. */
export function metricsService(
  collect: () => Promise<RegistryJson>,
): ServiceImpl<(typeof Metrics)['method']> {
  return {
    collect: async () => ({ registryJson: Buffer.from(JSON.stringify(await collect())) }),
  };
}

/**
 * Asks the monitor or shim serving on `socketPath` for its registry; undefined when it does
 * not answer or answers with something that is not a registry (it is skipped, not trusted).
 */
export async function collectFrom(
  socketPath: string,
  signal: AbortSignal,
): Promise<RegistryJson | undefined> {
  const socket = await connectUnix(socketPath, signal).catch(() => undefined);
  if (!socket) return undefined;
  const rpc = new TtrpcClient(socket);
  try {
    const res = await callMapped(rpc, Metrics.method.collect, {}, signal, 'host');
    const parsed: unknown = JSON.parse(Buffer.from(res.registryJson).toString('utf8'));
    return isRegistryJson(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  } finally {
    rpc.close();
  }
}

function isRegistryJson(value: unknown): value is RegistryJson {
  return (
    Array.isArray(value) &&
    value.every(
      (m) =>
        typeof m === 'object' &&
        m !== null &&
        typeof (m as { name?: unknown }).name === 'string' &&
        typeof (m as { type?: unknown }).type === 'string' &&
        Array.isArray((m as { values?: unknown }).values),
    )
  );
}
