import { rm } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { loadConfigFile } from '../config/config-file.js';
import { checkSettings } from '../config/settings.js';
import { HullError, isHullError, messageOf } from '../errors.js';
import {
  TaskCreateSchema,
  TaskDeleteSchema,
  TaskExecAddedSchema,
  TaskExecStartedSchema,
  TaskExitSchema,
  TaskOOMSchema,
  TaskPausedSchema,
  TaskResumedSchema,
  TaskStartSchema,
} from '../gen/containerd/events/task_pb.js';
import type { Arch } from '../hypervisor/arch.js';
import { logger } from '../log.js';
import { configuredNetns } from '../network/namespace.js';
import { killsAllOnExit, POD_PINNED_NAMESPACES, POD_SHARED_NAMESPACES } from '../oci/pod-namespaces.js';
import { asksRootOnDisks, ROOTFS_ANNOTATION } from '../oci/rootfs-annotations.js';
import type { Process } from '../oci/spec.js';
import { inputOf, type ProcessExit, VM_LOST_STATUS } from '../sandbox/attached-process.js';
import { type Bundle, loadBundle } from '../sandbox/bundle.js';
import { containerArch, programArch } from '../sandbox/container-arch.js';
import { containerRoot } from '../sandbox/container-root.js';
import { checkNamespacePaths, NO_JOINABLE_NAMESPACES } from '../sandbox/namespace-paths.js';
import { startSandbox } from '../sandbox/runtime.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { CheckpointRecord } from '../snapshot/checkpoint-dir.js';
import { checkpointRefusal } from '../snapshot/savable.js';
import { bundleDiskPaths } from '../storage/bundle-disks.js';
import type { RootfsDisks } from '../storage/rootfs-disks.js';
import type { FilesystemMount, Mounter } from '../sys/mount.js';
import { markHost } from '../trace/boot-marks.js';
import { settledWithin } from '../util/deadline.js';
import { placeTaskCheckpoint, saveTaskCheckpoint } from './checkpoint.js';
import type { EventPublisher } from './events.js';
import { runnableSandboxBundle } from './guest-pause.js';
import { cgroupMetrics } from './metrics.js';
import { taskRole, vmSize } from './pod-identity.js';
import { mountRootfs, unmountRootfs } from './rootfs.js';
import { openTaskIo, type TaskIo } from './task-io.js';
import { type ProcessStatus, TaskProcess } from './task-process.js';

/** How a lone task gets a root its VM can be saved with (said in the refusal of a task on 9p). */
const SHIM_DISK_ROOT_HINT = `a task created with the annotation ${ROOTFS_ANNOTATION}=disk (ctr run --annotation ${ROOTFS_ANNOTATION}=disk) has its root on disks and can be`;

/** How long one request to the guest may take before the Task request fails. */
export const RPC_TIMEOUT_MS = 60_000;

interface TaskContainer {
  id: string;
  bundle: Bundle;
  rootfsMounted: boolean;
  init: TaskProcess;
  execs: Map<string, TaskProcess>;
  paused: boolean;
  /** The disks its root is on, made from its bundle (dev.hull.rootfs=disk): its VM can be saved. */
  rootDisks?: RootfsDisks;
  /** Restored from a checkpoint whose container was saved frozen: Start thaws it. */
  thawAtStart?: boolean;
}

export interface CreateTask extends TaskIo {
  id: string;
  bundle: string;
  rootfs: readonly FilesystemMount[];
  /** The configuration file the runtime's options name (ConfigPath), for the pod's first task. */
  configPath?: string;
  /** A checkpoint (see checkpoint()) to restore the task from, unpacked here by containerd. */
  checkpoint?: string;
}

/**
 * The tasks of one pod and the VM they share: what the shim's Task service acts on. The
 * first task (a pod's sandbox, or a lone `ctr run` task) boots the VM; a pod's other
 * containers are created in it. Every state change is published as containerd's event.
 */
export class ShimPod {
  private sandbox: Sandbox | undefined;
  /** The architecture of the pod's VM, once it is made. */
  private arch: Arch | undefined;
  private readonly containers = new Map<string, TaskContainer>();
  /** A Checkpoint is on its way (one at a time: each saves the whole VM). */
  private checkpointing = false;
  private readonly log = logger('pod');

  constructor(
    private readonly options: {
      /** This pod's shim directory (socket, VM). */
      dir: string;
      namespace: string;
      events: EventPublisher;
      mounter: Mounter;
      debug: boolean;
    },
  ) {}

