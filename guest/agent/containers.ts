import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Process, Spec } from '../../src/oci/spec.js';
import { CONTAINERS_CGROUP } from './cgroups.js';
import { CRUN, crun, crunArgs, crunFailure } from './crun.js';
import { directExecArgs } from './direct-exec.js';
import { AgentError } from './errors.js';
import { mayAdministerNetwork, prepareForNetAdmin } from './kernel-modules.js';
import { guestLogger } from './log.js';
import { OutputPipe } from './output-pipe.js';
import { processPipes } from './pipes.js';
import { GuestProcess } from './process.js';
import { exitCodeOf, type Reaper } from './reaper.js';
import { mountRootfsDisks } from './rootfs-disks.js';
import { mountShare, SHARE_ROOT } from './share.js';
import { SpawnerUnavailable, SpawnServer } from './spawn-server.js';
import { networkSysctls, toGuestSpec } from './spec.js';
import { type GuestStep, StepClock } from './steps.js';
import { applySysctls } from './sysctls.js';
import { openGuestTerminal } from './terminal.js';
import { runTool } from './tool.js';
import { startWatcher } from './watch.js';

const log = guestLogger('containers');
/** The image's busybox (its nsenter and hostname applets). */
const BUSYBOX = '/bin/busybox';

/** The cgroup files a stats request reads; missing ones (a controller not enabled) are left out. */
const CGROUP_STAT_FILES = [
  'cpu.stat',
  'memory.current',
  'memory.max',
  'memory.stat',
  'memory.events',
  'memory.swap.current',
  'memory.swap.max',
  'pids.current',
  'pids.max',
  'io.stat',
];

export const BUNDLES = '/run/hull/containers';
const TERMINAL_SOCKETS = '/run/hull/tty';

export interface CreateRequest {
  id: string;
  spec: Spec;
  rootfsSharePath: string;
  sharedMounts: { index: number; sharePath: string }[];
  /** The pod's sandbox container, whose namespaces this one joins; empty outside a pod. */
  sandboxContainerId: string;
  /** The host relays input; without it the process reads /dev/null. */
  stdin: boolean;
  /** The root is on the VM's disks (see rootfs-disks.ts), not in the share. */
  rootfsDisks?: { writableBytes: bigint };
  /** Start the process in the same step (crun run --detach). */
  start: boolean;
}

type Status = 'created' | 'running';

interface Container {
  /** crun's name for it, and its guest paths': the one it was created with (see rename). */
  id: string;
  bundle: string;
  /** Its configuration as crun runs it (toGuestSpec). */
  spec: Spec;
  init: GuestProcess;
  status: Status;
  execs: Map<string, GuestProcess>;
}

const sharePath = (relative: string) => join(SHARE_ROOT, join('/', relative));

/**
 * The bundle's files (config.json, crun's pid file) are small and on the guest's tmpfs: they are
 * read and written synchronously. Node's asynchronous fs sends every call to a worker thread and
 * back (a futex wake, a thread switch each way, an eventfd), guest code that a clone's first
 * create runs, and TCG translates, afresh: three calls for a write, four for a read.
 */
function readPid(pidFile: string): number {
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8'), 10);
  if (!Number.isInteger(pid) || pid <= 0)
    throw new AgentError('runtime-failed', `crun wrote no pid to ${pidFile}`);
  return pid;
}

/** The containers of this sandbox, each created, started and removed through crun. */
export class Containers {
  private readonly containers = new Map<string, Container>();
  private terminals = 0;
  private readonly spawner = new SpawnServer();

  constructor(private readonly reaper: Reaper) {}

  /**
   * Starts hull-spawn's server now, at the agent's start: a VM template is saved with it
   * running, so a clone's first crun is started by it rather than by a fork of the agent.
   */
  startSpawner(): void {
    this.spawner.ensureRunning();
  }

