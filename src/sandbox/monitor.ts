import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { AgentClient, ProcessInput, ProcessRef } from '../agent/client.js';
import { HullError, messageOf } from '../errors.js';
import { AgentService } from '../gen/hull/agent/v1/agent_pb.js';
import { Metrics } from '../gen/hull/metrics/v1/metrics_pb.js';
import { Monitor as MonitorService } from '../gen/hull/monitor/v1/monitor_pb.js';
import { logger } from '../log.js';
import { metricsService } from '../metrics/collect-service.js';
import { OwnerMetrics } from '../metrics/owner-metrics.js';
import { vcpusCovering } from '../oci/guest-resources.js';
import { hasRootOnDisks } from '../oci/rootfs-annotations.js';
import type { Process } from '../oci/spec.js';
import type { ForkFrom } from '../snapshot/fork-source.js';
import type { SavedStateRecord } from '../snapshot/state-file.js';
import { TrimWhenIdle } from '../sys/malloc-trim.js';
import { identityOf } from '../sys/process-identity.js';
import { type HostTerminal, openHostTerminal } from '../sys/tty.js';
import { listenPrivately } from '../sys/unix-socket.js';
import { markHost } from '../trace/boot-marks.js';
import { BOOT_RECORD_FILE } from '../trace/boot-trace.js';
import { SandboxTrace } from '../trace/sandbox-trace.js';
import { TtrpcServer } from '../ttrpc/server.js';
import { withTimeout } from '../util/deadline.js';
import { AttachedProcess, type HostStdio, inputOf } from './attached-process.js';
import type { Bundle } from './bundle.js';
import { containerArch } from './container-arch.js';
import { containerRoot } from './container-root.js';
import { type ContainerVm, ownVm } from './container-vm.js';
import { hasCreateRuntimeHooks, runHostHooks } from './hooks.js';
import { MONITOR_SOCKET } from './monitor-socket.js';
import { defaultVcpus, type RuntimeSettings, startSandbox } from './runtime.js';
import { type ContainerState, type Operation, requireAllowed, type Status, writeState } from './state.js';
import { toWireStatus } from './wire-status.js';

/**
 * The long-lived host process of one container: it owns the container's VM (or, in a pod, has
 * its container added to the pod's VM, see pod-member.ts), relays the container's stdio
 * through the fds it was given, keeps the persisted state, and answers the command-line verbs
 * on its socket. It lives as long as the container's process and its own
 * exit code is that process's: callers (conmon, containerd's runc shim) wait on its pid.
 */
