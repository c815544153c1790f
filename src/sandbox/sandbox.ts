import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentClient, type ContainerPlacement, type GuestInfo, type ProcessInput } from '../agent/client.js';
import { HullError, isHullError, messageOf } from '../errors.js';
import type { Hypervisor, Vm, VmConfig, VmEndNotice, VmExit } from '../hypervisor/hypervisor.js';
import { consoleCause, consoleCauseOrLastLine } from '../image/console-cause.js';
import type { GuestImage } from '../image/manifest.js';
import { logger } from '../log.js';
import { discoverNetwork } from '../network/discover.js';
import type { GuestNetwork } from '../network/guest-network.js';
import { requireNetns } from '../network/netns.js';
import { connectTaps, disconnectTaps } from '../network/tc-redirect.js';
import { hostHasVhostNet } from '../network/vhost.js';
import { guestResources } from '../oci/guest-resources.js';
import {
  asksRootOnDisks,
  hasRootOnDisks,
  ROOTFS_ANNOTATION,
  ROOTFS_DISK_ANNOTATION,
  ROOTFS_IMAGE_ANNOTATION,
} from '../oci/rootfs-annotations.js';
import { isBindMount } from '../oci/spec.js';
import type { RootfsDisks } from '../storage/rootfs-disks.js';
import { type ContainerFiles, SandboxShare } from '../storage/share.js';
import type { Mounter } from '../sys/mount.js';
import { type CloneSource, restoreFailedNotice } from '../template/clone.js';
import { hostNowMs, markGuest, markHost } from '../trace/boot-marks.js';
import { deadlineSignal, raceSignal } from '../util/deadline.js';
import type { Bundle } from './bundle.js';
import { firstLossReason } from './loss-explanation.js';
import { VmEndWitness } from './vm-end-witness.js';

/** How long a failed request waits to learn whether the VM ended under it (explainFailure). */
const EXPLAIN_WAIT_MS = 3000;

/** Where a sandbox's VMM listens for `hull debug-console`, when the setting is on. */
export function debugConsoleSocket(sandboxDir: string): string {
  return join(sandboxDir, 'debug', 'console.sock');
}

/** What saving a sandbox's VM needs besides the VM and its agent (see snapshot/saved-vm.ts). */
export interface SavingParts {
  /** The VM's configuration as it was started. */
  config: VmConfig;
  hypervisor: Hypervisor;
  imageHash: string;
  /** Whether the VM was cloned (or resumed): a booted VM's RAM has no name to save by. */
  cloned: boolean;
}

export interface SandboxOptions {
  id: string;
  /** This sandbox's own directory under the runtime root; must not exist yet. */
  dir: string;
  image: GuestImage;
  hypervisor: Hypervisor;
  mounter: Mounter;
  accel: VmConfig['accel'];
  cpuModel: string;
  /** The agent's startup snapshot disk for this CPU model, if there is one. */
  agentSnapshot?: string;
  /** Called when the guest refused the snapshot and its agent started without it. */
  onAgentSnapshotRejected?: () => Promise<void>;
  vcpus: number;
  memoryMiB: number;
  hostname?: string;
  /**
   * The host network namespace whose interfaces the VM takes over (the path a client gave, or
   * the monitor's own); none gives the guest only its loopback.
   */
  netns?: string;
  tscKhz?: number;
  /** TCG's translation cache in MiB (see VmConfig). */
  tcgCacheMiB?: number;
  /** The sandbox's host cgroup (see host-cgroup.ts). */
  hostCgroup?: VmConfig['hostCgroup'];
  /** A root shell port in the guest for `hull debug-console` (the vm.debug_console setting). */
  debugConsole?: boolean;
  /**
   * The root disks of the one container this VM is for (see storage/rootfs-disks.ts), when its
   * bundle names them: that container's root is then on them, not in the share.
   */
  rootfsDisks?: RootfsDisks;
  /** How long the VM may take from start to an answering agent. */
  bootTimeoutMs: number;
  /**
   * The container this VM is made for, when its files go through the share: they are bound
   * into the share while the VM starts, not after its agent answers (see createContainer).
   */
  firstContainer?: { id: string; bundle: Bundle };
  /** The template to clone the VM from, if any (see src/template/clone.ts); none boots it. */
  cloneSource?: (
    config: VmConfig,
    signal: AbortSignal,
  ) => Promise<{ source?: CloneSource; problem?: string }>;
  /** Where one-line notices go (a template that could not be used). */
  notice?: (line: string) => void;
  debug?: boolean;
}