  /**
   * Creates the container (crun create) or, with `request.start`, creates and starts it in one
   * step (crun run --detach). Returns its pid and the steps it took.
   */
  async create(request: CreateRequest): Promise<{ pid: number; steps: GuestStep[] }> {
    const clock = new StepClock();
    const { id } = request;
    if (this.containers.has(id)) throw new AgentError('exists', `container ${id} already exists`);
    const sandbox = request.sandboxContainerId ? this.get(request.sandboxContainerId) : undefined;
    if (sandbox?.init.exited) {
      throw new AgentError('wrong-state', `the pod's sandbox container ${sandbox.id} has exited`);
    }
    // A VM whose root disks hold the container's files mounts no share (it could not be saved).
    if (!request.rootfsDisks || request.sharedMounts.length) await mountShare();
    const rootfs = request.rootfsDisks
      ? await mountRootfsDisks(id, request.rootfsDisks.writableBytes)
      : sharePath(request.rootfsSharePath);
    clock.lap(request.rootfsDisks ? 'mount root disks' : 'mount share');
    const bundle = join(BUNDLES, id);
    mkdirSync(bundle, { recursive: true });
    const spec = toGuestSpec(request.spec, {
      containerId: id,
      rootfs,
      sharedMounts: new Map(request.sharedMounts.map((m) => [m.index, sharePath(m.sharePath)])),
      sandboxPid: sandbox?.init.pid,
    });
    writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
    await applySysctls(networkSysctls(request.spec));
    if (mayAdministerNetwork(spec.process?.capabilities)) {
      await prepareForNetAdmin();
    }
    clock.lap('configuration');
    const pidFile = join(bundle, 'init.pid');
    const verb = request.start ? ['run', '--detach'] : ['create'];
    const proc = await this.spawnDetached(
      [...verb, '--bundle', bundle, '--pid-file', pidFile, id],
      bundle,
      pidFile,
      {
        stdin: request.stdin,
        terminal: request.spec.process?.terminal ? { size: request.spec.process.consoleSize } : undefined,
      },
    ).catch(async (err: unknown) => {
      await rm(bundle, { recursive: true, force: true });
      throw err;
    });
    clock.lap(request.start ? 'crun run' : 'crun create');
    const status = request.start ? 'running' : 'created';
    this.containers.set(id, { id, bundle, spec, init: proc, status, execs: new Map() });
    log.debug(status, { id, pid: proc.pid });
    return { pid: proc.pid, steps: clock.steps };
  }

  async start(id: string): Promise<GuestStep[]> {
    const container = this.get(id);
    if (container.status !== 'created')
      throw new AgentError('wrong-state', `container ${id} is already started`);
    const clock = new StepClock();
    await crun(['start', container.id], join(container.bundle, 'crun.log')).done;
    clock.lap('crun start');
    container.status = 'running';
    return clock.steps;
  }

  /**
   * Starts a process in the container: with `direct`, by hull-spawn when it applies everything
   * the process asks for (direct-exec.ts), else, and without `direct`, by `crun exec`.
   */
  async exec(
    id: string,
    execId: string,
    processSpec: Process,
    stdin: boolean,
    direct = false,
  ): Promise<{ pid: number; direct: boolean; steps: GuestStep[] }> {
    const clock = new StepClock();
    const container = this.get(id);
    if (container.execs.has(execId)) throw new AgentError('exists', `exec ${execId} already exists in ${id}`);
    const running = container.status === 'running' && !container.init.exited;
    const args =
      direct && running
        ? directExecArgs(container.spec, processSpec, {
            initPid: container.init.pid,
            cgroupDir: join(CONTAINERS_CGROUP, container.id),
          })
        : undefined;
    const spawned = args && (await this.spawnDirectly(args, processSpec.env ?? [], stdin, clock));
    if (spawned) {
      container.execs.set(execId, spawned);
      return { pid: spawned.pid, direct: true, steps: clock.steps };
    }
    const file = join(container.bundle, `exec-${execId}.json`);
    const pidFile = join(container.bundle, `exec-${execId}.pid`);
    await writeFile(file, JSON.stringify(processSpec));
    const proc = await this.spawnDetached(
      ['exec', '--detach', '--pid-file', pidFile, '--process', file, container.id],
      container.bundle,
      pidFile,
      { stdin, terminal: processSpec.terminal ? { size: processSpec.consoleSize } : undefined },
    );
    clock.lap('crun exec');
    container.execs.set(execId, proc);
    return { pid: proc.pid, direct: false, steps: clock.steps };
  }

  /**
   * The process hull-spawn started on pipes as crun exec's get them (spawnDetached); undefined
   * when hull-spawn could not be asked, and so started nothing.
   */
  private async spawnDirectly(
    args: string[],
    env: string[],
    stdin: boolean,
    clock: StepClock,
  ): Promise<GuestProcess | undefined> {
    const pipes = processPipes(stdin);
    const spawned = this.spawner.spawn(args, env, pipes.childFds);
    clock.lap('ask hull-spawn');
    pipes.closeChildEnds();
    const outputs = { stdout: new OutputPipe(pipes.stdout), stderr: new OutputPipe(pipes.stderr) };
    let pid: number;
    try {
      pid = await spawned;
    } catch (err) {
      pipes.destroy();
      if (!(err instanceof SpawnerUnavailable)) throw err;
      log.warn('starting the process with crun exec', { why: err.message });
      return undefined;
    }
    clock.lap('hull-spawn');
    return new GuestProcess(pid, pipes.stdin, outputs.stdout, outputs.stderr, this.reaper);
  }