  /** The pod's VM and its containers, for `hull metrics`; undefined before the sandbox boots. */
  get running(): { sandbox: Sandbox; containerIds: string[] } | undefined {
    return this.sandbox ? { sandbox: this.sandbox, containerIds: [...this.containers.keys()] } : undefined;
  }

  get isEmpty(): boolean {
    return this.containers.size === 0;
  }

  /** The host process that stands for every task of the pod: the VM's. */
  get pid(): number {
    return this.sandbox?.vm.pid ?? 0;
  }

  /** A container whose program is of another architecture than the pod's VM fails in one line. */
  private async checkArch(id: string, bundle: Bundle): Promise<void> {
    const program = await programArch(bundle.rootfs, bundle.spec.process);
    if (program && this.arch && program !== this.arch) {
      throw new HullError(
        'ERR_UNSUPPORTED',
        `container ${id} runs an ${program} program and its pod's VM is ${this.arch}: the containers of a pod share one VM; give the pod the dev.hull.arch annotation or a RuntimeClass whose configuration sets vm.arch = "${program}"`,
      );
    }
  }

  async create(request: CreateTask, signal: AbortSignal): Promise<number> {
    if (this.containers.has(request.id)) {
      throw new HullError('ERR_EXISTS', `task ${request.id} already exists in this pod`);
    }
    // A RuntimeClass handler's own configuration (Kata's ConfigPath): one shim serves one pod,
    // so the file's settings are the pod's, read before its VM is made.
    if (request.configPath && !this.sandbox) loadConfigFile(request.configPath);
    checkSettings();
    const rootfsMounted = await mountRootfs(this.options.mounter, request.bundle, request.rootfs);
    let bootedHere = false;
    let madeDisks = false;
    try {
      let bundle = await loadBundle(request.bundle);
      const role = taskRole(request.id, bundle.spec);
      await checkNamespacePaths(bundle, {
        joinable: role.kind === 'container' ? POD_SHARED_NAMESPACES : NO_JOINABLE_NAMESPACES,
        pinned: role.kind === 'sandbox' ? POD_PINNED_NAMESPACES : NO_JOINABLE_NAMESPACES,
        signal,
      });
      if (role.kind !== 'single' && (request.checkpoint || asksRootOnDisks(bundle.spec.annotations))) {
        throw new HullError(
          'ERR_UNSUPPORTED',
          `task ${request.id} belongs to pod ${role.podId}, whose VM holds all its containers on the 9p share: only a lone task (ctr run) can have its root on disks (${ROOTFS_ANNOTATION}=disk) and be checkpointed and restored`,
        );
      }
      let root: Awaited<ReturnType<typeof containerRoot>> | undefined;
      let restored: CheckpointRecord | undefined;
      if (role.kind !== 'container') {
        if (this.sandbox) throw new HullError('ERR_EXISTS', `pod ${role.podId} already has its sandbox`);
        // A lone task's program decides; a pod's, its sandbox (pause) container's, unless
        // vm.arch or the dev.hull.arch pod annotation says.
        this.arch = await containerArch(bundle);
        if (role.kind === 'sandbox')
          bundle = await runnableSandboxBundle(bundle, this.arch, join(this.options.dir, 'guest-pause'));
        madeDisks = asksRootOnDisks(bundle.spec.annotations);
        if (request.checkpoint) {
          restored = await placeTaskCheckpoint(
            request.id,
            bundle,
            request.checkpoint,
            this.options.dir,
            signal,
          );
        }
        root = await containerRoot(
          {
            id: request.id,
            dir: this.options.dir,
            bundle,
            root: this.options.dir,
            restored: Boolean(restored),
          },
          signal,
        );
        this.sandbox = await startSandbox(
          request.id,
          { root: this.options.dir, debug: this.options.debug, ...vmSize(bundle.spec) },
          {
            dir: join(this.options.dir, 'vm'),
            hostname: bundle.spec.hostname,
            // A pod's network namespace (CNI's) is named by path; a lone task's new one has only lo.
            netns: configuredNetns(bundle.spec),
            spec: bundle.spec,
            arch: this.arch,
            rootfsDisks: root.rootfsDisks,
            // Its container runs in the saved guest already (frozen, see checkpoint()).
            resumeFrom: request.checkpoint,
            resumedStays: 'the checkpoint is left as it is',
            signal,
          },
        );
        bootedHere = true;
        this.watchVm(this.sandbox);
      }
      const sandbox = this.requireSandbox();
      if (role.kind === 'container') await this.checkArch(request.id, bundle);
      const io = await openTaskIo(
        request,
        { containerId: request.id, namespace: this.options.namespace },
        signal,
      );
      try {
        if (!restored) {
          await sandbox.createContainer(request.id, root ? { ...bundle, spec: root.spec } : bundle, signal, {
            sandboxContainerId: role.kind === 'container' ? role.podId : undefined,
            ...inputOf(io.stdio),
          });
        }
      } catch (err) {
        io.close();
        throw err;
      }
      markHost('container-created');
      const init = new TaskProcess(request.id, '', request);
      const container: TaskContainer = {
        id: request.id,
        bundle,
        rootfsMounted,
        init,
        execs: new Map(),
        paused: false,
        rootDisks: root?.fromBundle ? root.rootfsDisks : undefined,
        thawAtStart: restored?.frozen === true,
      };
      this.containers.set(request.id, container);
      this.options.events.publish('/tasks/create', TaskCreateSchema, {
        containerId: request.id,
        bundle: request.bundle,
        rootfs: request.rootfs.map((m) => ({ ...m, options: [...m.options] })),
        io: {
          stdin: request.stdin,
          stdout: request.stdout,
          stderr: request.stderr,
          terminal: request.terminal,
        },
        pid: this.pid,
      });
      init.attach(
        sandbox,
        io,
        (exit) => this.onExit(container, init, exit),
        killsAllOnExit(bundle.spec) ? () => this.killLeftovers(container) : undefined,
      );
      return this.pid;
    } catch (err) {
      if (bootedHere) {
        await this.sandbox?.destroy();
        this.sandbox = undefined;
      }
      // Disks made (or put back from a checkpoint) for a task that is not created.
      if (madeDisks) await rm(bundleDiskPaths(this.options.dir).dir, { recursive: true, force: true });
      if (rootfsMounted) await unmountRootfs(this.options.mounter, request.bundle).catch(() => {});
      throw err;
    }
  }