export class ContainerMonitor {
  private status: Status = 'created';
  private exit: Promise<number> | undefined;
  /** The start request while it is on its way: the VM must outlive its answer. */
  private starting: Promise<void> | undefined;
  /** Created and started in one step (see `startAtCreate`): start() only records it. */
  private startedAtCreate = false;
  /** Where the VM was saved to (pause to disk): its end is then no loss. */
  private savedTo: string | undefined;
  private server: Server | undefined;
  private terminal: HostTerminal | undefined;
  private readonly log = logger('monitor');
  /** An idle monitor gives back what its start-up freed; every request on its socket defers it. */
  private readonly trimmer = new TrimWhenIdle();

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly bundle: Bundle,
    readonly sandbox: ContainerVm,
    private readonly stdio: HostStdio,
    private readonly created: string,
    private readonly notice: (line: string) => void,
    private readonly trace: SandboxTrace,
    private readonly metrics: OwnerMetrics,
  ) {}

  /**
   * Runs the createRuntime (and prestart) hooks, then boots the VM and creates the container
   * (not started); state is `created` on return. The hooks come first, with the state
   * `creating` and this process's pid, because they may set up the network namespace the VM
   * takes over (Docker's libnetwork-setkey moves the container's veth into /proc/<pid>/ns/net).
   */
  static async create(
    options: {
      id: string;
      dir: string;
      bundle: Bundle;
      settings: RuntimeSettings;
      stdio: HostStdio;
      /** Where to send the terminal's pty when process.terminal is set. */
      consoleSocket?: string;
      /** The network namespace whose interfaces the VM takes over (see Sandbox.create). */
      netns?: string;
      /** Runs the createRuntime hooks with the container's state (see hooks.ts). */
      createRuntimeHooks: (state: ContainerState) => Promise<void>;
      /** The VM of the container's pod, when it is in one; else the container gets its own. */
      /**
       * The VM of the container's pod, when it is in one, with the container added to it
       * (not started); else the container gets a VM of its own.
       */
      podVm?: (input: ProcessInput, signal: AbortSignal) => Promise<ContainerVm>;
      /**
       * The caller starts the container as soon as it is created, with nothing to run in
       * between (`hull run`): a container of its own VM is then created and started in one
       * step in the guest, and start() only records it.
       */
      startAtCreate?: boolean;
      /**
       * The directory the container's VM was paused to (SaveVm): the VM is resumed from it,
       * with the container running in it as it was, and nothing is created.
       */
      resumeFrom?: string;
      /** A snapshot (SaveVm keep_running) this container is a fork of: see ForkFrom. */
      forkFrom?: ForkFrom;
    },
    signal: AbortSignal,
  ): Promise<ContainerMonitor> {
    const { id, bundle } = options;
    // The sandbox's phases (its boot kept beside the state for `hull metrics`) and figures.
    const trace = new SandboxTrace();
    const created = new Date().toISOString();
    const creating = stateOf({ id, bundle, created, status: 'creating' });
    await writeState(options.dir, creating);
    // A resumed container's hooks ran when it was created; a fork's, when its parent was.
    const takenUp = options.resumeFrom !== undefined || options.forkFrom !== undefined;
    if (hasCreateRuntimeHooks(bundle.spec) && !takenUp) await options.createRuntimeHooks(creating);
    const terminal = await openTerminalFor(bundle.spec.process, options.consoleSocket, signal);
    let sandbox: ContainerVm | undefined;
    const metrics = new OwnerMetrics(id, 'monitor');
    try {
      // A terminal has one output stream: the container's stdout and stderr both go to it.
      const stdio = terminal
        ? { stdin: terminal.input, stdout: terminal.output, stderr: terminal.output }
        : options.stdio;
      sandbox = options.podVm
        ? await options.podVm(inputOf(stdio), signal)
        : await ownSandbox(options, inputOf(stdio), signal);
      const startedAtCreate = !options.podVm && options.startAtCreate === true;
      markHost('container-created');
      await keepBootRecord(options.dir, trace);
      const monitor = new ContainerMonitor(
        id,
        options.dir,
        bundle,
        sandbox,
        stdio,
        created,
        options.settings.notice ?? (() => {}),
        trace,
        metrics,
      );
      if (startedAtCreate) {
        monitor.startedAtCreate = true;
        monitor.status = 'running';
      }
      if (takenUp) monitor.status = 'running';
      if (terminal) {
        forwardResizes(terminal, sandbox.agent, { containerId: id });
        monitor.terminal = terminal;
      }
      await monitor.persist();
      monitor.attach();
      return monitor;
    } catch (err) {
      await terminal?.close();
      await sandbox?.release();
      metrics.stop();
      await trace.finish(id, 'hull monitor');
      throw err;
    }
  }

  state(): ContainerState {
    return stateOf({ id: this.id, bundle: this.bundle, created: this.created, status: this.status });
  }

  /** Serves the Monitor API, and the agent API passed through, on `<dir>/monitor.sock`. */
  async serve(): Promise<void> {
    const rpc = new TtrpcServer(toWireStatus)
      .register(MonitorService, {
        start: async () => {
          await this.start();
          return {};
        },
        kill: async (req) => {
          await this.kill(req.signal, req.all);
          return {};
        },
        pause: async () => {
          await this.transition('pause', 'paused', (s) => this.sandbox.agent.pauseContainer(this.id, s));
          return {};
        },
        resume: async () => {
          await this.transition('resume', 'running', (s) => this.sandbox.agent.resumeContainer(this.id, s));
          return {};
        },
        update: async (req) => {
          requireAllowed(this.id, this.status, 'update');
          const resources: unknown = JSON.parse(Buffer.from(req.resourcesJson).toString('utf8'));
          await this.sandbox.updateContainer(this.id, resources, AbortSignal.timeout(30_000));
          return {};
        },
        processes: async () => ({
          pids: await this.sandbox.agent.listProcesses(this.id, AbortSignal.timeout(30_000)),
        }),
        shutdown: async () => {
          setImmediate(() => this.sandbox.shutdown());
          return {};
        },
        saveVm: async (req) => {
          const record = req.keepRunning ? await this.snapshotVm(req.dir) : await this.saveVm(req.dir);
          return { bytes: BigInt(record.bytes), saveMs: BigInt(record.saveMs) };
        },
      })
      .register(
        Metrics,
        metricsService(() =>
          this.metrics.collect(this.sandbox, {
            id: this.id,
            status: this.status,
            boot: this.trace.bootRecord(),
            containerIds: [this.id],
          }),
        ),
      )
      .forward(AgentService.typeName, (method, payload, signal, timeoutMs) =>
        this.sandbox.agent.forwardRaw(method, payload, signal, timeoutMs),
      )
      .whenUnfinishedFramesDropped(() => this.trimmer.soon());
    this.server = createServer((socket) => {
      this.trimmer.busy();
      socket.on('error', () => {});
      socket.on('close', () => this.trimmer.busy());
      rpc.serve(socket);
    });
    await listenPrivately(this.server, join(this.dir, MONITOR_SOCKET));
    this.trimmer.busy();
  }

  async start(): Promise<void> {
    if (this.startedAtCreate) {
      // Started with its create, in the guest's one step: there is nothing left to ask it.
      this.startedAtCreate = false;
    } else {
      this.starting = this.transition('start', 'running', (s) =>
        this.sandbox.agent
          .startContainer(this.id, s)
          .catch(async (err: unknown) =>
            Promise.reject(await this.sandbox.explainFailure(err, `container ${this.id}`)),
          ),
      );
      await this.starting;
    }
    markHost('container-started');
    await runHostHooks(this.bundle.spec, 'poststart', this.state()).catch((err: unknown) => {
      // The spec: a failing poststart hook is logged, and the container keeps running.
      this.log.warn({ err: messageOf(err) }, 'poststart hook failed');
    });
  }

  async kill(signalNumber: number, all: boolean): Promise<void> {
    requireAllowed(this.id, this.status, 'kill');
    await this.sandbox.agent.signalProcess({ containerId: this.id }, signalNumber, {
      all,
      signal: AbortSignal.timeout(30_000),
    });
  }

  /**
   * Pause to disk: the VM saved into `dir`, then stopped and its host resources released; the
   * monitor then ends, leaving the container's state stopped and its directory for the monitor
   * that resumes it (`hull _resume`). Answered once no QEMU of the container runs.
   */
  private async saveVm(dir: string): Promise<SavedStateRecord> {
    requireAllowed(this.id, this.status, 'pause');
    if (this.status !== 'running' || this.savedTo !== undefined) {
      throw new HullError(
        'ERR_STATE',
        `container ${this.id} is ${this.status}: only a running container's VM is saved`,
      );
    }
    this.savedTo = dir;
    try {
      const record = await this.sandbox.saveTo(dir, AbortSignal.timeout(300_000));
      await this.sandbox.release();
      return record;
    } catch (err) {
      this.savedTo = undefined;
      throw err;
    }
  }

  /**
   * A snapshot: the VM saved into `dir` with a frozen copy of its writable disk, and running on
   * (see snapshot/saved-vm.ts); forks and new sandboxes start from it. The container is frozen
   * (its cgroup) while its VM is saved, so its processes stand still in the saved guest: a
   * copy thaws them only once it is its own sandbox (see ownSandbox), never running a moment
   * with the parent's name, address or random state.
   */
  private async snapshotVm(dir: string): Promise<SavedStateRecord> {
    if (this.status !== 'running' || this.savedTo !== undefined) {
      throw new HullError(
        'ERR_STATE',
        `container ${this.id} is ${this.status}: only a running container's VM is snapshotted`,
      );
    }
    const signal = AbortSignal.timeout(300_000);
    await this.sandbox.agent.pauseContainer(this.id, signal);
    try {
      return await this.sandbox.saveTo(dir, signal, { resume: true });
    } finally {
      await this.sandbox.agent.resumeContainer(this.id, AbortSignal.timeout(60_000));
    }
  }

  /** Whether the VM has ended by itself (killed, or its kernel panicked), waiting up to `signal`. */
  async vmEndedByItself(signal: AbortSignal): Promise<boolean> {
    return (await this.sandbox.lossReason(signal)) !== undefined;
  }

  /** Resolves with the container process's exit status, once the VM is gone. */
  waitExit(): Promise<number> {
    if (!this.exit) throw new HullError('ERR_INTERNAL', 'the monitor was not attached to its container');
    return this.exit;
  }

  private async transition(
    operation: Operation,
    to: Status,
    act: (signal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    requireAllowed(this.id, this.status, operation);
    await act(AbortSignal.timeout(60_000));
    this.status = to;
    await this.persist();
  }

  /** Relays the container's stdio and follows its process until it ends. */
  private attach(): void {
    const init = new AttachedProcess(
      this.sandbox.agent,
      { containerId: this.id },
      this.stdio,
      this.sandbox.ended,
    );
    this.exit = this.watch(init);
  }

  /** Waits for the container's process (or the VM) to end, then stops everything. */
  private async watch(init: AttachedProcess): Promise<number> {
    const { status: exitStatus, vmLost, outputLost } = await init.exit;
    if (outputLost) this.notice(`hull: the output of container ${this.id} was cut short: ${outputLost}`);
    markHost('container-exited');
    // A process that exits at once (`true`) is reaped in the guest before crun start returns,
    // so its exit can arrive before the start's answer; tearing down then fails the start.
    await this.starting?.catch(() => {});
    const lossOf = (ms: number) =>
      vmLost && this.savedTo === undefined
        ? this.sandbox.lossReason(AbortSignal.timeout(ms))
        : Promise.resolve(undefined);
    let lost = await lossOf(5000);
    if (lost) this.sayLost(lost);
    this.status = 'stopped';
    await this.terminal?.close();
    this.server?.close();
    await this.sandbox.release().catch((err: unknown) => this.log.error({ err: messageOf(err) }, 'teardown'));
    if (!lost && this.savedTo === undefined) {
      // A VM whose exit was not seen in time was stopped by the teardown, which waits for
      // that exit: a guest that had ended itself is named all the same. So is a VM whose
      // process ended first, as a container's does when its share server dies under it (its
      // next exec from the share fails): the teardown's stop finds the server dead, and the
      // loss is the VM's. The exit is known by now, so this waits for nothing.
      lost = await this.sandbox.lossReason(AbortSignal.timeout(1000));
      if (lost) this.sayLost(lost);
    }
    markHost('torn-down');
    this.metrics.stop();
    await this.trace.finish(this.id, 'hull monitor');
    if (this.savedTo !== undefined) {
      // Its process lives on in the saved VM: no exit status of it is known.
      await writeState(this.dir, this.state()).catch(() => {});
      return 0;
    }
    await writeState(this.dir, { ...this.state(), exitStatus, ...(lost ? { vmLost: lost } : {}) }).catch(
      () => {},
    );
    return exitStatus;
  }

  private sayLost(lost: string): void {
    this.log.error({ reason: lost }, 'the VM ended under the container');
    this.notice(`hull: the VM of container ${this.id} ended under it: ${lost}`);
  }

  private persist(): Promise<void> {
    return writeState(this.dir, this.state());
  }
}