/**
 * A sandbox is one VM and what runs in it. It coordinates three parts that do not know each
 * other: the hypervisor (the VM), the agent client (the guest), and the share (host files
 * the guest sees). Whatever fails on the way up is torn down again before the error returns.
 */
export class Sandbox {
  private destroying: Promise<void> | undefined;
  /** Whether the VM ended by itself or by hull, whatever order the signs came in. */
  private readonly end = new VmEndWitness();
  /** Why the VM ended by itself, worded once its exit is seen (see lossReason). */
  private readonly loss: Promise<string | undefined>;
  /** The first container's files, put in the share during the start (see firstContainer). */
  private placed: { id: string; placement: ContainerPlacement } | undefined;

  private constructor(
    readonly id: string,
    readonly dir: string,
    readonly vm: Vm,
    readonly agent: AgentClient,
    readonly share: SandboxShare,
    readonly guest: GuestInfo,
    /** The VM's CPU count, onto which a container's CPU set is mapped. */
    readonly vcpus: number,
    /** The host network the VM took over, if it has one. */
    readonly network?: GuestNetwork,
    /** The root disks of the container the VM was made for, if it has them. */
    private readonly rootfsDisks?: RootfsDisks,
    /** What saving the VM needs (snapshot/saved-vm.ts SavableVm, less the VM and agent). */
    readonly saving?: SavingParts,
  ) {
    // A guest that ends itself closes the agent's channel a while before its exit is told
    // (QEMU's cgroup is cleaned up first): a teardown asked in between, by a monitor whose
    // container's process is gone or a client deleting it, must not make the loss hull's.
    vm.agentChannel.once('close', () => this.end.channelClosed());
    vm.agentChannel.once('end', () => this.end.channelClosed());
    // Worded at the exit, from the console log as it was then: a teardown (which removes the
    // log) waits for it, so a loss seen only while tearing down is still named.
    this.loss = vm.exited.then((exit) => {
      this.end.exited(exit);
      return this.end.endedByItself ? describeLoss(exit, vm.consoleLog) : undefined;
    });
    this.loss.catch(() => {});
  }

  /**
   * Why the VM ended, if it ended by itself (QEMU killed, the guest kernel panicked) rather
   * than by hull's teardown: one line for the user and the logs; undefined if its exit is
   * not seen by `signal`.
   */
  lossReason(signal: AbortSignal): Promise<string | undefined> {
    // The agent's channel closes a moment before QEMU's exit is seen.
    return raceSignal(this.loss, signal).catch(() => undefined);
  }

  /**
   * A request to the guest failed: if that was because the VM ended by itself (a container
   * crashing its guest kernel at once), the failure says so in one line; otherwise it is `err`.
   * Only a failure the agent did not answer can be the VM's, so only then is its end awaited.
   */
  async explainFailure(err: unknown, what: string): Promise<unknown> {
    if (isHullError(err) && err.code !== 'ERR_VM_EXITED') return err;
    // QEMU says a guest ended its VM before it closes the agent's channel; its exit may be
    // seen seconds later (its clean-up, then its cgroup's), past any wait worth a user's time.
    const deadline = deadlineSignal(
      EXPLAIN_WAIT_MS,
      () => new HullError('ERR_ABORTED', 'the VM did not say how it ended'),
    );
    const lost = await firstLossReason(
      {
        exitVerdict: this.loss,
        announced: this.vm.endAnnounced,
        describeAnnounced: (notice) => describeAnnouncedLoss(notice, this.vm.consoleLog),
      },
      deadline.signal,
    ).finally(deadline.dispose);
    return lost
      ? new HullError('ERR_VM_EXITED', `the VM of ${what} ended under it: ${lost}`, { cause: err })
      : err;
  }

