import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { HullError } from '../errors.js';
import { Status, type Task } from '../gen/containerd/task/v2/shim_pb.js';
import { clip } from '../oci/shape.js';
import { checkProcessShape, checkResourcesShape } from '../oci/spec-schema.js';
import type { CallContext, ImplOf } from '../ttrpc/server.js';
import { raceSignal } from '../util/deadline.js';
import { VERSION } from '../version.js';
import { type MetricsForm, statsAnswer } from './metrics.js';
import { RPC_TIMEOUT_MS, type ShimPod } from './pod.js';
import { checkpointExits, runtimeConfigPath } from './runtime-options.js';

/** How long a Checkpoint may take: the VM's RAM streamed to disk and hashed, its disks copied. */
const SAVE_TIMEOUT_MS = 300_000;

const STATUS = {
  created: Status.CREATED,
  running: Status.RUNNING,
  stopped: Status.STOPPED,
  paused: Status.PAUSED,
};

function json<T>(value: Uint8Array | undefined, what: string): T {
  try {
    return JSON.parse(Buffer.from(value ?? []).toString('utf8')) as T;
  } catch (err) {
    throw new HullError('ERR_CONFIG', `${what} is not valid JSON: ${clip((err as Error).message, 200)}`);
  }
}

/**
 * containerd's Task service over one pod. Each handler unpacks the request and calls the pod;
 * errors become wire statuses in one place (toWireStatus). Checkpoint saves the VM of a task
 * whose root is on disks, and Create with `checkpoint` resumes it (checkpoint.ts); a task on
 * the 9p share is refused, since QEMU cannot save a VM while 9p is mounted (snapshot/savable.ts).
 */
export function taskService(
  pod: ShimPod,
  /** Resolves once the shim is ready to exit (it has stopped), or at once if it stays. */
  shutdown: (now: boolean) => Promise<void>,
  /** The form of Stats' metrics the caller decodes (metricsFormFor). */
  metricsForm: MetricsForm,
): ImplOf<typeof Task> {
  const timeout = () => AbortSignal.timeout(RPC_TIMEOUT_MS);
  return {
    create: async (req, ctx: CallContext) => {
      const pid = await pod.create(
        {
          id: req.id,
          bundle: req.bundle,
          rootfs: req.rootfs.map((m) => ({ type: m.type, source: m.source, options: m.options })),
          stdin: req.stdin,
          stdout: req.stdout,
          stderr: req.stderr,
          terminal: req.terminal,
          configPath: runtimeConfigPath(req.options),
          checkpoint: req.checkpoint || undefined,
        },
        ctx.signal,
      );
      return { pid };
    },
    start: async (req) => ({ pid: await pod.start(req.id, req.execId) }),
    delete: async (req) => {
      const { pid, exit } = await pod.delete(req.id, req.execId);
      return { pid, exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
    },
    state: async (req) => {
      const { bundle, pid, status, proc } = pod.state(req.id, req.execId);
      return {
        id: req.id,
        execId: req.execId,
        bundle,
        pid,
        status: STATUS[status],
        stdin: proc.taskIo.stdin,
        stdout: proc.taskIo.stdout,
        stderr: proc.taskIo.stderr,
        terminal: proc.taskIo.terminal,
        exitStatus: proc.exitInfo?.status ?? 0,
        exitedAt: proc.exitInfo ? timestampFromDate(proc.exitInfo.at) : undefined,
      };
    },
    pids: async (req) => {
      const pids = await pod.agentFor(req.id).listProcesses(req.id, timeout());
      return { processes: pids.map((pid) => ({ pid })) };
    },
    pause: async (req) => {
      await pod.pause(req.id, true);
      return {};
    },
    resume: async (req) => {
      await pod.pause(req.id, false);
      return {};
    },
    kill: async (req) => {
      await pod.kill(req.id, req.execId, req.signal, req.all);
      return {};
    },
    exec: async (req) => {
      const spec = json<unknown>(req.spec?.value, 'the exec process');
      checkProcessShape(spec, `exec ${clip(req.execId)}`);
      pod.exec(
        req.id,
        req.execId,
        { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
        { ...spec, terminal: req.terminal },
      );
      return {};
    },
    resizePty: async (req) => {
      const proc = pod.find(req.id, req.execId);
      await pod.agentFor(req.id).resizeTerminal(proc.ref, req.height, req.width, timeout());
      return {};
    },
    closeIO: async (req) => {
      if (req.stdin) await pod.find(req.id, req.execId).closeStdin(timeout());
      return {};
    },
    update: async (req) => {
      const resources = json<unknown>(req.resources?.value, 'the resources');
      checkResourcesShape(resources, 'the update');
      await pod.sandboxFor(req.id).updateContainer(req.id, resources, timeout());
      return {};
    },
    wait: async (req, ctx) => {
      const exit = await raceSignal(pod.find(req.id, req.execId).exited, ctx.signal);
      return { exitStatus: exit.status, exitedAt: timestampFromDate(exit.at) };
    },
    stats: async (req) => ({
      stats: statsAnswer(await pod.agentFor(req.id).statsContainer(req.id, timeout()), metricsForm),
    }),
    checkpoint: async (req) => {
      if (!req.path.startsWith('/')) {
        throw new HullError(
          'ERR_CONFIG',
          'a checkpoint needs the absolute path of the directory to write it to',
        );
      }
      await pod.checkpoint(
        req.id,
        req.path,
        checkpointExits(req.options),
        AbortSignal.timeout(SAVE_TIMEOUT_MS),
      );
      return {};
    },
    connect: async () => ({ shimPid: process.pid, taskPid: pod.pid, version: VERSION }),
    shutdown: async (req) => {
      await shutdown(req.now);
      return {};
    },
  };
}
