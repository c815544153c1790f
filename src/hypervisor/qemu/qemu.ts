import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { chown, lstat, mkdir, realpath, rmdir, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HullError, isHullError, messageOf } from '../../errors.js';
import { logger } from '../../log.js';
import { type CgroupLimits, VmmCgroup } from '../../sys/cgroup.js';
import { run } from '../../sys/exec.js';
import { findSystemTool } from '../../sys/system-tool.js';
import { listenPrivately } from '../../sys/unix-socket.js';
import { markHost } from '../../trace/boot-marks.js';
import { deadlineSignal, raceSignal, settledWithin, sleep } from '../../util/deadline.js';
import { type Arch, archProfile } from '../arch.js';
import { parseCpuHelp, parseCpuPropertyHelp } from '../cpu-model.js';
import type { Accel, Hypervisor, Vm, VmConfig, VmEndNotice, VmExit } from '../hypervisor.js';
import { hullJailPath, type JailPlan, jailArgs, vmmLibraryDir, vmmUserFor } from '../jail/jail.js';
import { watchShareServer } from '../jail/share-server.js';
import { vmmLibrariesUsable } from '../jail/vmm-libs-check.js';
import { forgetBootId, type VmmProcess } from './boot-id.js';
import {
  DEFAULT_TCG_CACHE_MIB,
  type QemuPaths,
  qemuCommandLine,
  TEMPLATE_MEMORY_FD,
  TEMPLATE_STATE_FD,
  tapFd,
  WRITABLE_DRIVE,
} from './command-line.js';
import { QmpClient } from './qmp.js';
import { announcedEnd, endedByStop, noteShutdownEvent, type VmEnding } from './vm-end.js';

/** A save's pace in bytes per second: no limit a local disk would reach (QEMU's own is 128 MiB/s). */
const SAVE_BANDWIDTH = 2 ** 40;

/** Unix socket paths are limited to 107 bytes. */
const MAX_SOCKET_PATH = 107;
/**
 * How long a QEMU's exit waits for the end of its QMP connection, whose last lines say why it
 * ended: the kernel closes it as QEMU dies, so only a reader held up elsewhere takes longer.
 */
const QMP_LAST_WORDS_MS = 1000;

/**
 * What QEMU and the process that owns it (monitor or shim) need besides guest RAM: memory they
 * map, and threads they start.
 */
export const VMM_OVERHEAD_MIB = 256;

/** x86_64's QEMU binary, the one a VM of the host's architecture runs on x86_64 hosts. */
export const QEMU_BINARY = archProfile('x86_64').qemuBinary;
const VMM_MAX_PIDS = 1024;

/**
 * A VMM cgroup's limits for `guestBytes` of guest memory: that, plus the VMM's and its
 * owner's own (VMM_OVERHEAD_MIB), plus TCG's translation cache; and tasks enough for QEMU's
 * and the owner's threads.
 *
 * A clone's guest memory is counted twice. Its RAM is a private mapping of its template's
 * memory file, and a page the template never touched is a hole there: the clone's first
 * touch of it makes the kernel put a page of zeros into the template's file (charged to the
 * clone's cgroup, as shmem) and then, on a write, a private copy (charged again, as anon). A
 * clone whose guest uses its memory after a template was made would otherwise be killed at
 * about half of it (seen writing 200 MiB of files in a 512 MiB guest).
 */
export function vmmCgroupLimits(
  guestBytes: number,
  accel: Accel,
  tcgCacheMiB = DEFAULT_TCG_CACHE_MIB,
  clone = false,
): CgroupLimits {
  const overheadMiB = VMM_OVERHEAD_MIB + (accel === 'tcg' ? tcgCacheMiB : 0);
  const guestCharged = clone ? 2 * guestBytes : guestBytes;
  return { memoryBytes: guestCharged + overheadMiB * 2 ** 20, pids: VMM_MAX_PIDS };
}