  async start(id: string, execId: string): Promise<number> {
    const container = this.container(id);
    const proc = this.process(container, execId);
    if (proc.status !== 'created')
      throw new HullError('ERR_STATE', `process ${proc.eventId} was already started`);
    const sandbox = this.requireSandbox();
    const signal = AbortSignal.timeout(RPC_TIMEOUT_MS);
    proc.starting = (async () => {
      if (!execId) {
        // A restored task's process runs already, frozen as it was saved: it goes on now.
        const started = container.thawAtStart
          ? sandbox.agent.resumeContainer(id, signal)
          : sandbox.agent.startContainer(id, signal);
        await started.catch(async (err: unknown) =>
          Promise.reject(await sandbox.explainFailure(err, `task ${id}`)),
        );
        container.thawAtStart = false;
        markHost('container-started');
        proc.status = 'running';
        this.options.events.publish('/tasks/start', TaskStartSchema, { containerId: id, pid: this.pid });
        return;
      }
      const io = await openTaskIo(
        proc.taskIo,
        { containerId: id, namespace: this.options.namespace },
        signal,
      );
      try {
        await sandbox.agent.execProcess({ containerId: id, execId }, proc.spec!, inputOf(io.stdio), signal);
      } catch (err) {
        io.close();
        throw err;
      }
      proc.status = 'running';
      proc.attach(sandbox, io, (exit) => this.onExit(container, proc, exit));
      this.options.events.publish('/tasks/exec-started', TaskExecStartedSchema, {
        containerId: id,
        execId,
        pid: this.pid,
      });
    })();
    try {
      await proc.starting;
    } finally {
      proc.starting = undefined;
    }
    return this.pid;
  }

  exec(id: string, execId: string, io: TaskIo, spec: Process): void {
    const container = this.container(id);
    if (!execId) throw new HullError('ERR_CONFIG', 'an exec needs an exec id');
    if (container.execs.has(execId))
      throw new HullError('ERR_EXISTS', `exec ${execId} already exists in ${id}`);
    if (container.init.status !== 'running') {
      throw new HullError('ERR_STATE', `task ${id} is not running: exec needs a running task`);
    }
    container.execs.set(execId, new TaskProcess(id, execId, io, spec));
    this.options.events.publish('/tasks/exec-added', TaskExecAddedSchema, { containerId: id, execId });
  }

