import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { messageOf } from '../errors.js';
import { Task } from '../gen/containerd/task/v2/shim_pb.js';
import { Metrics } from '../gen/hull/metrics/v1/metrics_pb.js';
import { configureLogging, logger } from '../log.js';
import { failureCode } from '../metrics/agent-requests.js';
import { metricsService } from '../metrics/collect-service.js';
import { OwnerMetrics } from '../metrics/owner-metrics.js';
import { toWireStatus } from '../sandbox/wire-status.js';
import { reportFailure, reportToParent } from '../sys/detached-helper.js';
import { HostMounter, removeUnmounted } from '../sys/mount.js';
import { listenPrivately } from '../sys/unix-socket.js';
import { SandboxTrace } from '../trace/sandbox-trace.js';
import { type ImplOf, TtrpcServer } from '../ttrpc/server.js';
import { EventPublisher } from './events.js';
import type { ShimFlags } from './flags.js';
import { metricsFormFor } from './metrics.js';
import { ShimPod } from './pod.js';
import { podDir, removeShimsDirIfEmpty, SHIM_SOCKET } from './pod-identity.js';
import { openShimLog } from './shim-log.js';
import { taskService } from './task-service.js';

/**
 * The long-lived shim server of one pod: serves containerd's Task service on the pod's
 * socket until containerd shuts it down once no task is left (or with `now`), then stops the
 * VM and removes every trace of itself.
 */
export async function serveShim(flags: ShimFlags, podId: string): Promise<void> {
  const sink = openShimLog(flags.bundle);
  if (sink) await configureLogging({ destination: sink, level: flags.debug ? 'debug' : 'info' });
  const log = logger('shim');
  const dir = podDir(flags, podId);
  const socketPath = join(dir, SHIM_SOCKET);
  const events = new EventPublisher(process.env.TTRPC_ADDRESS ?? '', flags.namespace);
  const mounter = new HostMounter();
  const pod = new ShimPod({ dir, namespace: flags.namespace, events, mounter, debug: flags.debug });
  // The pod's phases (its boot for `hull metrics`, the whole trace if configured) and figures.
  let trace: SandboxTrace;
  try {
    trace = new SandboxTrace();
  } catch (err) {
    await reportFailure(err);
    process.exit(1);
  }
  const metrics = new OwnerMetrics(podId, 'shim');

  // Stops the VM and removes every trace of the shim; what is left is the exit.
  let stopped: Promise<void> | undefined;
  const stop = (reason: string): Promise<void> => {
    stopped ??= (async () => {
      log.info({ reason }, 'shim stopping');
      server.close();
      await pod.destroy().catch((err: unknown) => log.error({ err: messageOf(err) }, 'stopping the VM'));
      metrics.stop();
      await trace.finish(podId, 'hull shim');
      await events.flush(10_000);
      events.close();
      await removeUnmounted(mounter, dir).catch((err: unknown) =>
        log.error({ err: messageOf(err) }, 'removing the shim directory'),
      );
      await removeShimsDirIfEmpty(dir);
      log.info({ reason }, 'shim stopped');
    })();
    return stopped;
  };
  const exit = () => {
    sink?.close();
    process.exit(0);
  };

  const service = taskService(
    pod,
    async (now) => {
      // containerd asks after each task's delete; the pod's shim stays while tasks remain.
      if (!now && !pod.isEmpty) return;
      // Stopped before the answer, exited right after it: containerd returns the client's
      // Delete once Shutdown has answered (or failed, after its 3 s), and a shim still tearing
      // its VM down then would outlive the task it served. The exit waits for the answer's
      // write, which is issued before the next turn of the event loop.
      await stop(now ? 'shutdown now' : 'no task left');
      setImmediate(exit);
    },
    metricsFormFor(flags),
  );
  const rpc = new TtrpcServer((err) => {
    metrics.failed(failureCode(err));
    return toWireStatus(err);
  })
    .register(Task, service as ImplOf<typeof Task>)
    .register(
      Metrics,
      metricsService(async () => {
        const running = pod.running;
        if (!running) return [];
        return metrics.collect(
          { agent: running.sandbox.agent, vmPid: running.sandbox.vm.pid },
          {
            id: podId,
            status: 'running',
            boot: trace.bootRecord(),
            containerIds: running.containerIds,
          },
        );
      }),
    );
  const server = createServer((socket) => {
    socket.on('error', () => {});
    rpc.serve(socket);
  });
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await rm(socketPath, { force: true });
    await listenPrivately(server, socketPath);
  } catch (err) {
    await reportToParent(`error cannot serve on ${socketPath}: ${messageOf(err)}`);
    await rm(dir, { recursive: true, force: true }).catch(() => {});
    process.exit(1);
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop(signal).then(exit));
  process.on('SIGPIPE', () => {});
  log.info({ socket: socketPath, pod: podId }, 'shim serving');
  // `start` waits for this line on fd 3 (spawnDetachedHelper).
  await reportToParent('ready');
}