  /** Watches `path` as the container sees it (watch.ts); followed as an exec under `execId`. */
  async watch(id: string, execId: string, path: string): Promise<number> {
    const container = this.get(id);
    if (!execId) throw new AgentError('invalid', 'a watch needs an exec id');
    if (container.execs.has(execId)) throw new AgentError('exists', `exec ${execId} already exists in ${id}`);
    if (container.status !== 'running' || container.init.exited)
      throw new AgentError('wrong-state', `container ${id} is not running`);
    const proc = await startWatcher(container.init.pid, path);
    container.execs.set(execId, proc);
    return proc.pid;
  }

  process(id: string, execId: string): GuestProcess {
    const container = this.get(id);
    if (!execId) return container.init;
    const proc = container.execs.get(execId);
    if (!proc) throw new AgentError('not-found', `exec ${execId} not found in container ${id}`);
    return proc;
  }

  async pause(id: string): Promise<void> {
    const container = this.get(id);
    await crun(['pause', container.id], join(container.bundle, 'crun.log')).done;
  }

  async resume(id: string): Promise<void> {
    const container = this.get(id);
    await crun(['resume', container.id], join(container.bundle, 'crun.log')).done;
  }

  async update(id: string, resourcesJson: string): Promise<void> {
    const container = this.get(id);
    const file = join(container.bundle, 'resources.json');
    await writeFile(file, resourcesJson);
    await crun(['update', '--resources', file, container.id], join(container.bundle, 'crun.log')).done;
  }

  /** Guest pids of the container's processes. */
  async processes(id: string): Promise<number[]> {
    const container = this.get(id);
    const run = crun(['ps', '--format', 'json', container.id], join(container.bundle, 'crun.log'), 'pipe');
    const out: Buffer[] = [];
    run.child.stdin?.end();
    // Listen before waiting: the output may be complete before crun's exit is seen.
    const read = new Promise<void>((resolve) => {
      run.child.stdout?.on('data', (c: Buffer) => out.push(c));
      run.child.stdout?.on('close', () => resolve());
    });
    await Promise.all([run.done, read]);
    const pids = JSON.parse(Buffer.concat(out).toString() || '[]') as number[];
    return pids.filter((p) => Number.isInteger(p));
  }

  /** The container's cgroup v2 interface files, by name (see StatsContainerResponse). */
  async cgroupFiles(id: string): Promise<Record<string, string>> {
    const dir = join(CONTAINERS_CGROUP, this.get(id).id);
    const files: Record<string, string> = {};
    for (const name of CGROUP_STAT_FILES) {
      const text = await readFile(join(dir, name), 'utf8').catch(() => undefined);
      if (text !== undefined) files[name] = text;
    }
    if (Object.keys(files).length === 0)
      throw new AgentError('not-found', `container ${id} has no cgroup in the guest`);
    return files;
  }

  async signalAll(id: string, signal: number): Promise<void> {
    const container = this.get(id);
    await crun(['kill', '--all', container.id, String(signal)], join(container.bundle, 'crun.log')).done;
  }

  async remove(id: string): Promise<void> {
    const container = this.get(id);
    await crun(['delete', '--force', container.id], join(container.bundle, 'crun.log')).done.catch(
      (err: unknown) => {
        log.warn('crun delete failed', { id, error: String(err) });
      },
    );
    await rm(container.bundle, { recursive: true, force: true });
    this.containers.delete(id);
  }

  /**
   * The host names a container `to` from now on (a fork of a saved VM: the guest's container is
   * the parent's, named by the parent's ID). crun and the guest's paths keep the name it was
   * created with; only the host's name for it changes. Nothing named `from`: nothing to do.
   */
  async rename(from: string, to: string, hostname: string): Promise<void> {
    const container = this.containers.get(from);
    if (!container || from === to) return;
    if (this.containers.has(to)) throw new AgentError('exists', `container ${to} already exists`);
    this.containers.delete(from);
    this.containers.set(to, container);
    log.debug('renamed', { from, to, crunId: container.id });
    // Its UTS namespace (crun gave it the parent's hostname) takes the fork's, before the host
    // asks it anything: busybox's nsenter runs hostname in that namespace alone.
    if (hostname && !container.init.exited) {
      await runTool(BUSYBOX, [
        'nsenter',
        '-t',
        String(container.init.pid),
        '-u',
        BUSYBOX,
        'hostname',
        hostname,
      ]);
    }
  }