  static async create(options: SandboxOptions, signal: AbortSignal): Promise<Sandbox> {
    const log = logger('sandbox');
    try {
      await mkdir(options.dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw new HullError(
          'ERR_EXISTS',
          `sandbox ${options.id} already exists: choose another ID or delete it`,
        );
      }
      throw err;
    }
    const share = new SandboxShare(join(options.dir, 'shared'), options.mounter);
    let vm: Vm | undefined;
    let agent: AgentClient | undefined;
    let network: GuestNetwork | undefined;
    let placement: { id: string; placement: ContainerPlacement } | undefined;
    try {
      // The first container's files are placed in the share with the share itself, before
      // QEMU starts, and not between the agent's answer and the container's create, when the
      // guest would wait for them.
      const first = options.firstContainer;
      const placed = await share.prepare(first && containerFiles(first.id, first.bundle));
      if (first && placed) placement = { id: first.id, placement: placed };
      if (options.netns) {
        await requireNetns(options.netns, signal);
        network = await discoverNetwork(options.netns, signal);
        log.debug({ network }, 'network to take over');
      }
      const config = vmConfigFor(options, {
        shareDir: share.dir,
        network: network?.interfaces.length
          ? {
              netns: network.netns,
              nics: network.interfaces.map(({ tap, mac }) => ({ tap, mac })),
              // vhost-net needs virtio-net headers, which a savable VM's taps have not (jail.ts).
              vhost: !options.rootfsDisks && (await hostHasVhostNet()),
            }
          : undefined,
      });
      // Before the boot's deadline: a template made now takes a boot of its own.
      const found = options.cloneSource ? await options.cloneSource(config, signal) : {};
      // Notices about templates are said once the sandbox is up: a guest that cannot boot at
      // all (which is also why its template could not be made) has a better error to give.
      const notices = found.problem ? [found.problem] : [];
      const boot = deadlineSignal(
        options.bootTimeoutMs,
        () =>
          new HullError(
            'ERR_AGENT_TIMEOUT',
            `the VM's agent did not answer within ${options.bootTimeoutMs / 1000}s: see \`hull --debug\`, or raise HULL_BOOT_TIMEOUT`,
          ),
        signal,
      );
      try {
        const started = Date.now();
        const { vm: running, clone } = await startVm(options, config, found.source, boot.signal, notices);
        vm = running;
        if (network) await connectTaps(network, boot.signal);
        agent = new AgentClient(vm.agentChannel, {
          taken: Boolean(clone),
          firstStreamId: clone?.streamIdsFrom,
        });
        const exitedDuringBoot = vm.exited.then(async () => {
          throw new HullError(
            'ERR_VM_EXITED',
            `the VM stopped while booting: ${await consoleCauseOf(vm!)}; \`hull --debug --log FILE\` keeps its console`,
          );
        });
        exitedDuringBoot.catch(() => {});
        const guest = await raceSignal(
          Promise.race([
            agent.waitReady(boot.signal).catch(async (err: unknown) => {
              // The agent's channel closes when QEMU exits; the VM's end says more than that.
              if (isHullError(err, 'ERR_VM_EXITED'))
                await raceSignal(exitedDuringBoot, AbortSignal.timeout(2000));
              throw err;
            }),
            exitedDuringBoot,
          ]),
          boot.signal,
        );
        // A clone's boot phases are its template's, long past.
        if (!clone) markGuest(guest.bootPhases, guest.uptimeSeconds, hostNowMs());
        markHost('agent-answered');
        log.debug(
          {
            id: options.id,
            ms: Date.now() - started,
            kernel: guest.kernelRelease,
            snapshot: guest.agentSnapshot,
            template: clone?.key,
          },
          'agent ready',
        );
        if (guest.agentSnapshot === 'rejected') {
          await options.onAgentSnapshotRejected?.();
          // A clone's agent is its template's: that template goes with the refused snapshot.
          await clone?.discard('its guest refused the agent snapshot');
        }
        // The two are independent and nothing of the container runs before both are done, so
        // they run side by side: a fork's identity renames its container and sets its hostname
        // (a process in the guest) while its network script takes the parent's addresses off.
        await Promise.all([
          agent.createSandbox({ sandboxId: options.id, hostname: options.hostname ?? '' }, boot.signal),
          network?.interfaces.length && !clone?.resumed
            ? agent.setupNetwork(network, boot.signal, { cardMacs: clone?.cardMacs })
            : undefined,
        ]);
        markHost('sandbox-ready');
        for (const line of notices) options.notice?.(line);
        const sandbox = new Sandbox(
          options.id,
          options.dir,
          vm,
          agent,
          share,
          guest,
          options.vcpus,
          network,
          options.rootfsDisks,
          {
            config,
            hypervisor: options.hypervisor,
            imageHash: options.image.manifest.hash,
            cloned: clone !== undefined,
          },
        );
        sandbox.placed = placement;
        return sandbox;
      } finally {
        boot.dispose();
      }
    } catch (err) {
      const detail = vm && isHullError(err, 'ERR_AGENT_TIMEOUT') ? await consoleCauseOf(vm) : '';
      await teardown({ dir: options.dir, vm, agent, share, network }).catch((cleanupErr: unknown) =>
        log.error({ err: messageOf(cleanupErr) }, 'cleanup after a failed start'),
      );
      if (detail && err instanceof HullError) {
        throw new HullError(err.code, `${err.message} (the guest said: ${detail})`, { cause: err });
      }
      throw err;
    }
  }