  async delete(id: string, execId: string): Promise<{ pid: number; exit: ProcessExit }> {
    const container = this.container(id);
    const proc = this.process(container, execId);
    if (proc.status === 'running' || (!execId && container.paused)) {
      throw new HullError('ERR_STATE', `process ${proc.eventId} is running: kill it before deleting it`);
    }
    if (execId) {
      container.execs.delete(execId);
      proc.release();
      return { pid: this.pid, exit: proc.exitInfo ?? { status: 0, at: new Date(), vmLost: false } };
    }
    // A created task is deleted without running: removing it from the guest ends its process.
    await this.sandbox
      ?.removeContainer(id, AbortSignal.timeout(RPC_TIMEOUT_MS))
      .catch((err: unknown) =>
        this.log.warn({ id, err: messageOf(err) }, 'removing the container from the guest'),
      );
    const exit = (await settledWithin(proc.exited, 10_000)) ?? {
      status: VM_LOST_STATUS,
      at: new Date(),
      vmLost: true,
    };
    proc.release();
    for (const exec of container.execs.values()) exec.release();
    if (container.rootfsMounted) await unmountRootfs(this.options.mounter, container.bundle.dir);
    this.containers.delete(id);
    this.options.events.publish('/tasks/delete', TaskDeleteSchema, {
      containerId: id,
      pid: this.pid,
      exitStatus: exit.status,
      exitedAt: timestampFromDate(exit.at),
    });
    return { pid: this.pid, exit };
  }

  async kill(id: string, execId: string, signalNumber: number, all: boolean): Promise<void> {
    const proc = this.process(this.container(id), execId);
    if (proc.status === 'stopped')
      throw new HullError('ERR_NOT_FOUND', `process ${proc.eventId} has already exited`);
    if (execId && proc.status === 'created') {
      throw new HullError('ERR_STATE', `exec ${execId} has not started: start it or delete it`);
    }
    try {
      await this.requireSandbox().agent.signalProcess(proc.ref, signalNumber, {
        all,
        signal: AbortSignal.timeout(RPC_TIMEOUT_MS),
      });
    } catch (err) {
      // containerd takes "not found" for a process that exited meanwhile, as runc reports it.
      if (isHullError(err, 'ERR_STATE')) throw new HullError('ERR_NOT_FOUND', err.message);
      throw err;
    }
  }

  async pause(id: string, paused: boolean): Promise<void> {
    const container = this.container(id);
    if (container.init.status !== 'running') throw new HullError('ERR_STATE', `task ${id} is not running`);
    if (container.paused === paused) {
      throw new HullError('ERR_STATE', `task ${id} is ${paused ? 'already paused' : 'not paused'}`);
    }
    const agent = this.requireSandbox().agent;
    const signal = AbortSignal.timeout(RPC_TIMEOUT_MS);
    if (paused) await agent.pauseContainer(id, signal);
    else await agent.resumeContainer(id, signal);
    container.paused = paused;
    if (paused) this.options.events.publish('/tasks/paused', TaskPausedSchema, { containerId: id });
    else this.options.events.publish('/tasks/resumed', TaskResumedSchema, { containerId: id });
  }

  /**
   * containerd's Checkpoint of a task whose root is on disks (see checkpoint.ts) into `dir`;
   * `exit`: the task is killed once its checkpoint is whole (runc's `--exit`). A task on the 9p
   * share is refused in one line and runs on.
   */
  async checkpoint(id: string, dir: string, exit: boolean, signal: AbortSignal): Promise<void> {
    const container = this.container(id);
    if (container.init.status !== 'running') {
      throw new HullError(
        'ERR_STATE',
        `task ${id} is ${container.init.status}: only a running task is checkpointed`,
      );
    }
    const refusal = checkpointRefusal(
      `task ${id}`,
      container.rootDisks ? 'disk' : 'share',
      `${SHIM_DISK_ROOT_HINT} checkpointed (ctr containers checkpoint --task) and restored (ctr containers restore --live)`,
    );
    if (refusal) throw refusal;
    if (this.checkpointing) throw new HullError('ERR_STATE', `task ${id} is being checkpointed already`);
    this.checkpointing = true;
    try {
      await saveTaskCheckpoint(
        { id, sandbox: this.requireSandbox(), disks: container.rootDisks!, paused: container.paused },
        dir,
        signal,
      );
    } finally {
      this.checkpointing = false;
    }
    if (exit) await this.kill(id, '', 9, true);
  }