export function qemuPaths(runDir: string): QemuPaths & { jailRoot: string; migrationSocket: string } {
  const paths = {
    agentSocket: join(runDir, 'agent.sock'),
    qmpSocket: join(runDir, 'qmp.sock'),
    // A template's device state comes out here: QEMU 7.2 migrates to a descriptor only by
    // a name passed over QMP with SCM_RIGHTS, which Node cannot send.
    // Short: with agent.sock, the longest name here, it bounds how deep a state directory may be.
    migrationSocket: join(runDir, 'mig.sock'),
    consoleLog: join(runDir, 'console.log'),
    jailRoot: join(runDir, 'vmm-root'),
  };
  if (Buffer.byteLength(paths.agentSocket) > MAX_SOCKET_PATH) {
    throw new HullError(
      'ERR_USAGE',
      `the state directory ${runDir} is too long for unix sockets: use a shorter --root`,
    );
  }
  return paths;
}

async function listen(path: string): Promise<Server> {
  const server = createServer();
  await listenPrivately(server, path);
  return server;
}

function accept(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', resolve));
}

/**
 * Stops listening and removes the socket file now. (server.close()'s callback would wait for
 * the accepted connections to end, that is, for the VM to exit.)
 */
function stopListening(server: Server): void {
  server.close();
}

/** The host system's files QEMU runs from: its binary, its libraries, its firmware. */
async function systemPaths(binary: string): Promise<{ files: string[]; symlinks: string[] }> {
  const candidates = ['/usr', '/bin', '/lib', '/lib64', '/etc/ld.so.cache'];
  const binaryDir = dirname(await realpath(binary));
  if (!binaryDir.startsWith('/usr/')) candidates.push(binaryDir);
  const found = { files: [] as string[], symlinks: [] as string[] };
  for (const path of candidates) {
    const info = await lstat(path).catch(() => undefined);
    if (info) (info.isSymbolicLink() ? found.symlinks : found.files).push(path);
  }
  return found;
}

/**
 * QEMU's confinement: its own user, cgroup and mount namespace holding only the files of this
 * VM (see jail/hull-jail.c), no capability, and the share only through hull-share-server,
 * read-only at its top so the guest cannot change the paths the host later mounts containers at.
 */
async function jailPlan(
  config: VmConfig,
  paths: QemuPaths & { jailRoot: string; migrationSocket: string },
  binary: string,
  cgroup: VmmCgroup,
  vmmUser: Promise<number>,
  signal: AbortSignal,
): Promise<JailPlan> {
  await mkdir(paths.jailRoot, { mode: 0o700 });
  await writeFile(paths.consoleLog, '', { mode: 0o600 });
  const images = [
    config.kernel,
    config.initrd,
    config.rootfs,
    config.agentSnapshot,
    config.rootfsDisks?.image,
    // A fork's writable disk is an overlay: QEMU reads its backing file by the path it names.
    config.rootfsDisks?.backing,
  ].filter((p): p is string => p !== undefined);
  const libraryDir = vmmLibraryDir();
  const [system, uid, librariesUsable] = await Promise.all([
    systemPaths(binary),
    vmmUser,
    vmmLibrariesUsable(binary, libraryDir, signal),
  ]);
  // QEMU makes the debug console's socket in a directory of its own, which it alone may write.
  const debugDir = config.debugConsole && dirname(config.debugConsole);
  if (debugDir) {
    await mkdir(debugDir, { mode: 0o700 });
    await chown(debugDir, uid, uid);
  }
  // Every VM can be saved (a template, or a sandbox paused to disk): its state comes out
  // through the migration socket.
  const readWrite = [
    paths.agentSocket,
    paths.qmpSocket,
    paths.consoleLog,
    paths.migrationSocket,
    // The container's writable disk is this VMM's to write; hull made it, and never mounts it.
    ...(config.rootfsDisks ? [config.rootfsDisks.writable] : []),
  ];
  // QEMU has no capability: the sockets it connects to and the log it writes are its own.
  await Promise.all(readWrite.map((path) => chown(path, uid, uid)));
  return {
    root: paths.jailRoot,
    uid,
    readOnly: [...system.files, ...images],
    symlinks: system.symlinks,
    readWrite: [...readWrite, ...(debugDir ? [debugDir] : [])],
    // A VM with its container's root on disks has no share device: no share, no share server.
    share: config.rootfsDisks
      ? undefined
      : { path: config.shareDir, writableTop: config.shareRootWritable === true },
    devices: [
      '/dev/null',
      '/dev/zero',
      '/dev/urandom',
      '/dev/random',
      ...(config.accel === 'kvm' ? ['/dev/kvm'] : []),
      ...(config.network?.vhost ? ['/dev/vhost-net'] : []),
    ],
    cgroupProcs: cgroup.procsFiles,
    // Huge pages only where they make guest RAM faster: RAM of the VMM's own under KVM. Under
    // TCG every guest access goes through QEMU's software TLB of 4 KiB pages (a templated
    // `hull run` measured no slower without them), and a template's or a clone's RAM is a
    // shared file whose private copies are base pages anyway. Without them an idle clone
    // holds 2 MiB less: the ACPI tables block (one page written) is one page, not 2 MiB.
    hugePages:
      config.accel === 'kvm' && (config.template === undefined || config.template.role === 'restore'),
    // Only where this QEMU starts with them (vmm-libs-check.ts): else no VM would start at all.
    libraryPath: librariesUsable ? libraryDir : undefined,
    taps: config.network && {
      netns: config.network.netns,
      // QEMU saves whether a card's tap had virtio-net headers, and refuses to load a state
      // that had them into a card without (a template's, whose cards have no tap). A VM whose
      // root is on disks can be saved, snapshotted and forked: its taps have none. A clone's
      // guest negotiated its card's features with its template's tapless card anyway.
      plain: config.rootfsDisks !== undefined,
      devices: config.network.nics
        .map((nic, index) => ({ name: nic.tap, fd: tapFd(index) }))
        .filter((tap) => tap.name),
    },
  };
}