  /**
   * Shares a bundle's files with the guest and creates its container there (not started, or
   * with `start` started in the same step).
   * In a pod, `sandboxContainerId` names the pod's sandbox container, created earlier;
   * `stdin` says whether the host will relay input (else the process reads /dev/null).
   */
  async createContainer(
    containerId: string,
    bundle: Bundle,
    signal: AbortSignal,
    options: ProcessInput & { sandboxContainerId?: string; start?: boolean },
  ): Promise<number> {
    if (hasRootOnDisks(bundle.spec.annotations) || this.rootfsDisks) {
      return this.createContainerOnDisks(containerId, bundle, signal, options);
    }
    const early = this.placed?.id === containerId ? this.placed.placement : undefined;
    this.placed = undefined;
    const placement = early ?? (await this.share.addContainer(containerFiles(containerId, bundle)));
    const spec = structuredClone(bundle.spec);
    if (spec.linux?.resources) spec.linux.resources = this.forGuest(containerId, spec.linux.resources);
    try {
      return await this.agent.createContainer(
        containerId,
        spec,
        {
          ...placement,
          sandboxContainerId: options.sandboxContainerId,
          stdin: options.stdin,
          start: options.start,
        },
        signal,
      );
    } catch (err) {
      await this.share.removeContainer(containerId);
      throw err;
    }
  }