/** A VM of the container's own, which takes over the network namespace it names. */
async function ownSandbox(
  options: {
    id: string;
    dir: string;
    bundle: Bundle;
    settings: RuntimeSettings;
    netns?: string;
    startAtCreate?: boolean;
    resumeFrom?: string;
    forkFrom?: ForkFrom;
  },
  input: ProcessInput,
  signal: AbortSignal,
): Promise<ContainerVm> {
  const { spec } = options.bundle;
  const vcpus = vcpusCovering(spec.linux?.resources, options.settings.vcpus ?? defaultVcpus());
  // Root disks made from the bundle (dev.hull.rootfs=disk): made now, or put back by `restore`.
  const root = await containerRoot(
    {
      id: options.id,
      dir: options.dir,
      bundle: options.bundle,
      root: options.settings.root,
      restored: options.resumeFrom !== undefined,
    },
    signal,
  );
  const sandbox = await startSandbox(
    options.id,
    { ...options.settings, vcpus },
    {
      dir: join(options.dir, 'vm'),
      hostname: spec.hostname,
      netns: options.netns,
      spec,
      arch: await containerArch(options.bundle),
      rootfsDisks: root.rootfsDisks,
      resumeFrom: options.resumeFrom,
      // Disks made from the bundle are a checkpoint's (cli/restore.ts), not a paused sandbox's.
      resumedStays: root.fromBundle ? `container ${options.id} stays checkpointed` : undefined,
      forkFrom: options.forkFrom,
      // A container on the share (not resumed, nor a fork's) has its files bound there while
      // the VM starts.
      firstContainer:
        options.resumeFrom || options.forkFrom || root.rootfsDisks || hasRootOnDisks(spec.annotations)
          ? undefined
          : { id: options.id, bundle: options.bundle },
      signal,
    },
  );
  // Resumed: its container runs in the saved guest already.
  if (options.resumeFrom) return ownVm(sandbox);
  if (options.forkFrom) {
    // Its container, frozen at the snapshot, thaws now that the guest is this sandbox (its ID,
    // hostname, clock, entropy and network given by Sandbox.create).
    try {
      await sandbox.agent.resumeContainer(options.id, signal);
    } catch (err) {
      await sandbox.destroy();
      throw err;
    }
    return ownVm(sandbox);
  }
  try {
    const bundle = { ...options.bundle, spec: root.spec };
    await sandbox.createContainer(options.id, bundle, signal, {
      ...input,
      start: options.startAtCreate === true,
    });
  } catch (err) {
    // Started in the same step, the container's process may have taken its VM down (a kernel
    // it crashed): that is a lost VM, named as one, not a failed create.
    const explained = options.startAtCreate
      ? await sandbox.explainFailure(err, `container ${options.id}`)
      : err;
    await sandbox.destroy();
    throw explained;
  }
  return ownVm(sandbox);
}