/**
 * QEMU's stdio: its stderr read for error messages; with a template, the template's memory
 * and state file on the descriptors the command line names (hull-jail leaves them open).
 */
function vmmStdio(config: VmConfig): ('ignore' | 'pipe' | number)[] {
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'ignore', 'pipe'];
  if (config.template) {
    while (stdio.length < TEMPLATE_MEMORY_FD) stdio.push('ignore');
    // Every slot filled: Node skips holes in this array, which would move the ones after.
    stdio[TEMPLATE_MEMORY_FD] = config.template.role === 'restore' ? 'ignore' : config.template.memoryFd;
    if (config.template.role !== 'template') stdio[TEMPLATE_STATE_FD] = config.template.stateFd;
    else if (config.template.loadFd !== undefined) stdio[TEMPLATE_STATE_FD] = config.template.loadFd;
  }
  return stdio;
}

/** Leaves the template's RAM out of a migration stream, at both ends (see templateSwitches). */
function ignoreSharedMemory(qmp: QmpClient, signal: AbortSignal): Promise<unknown> {
  return qmp.execute(
    'migrate-set-capabilities',
    { capabilities: [{ capability: 'x-ignore-shared', state: true }] },
    signal,
  );
}

/**
 * A clone loads its template's device state once QEMU has started (`-incoming defer`); the
 * template was paused when saved, so the clone is paused once loaded, and is resumed here.
 * Returns once it runs; a state QEMU cannot load makes it exit (which the caller races with
 * this).
 */
async function resumeClone(
  qmp: QmpClient,
  config: VmConfig,
  options: { ignoreShared: boolean; resume: boolean; vmm: VmmProcess },
  signal: AbortSignal,
): Promise<void> {
  if (options.ignoreShared) await ignoreSharedMemory(qmp, signal);
  await qmp.execute('migrate-incoming', { uri: `fd:${TEMPLATE_STATE_FD}` }, signal);
  let resized = false;
  let bootIdDone = false;
  for (;;) {
    const { status } = await qmp.execute<{ status: string }>('query-status', undefined, signal);
    if (status === 'running') {
      // A copy that came up running has run with its parent's boot id: never let it pass.
      if (options.resume && config.template?.freshBootId && !bootIdDone) {
        throw new HullError(
          'ERR_BOOT_ID',
          'the copy ran before its boot id could be made new (it was saved running)',
        );
      }
      return;
    }
    if (status === 'paused' || status === 'postmigrate') {
      if (!options.resume) return;
      // A clone's writable disk is its own size, not its template's placeholder's.
      if (config.template?.role === 'clone' && !config.template.withRam && config.rootfsDisks && !resized) {
        await tellWritableDiskSize(qmp, config.rootfsDisks.writableBytes, signal);
        resized = true;
      }
      // A copy of a running VM: its kernel makes its own boot id at its next read.
      const freshBootId = config.template?.freshBootId;
      if (freshBootId && !bootIdDone) {
        const address = await freshBootId(signal);
        if (address !== undefined) {
          try {
            await forgetBootId(qmp, options.vmm, address, signal);
            markHost('boot-id-forgotten');
          } catch (err) {
            signal.throwIfAborted();
            // A host where root may not write QEMU's memory (Yama's ptrace_scope 3), or a
            // guest that named an address outside its RAM: the copy runs on with the boot id
            // it was saved with, as when the guest cannot say where it is.
            logger('qemu').warn(
              { err: messageOf(err) },
              "ERR_BOOT_ID: the copy's boot id could not be made new; it keeps its parent's",
            );
          }
        }
        bootIdDone = true;
      }
      await qmp.execute('cont', undefined, signal);
    } else if (status === 'inmigrate') await sleep(1, signal);
    else throw new HullError('ERR_VM_START', `the saved VM could not be loaded (QEMU is ${status})`);
  }
}