  /**
   * The container whose root is on the VM's disks: nothing of it goes through the share, so
   * the VM stays savable. Only the container the VM was made for, and without bind mounts
   * (which only the share could carry).
   */
  private async createContainerOnDisks(
    containerId: string,
    bundle: Bundle,
    signal: AbortSignal,
    options: ProcessInput & { sandboxContainerId?: string; start?: boolean },
  ): Promise<number> {
    const disks = this.rootfsDisks;
    const named = bundle.spec.annotations?.[ROOTFS_DISK_ANNOTATION];
    const asked = asksRootOnDisks(bundle.spec.annotations)
      ? `${ROOTFS_ANNOTATION}=disk`
      : ROOTFS_IMAGE_ANNOTATION;
    if (!disks || (named !== undefined && disks.writable !== named)) {
      throw new HullError(
        'ERR_CONFIG',
        `container ${containerId} has its root on disks (${asked}), which only a container with a VM of its own can have (hull create or run, podman, hull serve): not in a pod, nor through the containerd shim`,
      );
    }
    if ((bundle.spec.mounts ?? []).some(isBindMount)) {
      throw new HullError(
        'ERR_CONFIG',
        `container ${containerId} has its root on disks (${asked}) and bind mounts, which only the share carries: remove the bind mounts`,
      );
    }
    const spec = structuredClone(bundle.spec);
    if (spec.linux?.resources) spec.linux.resources = this.forGuest(containerId, spec.linux.resources);
    return this.agent.createContainer(
      containerId,
      spec,
      {
        rootfsSharePath: '',
        sharedMounts: [],
        rootfsDisks: { writableBytes: disks.writableBytes },
        sandboxContainerId: options.sandboxContainerId,
        stdin: options.stdin,
        // `hull run`: created and started in one step, as on the share.
        start: options.start,
      },
      signal,
    );
  }

  /** Changes a container's resources (linux.resources as JSON), adapted to the VM as at create. */
  async updateContainer(containerId: string, resources: unknown, signal: AbortSignal): Promise<void> {
    await this.agent.updateContainer(containerId, this.forGuest(containerId, resources) ?? {}, signal);
  }

  /** Resources as the guest's cgroup v2 takes them; what was dropped or mapped is logged. */
  private forGuest(containerId: string, resources: unknown): Record<string, unknown> | undefined {
    const adapted = guestResources(resources, this.vcpus);
    for (const warning of adapted.warnings) logger('sandbox').warn({ container: containerId }, warning);
    return adapted.resources;
  }

  /** Removes a container from the guest (killing what is left of it) and unshares its files. */
  async removeContainer(containerId: string, signal: AbortSignal): Promise<void> {
    try {
      await this.agent.removeContainer(containerId, signal);
    } finally {
      await this.share.removeContainer(containerId);
    }
  }

  /** Stops the VM and removes every host resource. Safe to call twice. */
  destroy(): Promise<void> {
    this.end.teardown();
    this.destroying ??= teardown(this, this.loss);
    return this.destroying;
  }

  /**
   * Stops the VM now, leaving its host resources to destroy() (a forced delete of a running
   * container): an end asked for, not a loss.
   */
  stopVm(): Promise<void> {
    this.end.teardown();
    return this.vm.stop();
  }
}

/** One line on how a guest ended its VM, as QEMU said it before exiting, with its console's cause. */
function describeAnnouncedLoss(notice: VmEndNotice, consoleLog: string): Promise<string> {
  return withConsoleCause(guestEndedIt(notice.reason), consoleLog);
}

/** One line on how a VM that ended by itself ended, with what its console said of it. */
async function describeLoss(exit: VmExit, consoleLog: string): Promise<string> {
  if (exit.shareServerLost) {
    return `its share server (hull-share-server, pid ${exit.shareServerLost}) died, and the VM, its files gone, was stopped`;
  }
  const how = exit.oomKilled
    ? `QEMU was killed by ${exit.signal ?? 'the kernel'}: its cgroup ran out of memory`
    : exit.signal && exit.shutdownReason?.startsWith('guest-')
      ? // The guest ended the VM, and QEMU, slow to exit, was then killed by the teardown.
        `${guestEndedIt(exit.shutdownReason)} and QEMU, slow to exit, was killed`
      : exit.signal
        ? `QEMU was killed by ${exit.signal}`
        : `QEMU exited with code ${exit.code}`;
  return withConsoleCause(how, consoleLog);
}

const guestEndedIt = (reason: string) => `its guest ended it (${reason})`;

/** `how`, and the cause the guest's console gives (a kernel panic's line), if it gives one. */
async function withConsoleCause(how: string, consoleLog: string): Promise<string> {
  const said = consoleCause(await readFile(consoleLog, 'utf8').catch(() => ''));
  return said ? `${how}; ${said}` : how;
}