  private get(id: string): Container {
    const container = this.containers.get(id);
    if (!container) throw new AgentError('not-found', `container ${id} not found`);
    return container;
  }

  /**
   * Runs a crun command that leaves a process behind (create, exec --detach). The process
   * keeps the pipes given to crun as its stdio after crun exits; its pid comes from the pid
   * file, and its exit status from the reaper once PID 1 reaps it.
   */
  private async spawnDetached(
    args: string[],
    bundle: string,
    pidFile: string,
    io: { stdin: boolean; terminal?: { size?: { height: number; width: number } } },
  ): Promise<GuestProcess> {
    if (io.terminal) return this.spawnOnTerminal(args, bundle, pidFile, io.terminal.size);
    const pipes = processPipes(io.stdin);
    const run = this.runCrun(args, join(bundle, 'crun.log'), pipes.childFds);
    // After hull-spawn has its copies (the request carries them) or crun was spawned.
    await run.sent;
    pipes.closeChildEnds();
    const outputs = { stdout: new OutputPipe(pipes.stdout), stderr: new OutputPipe(pipes.stderr) };
    try {
      await run.done;
    } catch (err) {
      pipes.destroy();
      throw err;
    }
    return new GuestProcess(readPid(pidFile), pipes.stdin, outputs.stdout, outputs.stderr, this.reaper);
  }

  /**
   * Runs crun to its exit on `stdio`: started by hull-spawn's server (a fork of that small
   * process; under software emulation a fork of the agent's large address space and Node's
   * spawn path cost tens of milliseconds more, most of all in a fresh clone), its exit status
   * then from the reaper, as crun is PID 1's child once hull-spawn's has exited; by Node when
   * the server cannot be asked. `sent` resolves once the descriptors have been handed over.
   */
  private runCrun(
    args: string[],
    logFile: string,
    stdio: [number, number, number],
  ): { sent: Promise<void>; done: Promise<void> } {
    const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
    const spawned = this.spawner.spawn(['--plain', CRUN, ...crunArgs(args, logFile)], env, stdio);
    const started = spawned.then(
      (pid) => ({ pid }),
      (err: unknown) => {
        if (!(err instanceof SpawnerUnavailable)) throw err;
        log.warn('starting crun from the agent', { why: err.message });
        return { run: crun(args, logFile, stdio) };
      },
    );
    const done = started.then(async (how) => {
      if ('run' in how) return how.run.done;
      const status = await this.reaper.wait(how.pid);
      if (status !== 0) throw await crunFailure(args, logFile, `exit ${exitCodeOf(status)}`);
    });
    // Awaited by the caller once `sent` has settled; never an unhandled rejection meanwhile.
    done.catch(() => {});
    // The request went out with the descriptors at once; Node's spawn dups them synchronously.
    return {
      sent: started.then(
        () => undefined,
        () => undefined,
      ),
      done,
    };
  }

  /**
   * The same for a process with a terminal: crun hands its pty to a console socket, and the
   * terminal helper's pipes stand in for stdio (a terminal has one output stream, no stderr).
   */
  private async spawnOnTerminal(
    args: string[],
    bundle: string,
    pidFile: string,
    size?: { height: number; width: number },
  ): Promise<GuestProcess> {
    // Unix socket paths hold 107 bytes; container IDs alone may be 64. Keep these short.
    mkdirSync(TERMINAL_SOCKETS, { recursive: true });
    const socket = join(TERMINAL_SOCKETS, `${++this.terminals}.sock`);
    const terminal = await openGuestTerminal(socket);
    // Read the helper's output from now on: a process that exits before crun returns ends the
    // helper too, and Node discards what an exited child's unread stdout held, end included.
    const output = new OutputPipe(terminal.output);
    if (size) terminal.resize(size.height, size.width);
    const [verb, ...rest] = args;
    await crun([verb!, '--console-socket', socket, ...rest], join(bundle, 'crun.log')).done.catch(
      (err: unknown) => {
        terminal.input.destroy();
        throw err;
      },
    );
    return new GuestProcess(
      readPid(pidFile),
      terminal.input,
      output,
      new OutputPipe(null),
      this.reaper,
      terminal.resize,
    );
  }
}