/** A container's state as this process (its monitor) keeps it. */
function stateOf(parts: { id: string; bundle: Bundle; created: string; status: Status }): ContainerState {
  return {
    ociVersion: parts.bundle.spec.ociVersion ?? '1.0.2',
    id: parts.id,
    pid: process.pid,
    pidStartTime: identityOf(process.pid)?.startTime,
    status: parts.status,
    bundle: parts.bundle.dir,
    rootfs: parts.bundle.rootfs,
    created: parts.created,
    owner: '',
    annotations: parts.bundle.spec.annotations ?? {},
  };
}

/** A host terminal for a process that wants one; the caller must have given a console socket. */
export async function openTerminalFor(
  process: Process | undefined,
  consoleSocket: string | undefined,
  signal: AbortSignal,
): Promise<HostTerminal | undefined> {
  if (!process?.terminal) return undefined;
  if (!consoleSocket) {
    throw new HullError(
      'ERR_CONFIG',
      'process.terminal is true but no --console-socket was given: pass one, or set terminal to false',
    );
  }
  return openHostTerminal(consoleSocket, withTimeout(signal, 10_000));
}

/**
 * Passes the caller's window-size changes to the guest terminal. A size that arrives before
 * the guest process can take it is sent again a moment later.
 */
export function forwardResizes(terminal: HostTerminal, agent: AgentClient, ref: ProcessRef): void {
  terminal.onResize((rows, columns) => {
    const send = () => agent.resizeTerminal(ref, rows, columns, AbortSignal.timeout(10_000));
    send().catch(() => setTimeout(() => void send().catch(() => {}), 500).unref());
  });
}

/** Writes the boot's phases (up to the sandbox being ready) as `boot.json` in `dir`. */
async function keepBootRecord(dir: string, trace: SandboxTrace): Promise<void> {
  const record = trace.bootRecord();
  if (!record) return;
  await writeFile(join(dir, BOOT_RECORD_FILE), `${JSON.stringify(record)}\n`, { mode: 0o600 }).catch(
    () => {},
  );
}