/** A container's root filesystem and bind-mount sources, as the share places them (SandboxShare). */
function containerFiles(id: string, bundle: Bundle): ContainerFiles {
  return {
    id,
    root: { path: bundle.rootfs, readonly: bundle.spec.root?.readonly === true },
    mounts: bundle.spec.mounts ?? [],
    bundleDir: bundle.dir,
  };
}

async function teardown(
  parts: {
    dir: string;
    vm?: Vm;
    agent?: AgentClient;
    share: SandboxShare;
    network?: GuestNetwork;
  },
  /** What still reads the VM's files (its console log) once it has exited. */
  reading?: Promise<unknown>,
): Promise<void> {
  parts.agent?.close();
  await parts.vm?.stop();
  // After the VMM: its taps are gone, and the client's interfaces get their traffic back.
  if (parts.network) await disconnectTaps(parts.network);
  const log = logger('guest');
  if (parts.vm && log.isLevelEnabled('debug')) {
    // The console log goes with the sandbox directory; with --debug it is kept in hull's log.
    log.debug({ console: await readFile(parts.vm.consoleLog, 'utf8').catch(() => '') }, 'guest console');
  }
  await reading?.catch(() => {});
  await parts.share.destroy();
  await rm(parts.dir, { recursive: true, force: true });
}

/** The VM of a sandbox: what its options say, with its share and the network it takes over. */
export function vmConfigFor(
  options: Omit<SandboxOptions, 'id' | 'dir' | 'hypervisor' | 'mounter' | 'bootTimeoutMs'> &
    Pick<SandboxOptions, 'id' | 'dir'>,
  parts: { shareDir: string; network?: VmConfig['network'] },
): VmConfig {
  return {
    id: options.id,
    runDir: options.dir,
    kernel: options.image.kernel,
    initrd: options.image.initrd,
    rootfs: options.image.rootfs,
    rootfsDisks: options.rootfsDisks,
    shareDir: parts.shareDir,
    vcpus: options.vcpus,
    memoryMiB: options.memoryMiB,
    accel: options.accel,
    cpuModel: options.cpuModel,
    agentSnapshot: options.agentSnapshot,
    deviceDiscovery: options.image.manifest.kernel.deviceDiscovery,
    tscKhz: options.tscKhz,
    tcgCacheMiB: options.tcgCacheMiB,
    network: parts.network,
    debug: options.debug,
    hostCgroup: options.hostCgroup,
    debugConsole: options.debugConsole ? debugConsoleSocket(options.dir) : undefined,
  };
}

/**
 * Starts the sandbox's VM: cloned from its template when there is one (see src/template/),
 * booted otherwise. A clone that fails to start (its template made by another QEMU, its files
 * damaged) is booted instead, with one notice, and its template goes.
 */
async function startVm(
  options: SandboxOptions,
  config: VmConfig,
  clone: CloneSource | undefined,
  signal: AbortSignal,
  notices: string[],
): Promise<{ vm: Vm; clone?: CloneSource }> {
  markHost('vmm-spawn');
  if (clone) {
    try {
      const vm = await options.hypervisor.start({ ...config, template: clone.role }, signal);
      try {
        await clone.loaded?.(signal);
      } catch (err) {
        await vm.stop();
        throw err;
      }
      markHost('vm-resumed');
      return { vm, clone };
    } catch (err) {
      // A fork booted instead would not be the VM it was asked to copy.
      if (signal.aborted || clone.noBootInstead) throw err;
      await clone.discard('a clone of it failed to start');
      notices.push(restoreFailedNotice(clone.key, messageOf(err)));
    } finally {
      await clone.close();
    }
  }
  return { vm: await options.hypervisor.start(config, signal) };
}

/** What the guest's console says about why it stopped (see image/console-cause.ts). */
async function consoleCauseOf(vm: Vm): Promise<string> {
  return consoleCauseOrLastLine(await readFile(vm.consoleLog, 'utf8').catch(() => ''));
}