/**
 * A clone's guest believes its writable disk has the template's placeholder size (its driver
 * read it at probe). Resizing the drive to the size its file already has changes nothing on
 * the host, and raises the virtio config-change interrupt on which the guest reads the size
 * again; the agent waits for it before mounting the disk (see guest/agent/rootfs-disks.ts).
 */
async function tellWritableDiskSize(qmp: QmpClient, bytes: number, signal: AbortSignal): Promise<void> {
  await qmp.execute('block_resize', { device: WRITABLE_DRIVE, size: bytes }, signal);
}

/** Collects the tail of a stream, for error messages. */
function tail(stream: NodeJS.ReadableStream | null, limit = 4096): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-limit);
  });
  return () => text.trim().split('\n').pop() ?? '';
}

/**
 * The QEMU driver: one qemu-system process per VM, driven over QMP. One driver for every guest
 * architecture: what differs (the binary, the machine, the console) is data in arch.ts.
 */
export class QemuHypervisor implements Hypervisor {
  private readonly binary: string;

  constructor(
    readonly arch: Arch = 'x86_64',
    binary?: string,
  ) {
    this.binary = binary ?? archProfile(arch).qemuBinary;
  }

  private async resolveBinary(): Promise<string> {
    const binary = this.binary.includes('/') ? this.binary : findSystemTool(this.binary);
    if (!binary) {
      throw new HullError(
        'ERR_QEMU_MISSING',
        `${this.binary} is not installed: run \`apt-get install ${archProfile(this.arch).qemuPackage}\``,
      );
    }
    return binary;
  }

  async identity(): Promise<string> {
    const path = await realpath(await this.resolveBinary());
    const info = await stat(path);
    return `${path} ${info.size} ${Math.round(info.mtimeMs)}`;
  }

  async version(signal?: AbortSignal): Promise<string> {
    const out = await run(await this.resolveBinary(), ['--version'], {
      signal,
      errorCode: 'ERR_QEMU_MISSING',
    });
    return out.split('\n')[0]?.trim() ?? '';
  }

  async cpuModels(signal?: AbortSignal): Promise<string[]> {
    const out = await run(await this.resolveBinary(), ['-cpu', 'help'], {
      signal,
      errorCode: 'ERR_QEMU_MISSING',
    });
    return parseCpuHelp(out);
  }

  async cpuModelOptions(model: string, signal?: AbortSignal): Promise<string[]> {
    const type = `${model}${archProfile(this.arch).cpuTypeSuffix}`;
    const out = await run(await this.resolveBinary(), ['-device', `${type},help`], { signal }).catch(
      () => '',
    );
    return parseCpuPropertyHelp(out);
  }

  async templateShape(config: VmConfig): Promise<string> {
    // The paths of one VM's own files are not part of the shape; everything else is.
    const placeholder = {
      ...config,
      arch: this.arch,
      id: 'template',
      runDir: '/run',
      shareDir: '/share',
      rootfsDisks: config.rootfsDisks && {
        image: '/image',
        writable: '/writable',
        writableBytes: 0,
        backing: config.rootfsDisks.backing && '/backing',
      },
    };
    const paths = { agentSocket: '/agent', qmpSocket: '/qmp', consoleLog: '/console' };
    return [await this.identity(), ...qemuCommandLine(placeholder, paths)].join('\n');
  }

