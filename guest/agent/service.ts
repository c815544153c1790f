import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AGENT_PROTOCOL_VERSION } from '../../src/agent/version.js';
import type { AgentService, Health } from '../../src/gen/hull/agent/v1/agent_pb.js';
import type { Process, Spec } from '../../src/oci/spec.js';
import type { CallContext, ImplOf } from '../../src/ttrpc/server.js';
import { bootIdAddress } from './boot-id-address.js';
import type { Containers } from './containers.js';
import { AgentError } from './errors.js';
import { startFreePageReporting } from './kernel-modules.js';
import { setupNetwork } from './network.js';
import { takeSandboxIdentity } from './sandbox-identity.js';

function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  } catch (err) {
    throw new AgentError('invalid', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Waits for `promise` unless the call is cancelled (its deadline passes or the host hangs up). */
function untilCancelled<T>(promise: Promise<T>, ctx: CallContext): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    promise.then(resolve, reject);
    ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
  });
}

/** Seconds since the guest kernel started (CLOCK_BOOTTIME), as /proc/uptime says. */
function uptime(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}

/**
 * When each boot phase began, in guest uptime: the initramfs's and hull-init's from the
 * environment hull-init gave, the agent's own start (its process's age taken from now), and
 * its first answer, which is when the host can first reach it.
 */
let bootPhases: Record<string, number> | undefined;
function phases(now: number): Record<string, number> {
  if (!bootPhases) {
    const fromEnv = (name: string) => Number(process.env[name]);
    bootPhases = {
      initramfs: fromEnv('HULL_T_INITRAMFS'),
      'root-mounted': fromEnv('HULL_T_ROOT'),
      'hull-init': fromEnv('HULL_T_INIT'),
      'agent-start': now - process.uptime(),
      'agent-ready': now,
    };
    for (const [k, v] of Object.entries(bootPhases)) if (!(v >= 0)) delete bootPhases[k];
  }
  return bootPhases;
}

export function healthService(): ImplOf<typeof Health> {
  return {
    check: async (req) => {
      const address = req.withBootIdAddress ? await bootIdAddress() : 0n;
      const now = uptime();
      return {
        bootPhases: phases(now),
        uptimeSeconds: now,
        version: AGENT_PROTOCOL_VERSION,
        // Not os.release(): node reads uname once at start-up, and the agent starts from a V8
        // snapshot taken on the host that built the image.
        kernelRelease: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
        // Never read here: the kernel makes the boot id at its first read, and a VM saved
        // before any read gives each clone of it its own.
        bootId: '',
        // Set by hull-init, which knows whether it had to start the agent a second time.
        agentSnapshot: process.env.HULL_AGENT_SNAPSHOT ?? 'none',
        bootIdAddress: address,
      };
    },
  };
}

/**
 * The agent API. Each handler only unpacks its request and calls Containers; errors are
 * AgentErrors, which the server turns into wire statuses in one place (errors.ts).
 */
export function agentService(containers: Containers, shutdown: () => void): ImplOf<typeof AgentService> {
  // The sandbox this VM is (CreateSandbox's ID): a VM of a lone container names it as its
  // container, so a fork of a saved VM, told its own ID, renames the parent's container.
  let sandboxId = '';
  return {
    createSandbox: async (req) => {
      takeSandboxIdentity(req);
      if (sandboxId && req.sandboxId) await containers.rename(sandboxId, req.sandboxId, req.hostname);
      if (req.sandboxId) sandboxId = req.sandboxId;
      return {};
    },
    setupNetwork: async (req) => {
      await setupNetwork(req);
      return {};
    },
    destroySandbox: async () => {
      // Answer first; hull-init powers the VM off once the agent has exited.
      setTimeout(shutdown, 20);
      return {};
    },
    createContainer: async (req) => {
      const { pid, steps } = await containers.create({
        id: req.containerId,
        spec: parseJson<Spec>(req.ociSpecJson, 'the container configuration'),
        rootfsSharePath: req.rootfsSharePath,
        sharedMounts: req.sharedMounts,
        sandboxContainerId: req.sandboxContainerId,
        stdin: req.stdin,
        rootfsDisks: req.rootfsDisks && { writableBytes: req.rootfsDisks.writableBytes },
        start: req.start,
      });
      if (req.start) startFreePageReporting();
      return { pid, steps };
    },
    startContainer: async (req) => {
      const steps = await containers.start(req.containerId);
      startFreePageReporting();
      return { steps };
    },
    removeContainer: async (req) => {
      await containers.remove(req.containerId);
      return {};
    },
    execProcess: async (req) => {
      if (!req.execId) throw new AgentError('invalid', 'an exec needs an exec id');
      const spec = parseJson<Process>(req.processJson, 'the process');
      const started = await containers.exec(req.containerId, req.execId, spec, req.stdin, req.direct);
      return { pid: started.pid, steps: started.steps };
    },
    signalProcess: async (req) => {
      if (req.all) await containers.signalAll(req.containerId, req.signal);
      else containers.process(req.containerId, req.execId).signal(req.signal);
      return {};
    },
    waitProcess: async (req, ctx) => ({
      exitStatus: await untilCancelled(containers.process(req.containerId, req.execId).wait(), ctx),
    }),
    writeStdin: async (req) => ({
      length: await containers.process(req.containerId, req.execId).writeStdin(req.data),
    }),
    readStdout: async (req, ctx) => ({
      data: await containers.process(req.containerId, req.execId).stdout.read(req.maxLength, ctx.signal),
    }),
    readStderr: async (req, ctx) => ({
      data: await containers.process(req.containerId, req.execId).stderr.read(req.maxLength, ctx.signal),
    }),
    closeStdin: async (req) => {
      containers.process(req.containerId, req.execId).closeStdin();
      return {};
    },
    pauseContainer: async (req) => {
      await containers.pause(req.containerId);
      return {};
    },
    resumeContainer: async (req) => {
      await containers.resume(req.containerId);
      return {};
    },
    updateContainer: async (req) => {
      await containers.update(req.containerId, Buffer.from(req.resourcesJson).toString('utf8'));
      return {};
    },
    listProcesses: async (req) => ({ pids: await containers.processes(req.containerId) }),
    statsContainer: async (req) => ({ cgroupFiles: await containers.cgroupFiles(req.containerId) }),
    statsSandbox: async () => ({
      procFiles: {
        meminfo: await readFile('/proc/meminfo', 'utf8'),
        stat: await readFile('/proc/stat', 'utf8'),
      },
    }),
    watchPath: async (req) => ({ pid: await containers.watch(req.containerId, req.execId, req.path) }),
    ttyWinResize: async (req) => {
      containers.process(req.containerId, req.execId).resize(req.rows, req.columns);
      return {};
    },
  };
}