  /** What State answers for one process. */
  state(id: string, execId: string) {
    const container = this.container(id);
    const proc = this.process(container, execId);
    const status: ProcessStatus | 'paused' =
      !execId && container.paused && proc.status === 'running' ? 'paused' : proc.status;
    return { bundle: container.bundle.dir, pid: this.pid, status, proc };
  }

  process(container: TaskContainer, execId: string): TaskProcess {
    if (!execId) return container.init;
    const proc = container.execs.get(execId);
    if (!proc) throw new HullError('ERR_NOT_FOUND', `exec ${execId} not found in task ${container.id}`);
    return proc;
  }

  find(id: string, execId: string): TaskProcess {
    return this.process(this.container(id), execId);
  }

  agentFor(id: string) {
    return this.sandboxFor(id).agent;
  }

  /** The pod's sandbox, once `id` is known to be one of its containers. */
  sandboxFor(id: string) {
    this.container(id);
    return this.requireSandbox();
  }

  /** Stops the VM and everything of every task left (Shutdown with now, or a signal). */
  async destroy(): Promise<void> {
    for (const container of this.containers.values()) {
      container.init.release();
      for (const exec of container.execs.values()) exec.release();
    }
    await this.sandbox?.destroy();
    markHost('torn-down');
    for (const container of this.containers.values()) {
      if (container.rootfsMounted)
        await unmountRootfs(this.options.mounter, container.bundle.dir).catch(() => {});
    }
  }

  private container(id: string): TaskContainer {
    const container = this.containers.get(id);
    if (!container) throw new HullError('ERR_NOT_FOUND', `task ${id} not found`);
    return container;
  }

  private requireSandbox(): Sandbox {
    if (!this.sandbox) {
      throw new HullError(
        'ERR_STATE',
        "the pod's sandbox task does not exist: create the pod's sandbox first",
      );
    }
    return this.sandbox;
  }

  private watchVm(sandbox: Sandbox): void {
    void sandbox.vm.exited.then(async (how) => {
      // containerd's TaskExit has no field for why: the tasks exit 137, and the log says why.
      // Said even when the shim is stopping by now (its tasks' exits came first, and then
      // containerd's delete): a VM that ended by itself, and only that, has a loss reason.
      const reason = await sandbox.lossReason(AbortSignal.timeout(5000)).catch(() => undefined);
      if (reason) this.log.warn({ how, reason }, `the VM has stopped under its tasks: ${reason}`);
    });
  }

  private async onExit(container: TaskContainer, proc: TaskProcess, exit: ProcessExit): Promise<void> {
    if (!proc.execId) {
      markHost('container-exited');
      await this.reportOom(container.id);
    }
    this.options.events.publish('/tasks/exit', TaskExitSchema, {
      containerId: container.id,
      id: proc.eventId,
      pid: this.pid,
      exitStatus: exit.status,
      exitedAt: timestampFromDate(exit.at),
    });
  }

  /**
   * What a container's init left in a PID namespace it shares (the pod's) is killed once the
   * init has exited. Nothing else ends those processes until the task is deleted, which may be
   * long after (a kubelet keeps an exited container for its logs): the container is reported
   * stopped while they run on in the pod's VM, and a restarted container would find them
   * still holding its ports and files. They also hold the container's output open (nginx's
   * workers outlive a killed master), so the host's copy of it would never reach end of stream
   * and the exit would wait for the copy to give up. A container with a PID namespace of its
   * own needs none of this: the kernel kills the rest when its init ends (killsAllOnExit).
   */
  private async killLeftovers(container: TaskContainer): Promise<void> {
    await this.sandbox?.agent
      .signalProcess(container.init.ref, constants.signals.SIGKILL, {
        all: true,
        signal: AbortSignal.timeout(RPC_TIMEOUT_MS),
      })
      .catch((err: unknown) =>
        this.log.debug({ id: container.id, err: messageOf(err) }, 'cannot kill what the init left'),
      );
  }

  /** A container whose cgroup saw the OOM killer gets containerd's OOM event before its exit. */
  private async reportOom(id: string): Promise<void> {
    const files = await this.sandbox?.agent
      .statsContainer(id, AbortSignal.timeout(5000))
      .catch(() => undefined);
    if (files && (cgroupMetrics(files).memoryEvents?.oomKill ?? 0n) > 0n) {
      this.options.events.publish('/tasks/oom', TaskOOMSchema, { containerId: id });
    }
  }
}