  async start(config: VmConfig, signal: AbortSignal): Promise<Vm> {
    const log = logger('qemu');
    const binary = await this.resolveBinary();
    const paths = qemuPaths(config.runDir);
    const args = qemuCommandLine({ ...config, arch: this.arch }, paths);
    const place = config.hostCgroup ?? {
      path: VmmCgroup.defaultPath(config.id),
      limits: vmmCgroupLimits(
        config.memoryMiB * 2 ** 20,
        config.accel,
        undefined,
        config.template?.role === 'clone',
      ),
    };
    // The VMM's user is found by reading every process's status (vmmUserFor): begun now, it
    // overlaps the cgroup's and the sockets' set-up instead of following them on the start's
    // path.
    const vmmUser = vmmUserFor(config.id);
    vmmUser.catch(() => {});
    const cgroup = await VmmCgroup.create(place.path, place.limits);
    const owner = config.hostCgroup?.owner;
    let listeners: [Server, Server] | undefined;
    let migrationListener: Server | undefined;
    let plan: JailPlan;
    // The owner's move into the cgroup waits in the kernel (the host's first cgroup migration
    // in a while waits for an RCU grace period, ~10-16 ms here, idle): begun now, it overlaps
    // the sockets', the jail's and QEMU's start, and is waited for before start() returns.
    const joining = owner ? cgroup.join(owner) : undefined;
    joining?.catch(() => {});
    // The owner leaves once, at the VM's stop or at QEMU's exit, whichever comes first: begun at
    // the stop, its wait in the kernel (as the join's) overlaps QEMU's quit instead of
    // following QEMU's exit on the teardown's path. A container that has exited has nothing
    // left for the owner to account to its VM.
    let leaving: Promise<void> | undefined;
    const leaveOwner = () => {
      leaving ??= (async () => {
        await joining?.catch(() => {});
        if (owner) await cgroup.leave(owner);
      })();
      return leaving;
    };
    try {
      listeners = await Promise.all([listen(paths.agentSocket), listen(paths.qmpSocket)]);
      migrationListener = await listen(paths.migrationSocket);
      plan = await jailPlan(config, paths, binary, cgroup, vmmUser, signal);
    } catch (err) {
      listeners?.forEach(stopListening);
      if (migrationListener) stopListening(migrationListener);
      await rmdir(paths.jailRoot).catch(() => {});
      // Left only once its move in is over, so that the cgroup can go.
      await joining?.catch(() => {});
      if (owner) await cgroup.leave(owner);
      await cgroup.remove();
      throw err;
    }
    const [agentListener, qmpListener] = listeners;
    const closeListeners = () => [agentListener, qmpListener].forEach(stopListening);
    log.debug({ binary, args, jail: plan }, 'starting QEMU');
    const child = spawn(hullJailPath(), jailArgs(plan, binary, args), {
      stdio: vmmStdio(config),
    });
    const stderrTail = tail(child.stderr);
    let shareServerLost: number | undefined;
    // Why the VM ends, as QEMU says it on QMP and as stop() asks it (see vm-end.ts).
    const ending: VmEnding = { stopAsked: false, killedByStop: false };
    let qmpEnded: Promise<void> | undefined;
    // Told as soon as QEMU says its VM ends: a while before its exit is (Vm.endAnnounced).
    let announce: (notice: VmEndNotice) => void = () => {};
    const endAnnounced = new Promise<VmEndNotice>((resolve) => {
      announce = resolve;
    });
    const exited = new Promise<VmExit>((resolve) => {
      const ended = async (exit: VmExit) => {
        // QEMU says why it ends (QMP SHUTDOWN) before it exits, on a connection that closes
        // only as it dies: everything on it is read before the exit is told.
        if (qmpEnded) await settledWithin(qmpEnded, QMP_LAST_WORDS_MS);
        const oomKilled = await cgroup.oomKilled();
        await leaveOwner();
        await cgroup
          .remove()
          .catch((err: unknown) => log.warn({ err: String(err) }, 'removing the VM cgroup'));
        const full = {
          ...exit,
          ...(oomKilled ? { oomKilled } : {}),
          ...(shareServerLost ? { shareServerLost } : {}),
        };
        const byStop = endedByStop(full, ending);
        log.debug({ exit: full, ending }, 'QEMU exited');
        resolve({
          ...full,
          ...(byStop !== undefined ? { byStop } : {}),
          ...(ending.shutdown ? { shutdownReason: ending.shutdown.reason } : {}),
        });
      };
      child.on('exit', (code, sig) => {
        if (migrationListener) stopListening(migrationListener);
        void ended({ code, signal: sig });
      });
      child.on('error', () => void ended({ code: null, signal: null }));
    });
    const startError = (exit: VmExit) =>
      new HullError(
        'ERR_VM_START',
        `QEMU exited at start (${exit.code ?? exit.signal}): ${stderrTail() || 'no message'}`,
      );
    const died = exited.then((exit) => {
      throw startError(exit);
    });
    died.catch(() => {});
    try {
      const [agentSocket, qmpSocket] = await raceSignal(
        Promise.race([Promise.all([accept(agentListener), accept(qmpListener)]), died]),
        signal,
      );
      closeListeners();
      const qmp = new QmpClient(qmpSocket);
      qmp.on('event', (message: Record<string, unknown>) => {
        noteShutdownEvent(ending, message);
        const notice = announcedEnd(ending);
        if (notice) announce(notice);
      });
      qmpEnded = qmp.ended;
      // A VM whose share server died has lost its files: it is stopped, and says why. The
      // server was started before QEMU, so it is found while QEMU loads.
      const watchingShareServer = watchShareServer(
        child.pid!,
        exited,
        (server) => {
          shareServerLost = server.pid;
          log.error({ pid: server.pid }, 'the share server died: stopping the VM');
          child.kill('SIGKILL');
        },
        { expected: plan.share !== undefined, signal },
      );
      watchingShareServer.catch(() => {});
      await raceSignal(Promise.race([qmp.handshake(signal), died]), signal);
      const role = config.template;
      if (role && (role.role !== 'template' || role.loadFd !== undefined)) {
        // A clone runs on; a saved VM too; a template loaded from a saved VM stays paused, to be
        // saved again as a template.
        const loading = resumeClone(
          qmp,
          config,
          {
            ignoreShared: role.role === 'clone' && !role.withRam,
            resume: role.role !== 'template',
            vmm: { pid: child.pid!, exited: () => child.exitCode !== null || child.signalCode !== null },
          },
          signal,
        );
        await raceSignal(Promise.race([loading, died]), signal);
      }
      await raceSignal(Promise.race([joining, died]), signal);
      const shareServer = await watchingShareServer;
      if (!shareServer && plan.share)
        log.warn({ pid: child.pid }, 'no share server found for the VM: its loss goes unwatched');
      const migration = { listener: migrationListener!, path: paths.migrationSocket };
      const templateStateFd = config.template?.role === 'template' ? config.template.stateFd : undefined;
      return new QemuVm(
        child,
        agentSocket,
        qmp,
        exited,
        endAnnounced,
        ending,
        paths.consoleLog,
        migration,
        leaveOwner,
        () => shareServer?.checkNow(),
        templateStateFd,
      );
    } catch (err) {
      // When QEMU quit by itself, its own message says more than a closed socket does; its
      // exit may be seen a moment after its sockets close.
      if (isHullError(err, 'ERR_VM_EXITED')) await Promise.race([exited, sleep(500)]);
      const quitByItself = child.exitCode !== null || child.signalCode !== null;
      child.kill('SIGKILL');
      const exit = await exited;
      closeListeners();
      if (migrationListener) stopListening(migrationListener);
      // Its root was mounted in QEMU's own namespace only: here it is an empty directory,
      // which a second start in the same directory (a clone that failed, then booted) needs gone.
      await rmdir(paths.jailRoot).catch(() => {});
      throw quitByItself ? startError(exit) : err;
    }
  }
}

class QemuVm implements Vm {
  private stopping: Promise<void> | undefined;
  private hasExited = false;

  constructor(
    private readonly child: ChildProcess,
    readonly agentChannel: Socket,
    private readonly qmp: QmpClient,
    readonly exited: Promise<VmExit>,
    readonly endAnnounced: Promise<VmEndNotice>,
    /** Filled in as the VM heads for its end; read when its exit is told. */
    private readonly ending: VmEnding,
    readonly consoleLog: string,
    /** Where its saved state is received (QEMU connects to it when told to migrate). */
    private readonly migration: { listener: Server; path: string },
    /** Moves the process that owns the VM out of its cgroup (once; see start()). */
    private readonly leaveOwner: () => Promise<void>,
    /** Looks at the share server now: one that died is the VM's loss (ShareServerWatch). */
    private readonly checkShareServer: () => void,
    /** A template's: the file its device state is written to. */
    private readonly templateStateFd?: number,
  ) {
    void exited.then(() => {
      this.hasExited = true;
      stopListening(migration.listener);
      qmp.close();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  async saveTemplate(signal: AbortSignal): Promise<void> {
    if (this.templateStateFd === undefined)
      throw new HullError('ERR_INTERNAL', 'this VM was not started as a template');
    const sink = createWriteStream('', { fd: this.templateStateFd, autoClose: false });
    await this.saveState(sink, { ignoreSharedMemory: true, resume: false }, signal);
  }

  async saveState(
    sink: Writable,
    options: { ignoreSharedMemory: boolean; resume: boolean; whileStopped?: () => Promise<void> },
    signal: AbortSignal,
  ): Promise<void> {
    const { listener, path } = this.migration;
    await this.qmp.execute('stop', undefined, signal);
    try {
      // Before the state: a fork's VMM, which waits for the stream (see snapshot/state-stream.ts),
      // then opens its copy of the disk.
      await options.whileStopped?.();
    } catch (err) {
      await this.qmp.execute('cont', undefined, AbortSignal.timeout(5000)).catch(() => {});
      throw err;
    }
    await this.qmp.execute(
      'migrate-set-capabilities',
      { capabilities: [{ capability: 'x-ignore-shared', state: options.ignoreSharedMemory }] },
      signal,
    );
    // QEMU paces a migration to 128 MiB/s unless told otherwise, a limit meant for a network
    // shared with running guests; a save goes to a local file from a stopped VM, as fast as
    // the disk takes it.
    await this.qmp.execute('migrate-set-parameters', { 'max-bandwidth': SAVE_BANDWIDTH }, signal);
    try {
      const written = raceSignal(accept(listener), signal).then((stream) =>
        pipeline(stream, sink, { signal }),
      );
      written.catch(() => {});
      await this.qmp.execute('migrate', { uri: `unix:${path}` }, signal);
      await this.waitForMigration(signal);
      await written;
    } catch (err) {
      // A save that failed leaves the VM running as it was, never stopped for good.
      const settle = AbortSignal.timeout(5000);
      await this.qmp.execute('migrate_cancel', undefined, settle).catch(() => {});
      await this.qmp.execute('cont', undefined, settle).catch(() => {});
      throw err;
    }
    // A snapshot of a running VM: it goes on where it was (QEMU takes its disks back at `cont`).
    if (options.resume) await this.qmp.execute('cont', undefined, signal);
  }

  private async waitForMigration(signal: AbortSignal): Promise<void> {
    for (;;) {
      const state = await this.qmp.execute<{ status?: string; 'error-desc'?: string }>(
        'query-migrate',
        undefined,
        signal,
      );
      if (state.status === 'completed') return;
      if (state.status === 'failed' || state.status === 'cancelled') {
        throw new HullError(
          'ERR_SAVED_STATE',
          `saving the VM failed: ${state['error-desc'] ?? state.status}`,
        );
      }
      await sleep(10, signal);
    }
  }

  stop(options: { graceMs?: number } = {}): Promise<void> {
    // Before any wait: an exit seen from now on may be this stop's (see vm-end.ts).
    this.ending.stopAsked = true;
    this.stopping ??= this.doStop(options.graceMs ?? 2000);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    this.checkShareServer();
    this.agentChannel.destroy();
    this.leaveOwner().catch(() => {});
    if (!this.hasExited) {
      const { signal, dispose } = deadlineSignal(
        graceMs,
        () => new HullError('ERR_VM_EXITED', 'QEMU did not quit'),
      );
      try {
        await this.qmp.execute('quit', undefined, signal).catch(() => {});
        await raceSignal(this.exited, signal);
      } catch {
        this.ending.killedByStop = true;
        this.child.kill('SIGKILL');
      } finally {
        dispose();
      }
    }
    await this.exited;
    this.qmp.close();
  }
}
