import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setting } from '../config/settings.js';
import { HullError, messageOf } from '../errors.js';
import { decideAccel } from '../hypervisor/accel.js';
import { type Arch, archProfile, hostArch } from '../hypervisor/arch.js';
import { defaultCpuModel, guestCpuIdentity, parseCpuSpec } from '../hypervisor/cpu-model.js';
import type { Accel, Hypervisor, VmConfig } from '../hypervisor/hypervisor.js';
import { probeKvmBoot } from '../hypervisor/qemu/probe.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { hostTscKhz } from '../hypervisor/tsc.js';
import { currentImage, type GuestImage } from '../image/manifest.js';
import {
  buildAgentSnapshot,
  discardSnapshot,
  failedBuild,
  recordFailedBuild,
  snapshotDisk,
  snapshotKey,
  snapshotsDir,
} from '../image/snapshot.js';
import { logger } from '../log.js';
import type { Spec } from '../oci/spec.js';
import { stateDir } from '../paths.js';
import { type ForkFrom, snapshotForkSource } from '../snapshot/fork-source.js';
import { savedVmSource } from '../snapshot/resume-source.js';
import type { RootfsDisks } from '../storage/rootfs-disks.js';
import { withLock } from '../sys/lock.js';
import { HostMounter } from '../sys/mount.js';
import {
  type CloneOptions,
  type CloneSource,
  cloneSourceFor,
  liveCloneSource,
  templateConfigOf,
  templateKey,
} from '../template/clone.js';
import { hostCgroupLimits, hostCgroupPath } from './host-cgroup.js';
import { Sandbox, type SandboxOptions, vmConfigFor } from './sandbox.js';

/** Settings that shape every sandbox; the front doors fill them from flags and annotations. */
export interface RuntimeSettings {
  /** The runtime root (`--root`): per-sandbox directories live here. */
  root: string;
  debug: boolean;
  vcpus?: number;
  memoryMiB?: number;
  /**
   * Where one-line notices go (TCG fallback, a refused snapshot). `hull run` shows them on
   * stderr; a monitor or shim, whose stderr is a container's or containerd's, logs them.
   */
  notice?: (line: string) => void;
  /** Boot the VM even where templating is on (`hull check` proves the image boots). */
  boot?: boolean;
}

/** A sandbox VM's size before a container's or pod's own needs are added (settings). */
export function defaultVcpus(): number {
  return Number(setting('vcpus'));
}

export function defaultMemoryMiB(): number {
  return Number(setting('memoryMiB'));
}

const logNotice = (line: string) => logger('runtime').warn(line);

export function bootTimeoutMs(accel: Accel): number {
  const configured = setting('bootTimeoutSeconds');
  if (configured !== 'auto') return Number(configured) * 1000;
  // Software emulation boots in seconds when idle, but a busy 2-core CI host can take far longer.
  return accel === 'kvm' ? 20_000 : 60_000;
}

/** The guest architecture sandboxes get: the vm.arch setting, else the host's. */
export function guestArch(): Arch {
  const configured = setting('arch');
  return configured === 'auto' ? hostArch() : (configured as Arch);
}

/** The architecture a guest image was built for. */
export function imageArch(image: GuestImage): Arch {
  return image.manifest.arch ?? 'x86_64';
}

/** Chooses the accelerator for the current image, giving the one-line notice if it is news. */
export async function accelFor(image: GuestImage, notice: (line: string) => void = logNotice) {
  const arch = imageArch(image);
  return decideAccel(
    {
      bootsUnderKvm: () =>
        probeKvmBoot({
          kernel: image.kernel,
          initrd: image.initrd,
          deviceDiscovery: image.manifest.kernel.deviceDiscovery,
          arch,
        }),
      // One decision per architecture: x86_64's file keeps its name.
      cacheFile: join(stateDir(), arch === 'x86_64' ? 'accel.json' : `accel-${arch}.json`),
      kernelId: image.manifest.hash,
      arch,
    },
    notice,
  );
}

/** How guests run on this host: the accelerator (and why), the CPU model, the TSC hint. */
export interface VmTarget {
  accel: Accel;
  accelReason: string;
  cpuModel: string;
  tscKhz?: number;
}

export async function vmTargetFor(
  image: GuestImage,
  hypervisor: Hypervisor,
  notice: (line: string) => void = logNotice,
): Promise<VmTarget> {
  const { accel, reason } = await accelFor(image, notice);
  const configured = setting('cpuModel');
  const arch = imageArch(image);
  let cpuModel = defaultCpuModel(accel, arch);
  if (configured !== 'auto') {
    await checkCpuModel(configured, hypervisor, arch);
    cpuModel = configured;
  }
  const tscHint = accel === 'tcg' && archProfile(arch).tscHint;
  return { accel, accelReason: reason, cpuModel, tscKhz: tscHint ? await hostTscKhz() : undefined };
}

/**
 * A configured CPU (`MODEL[,NAME=VALUE...]`, its syntax checked with the setting) checked
 * against this QEMU: the model is one it lists, each option one that model has.
 */
export async function checkCpuModel(
  configured: string,
  hypervisor: Pick<Hypervisor, 'cpuModels' | 'cpuModelOptions'>,
  arch: Arch,
): Promise<void> {
  const { qemuBinary, cpuTypeSuffix } = archProfile(arch);
  const spec = parseCpuSpec(configured);
  if ('error' in spec) throw new HullError('ERR_CONFIG', `HULL_CPU_MODEL=${configured}: ${spec.error}`);
  if (!(await hypervisor.cpuModels()).includes(spec.model)) {
    throw new HullError(
      'ERR_CONFIG',
      `HULL_CPU_MODEL=${configured}: QEMU has no such CPU model; \`${qemuBinary} -cpu help\` lists them`,
    );
  }
  if (spec.options.length === 0) return;
  const known = await hypervisor.cpuModelOptions(spec.model);
  const unknown = spec.options.find((o) => !known.includes(o.name));
  if (unknown) {
    throw new HullError(
      'ERR_CONFIG',
      `HULL_CPU_MODEL=${configured}: CPU model ${spec.model} has no option ${unknown.name}; \`${qemuBinary} -device ${spec.model}${cpuTypeSuffix},help\` lists them`,
    );
  }
}

export interface AgentSnapshot {
  key: string;
  /** The disk, when there is a snapshot for this guest CPU. */
  disk?: string;
  /** Why there is none, when it could not be made: a notice for once a sandbox is up. */
  problem?: string;
}

/**
 * How long making a snapshot may take: a guest boot plus V8 serializing the agent's heap.
 * Not the boot timeout: a short one set for sandboxes must not fail (and so disable) this.
 */
function snapshotBuildTimeoutMs(accel: Accel): number {
  return accel === 'kvm' ? 60_000 : 240_000;
}

/** The snapshot key for the guest CPU a target gives (see image/snapshot.ts). */
export async function agentSnapshotKey(image: GuestImage, target: VmTarget, hypervisor: Hypervisor) {
  const cpuIdentity = await guestCpuIdentity({
    cpuModel: target.cpuModel,
    accel: target.accel,
    qemuId: await hypervisor.identity(),
  });
  return { key: snapshotKey({ image, cpuIdentity }), cpuIdentity };
}

/**
 * The agent's startup snapshot for this guest CPU, made on first use (one guest boot, under a
 * lock so that concurrent starts make it once). A build that fails is recorded, so starts do
 * not pay for it again (`hull image build` tries afresh); sandboxes then start their agent
 * without a snapshot, which is slower but works.
 */
export async function agentSnapshotFor(
  image: GuestImage,
  target: VmTarget,
  options: { hypervisor: Hypervisor; signal: AbortSignal; retryFailed?: boolean },
): Promise<AgentSnapshot | undefined> {
  if (setting('agentSnapshot') === 'off') return undefined;
  const { key, cpuIdentity } = await agentSnapshotKey(image, target, options.hypervisor);
  const disk = snapshotDisk(image, key);
  const present = async () => Boolean(await stat(disk).catch(() => undefined));
  if (await present()) return { disk, key };
  if (!options.retryFailed && (await failedBuild(image, key))) return { key };
  try {
    await mkdir(snapshotsDir(image), { recursive: true });
    await withLock(snapshotsDir(image), options.signal, async () => {
      if (await present()) return;
      await buildAgentSnapshot({
        image,
        cpuIdentity,
        hypervisor: options.hypervisor,
        vm: target,
        timeoutMs: snapshotBuildTimeoutMs(target.accel),
        signal: options.signal,
      });
    });
    return { disk, key };
  } catch (err) {
    if (options.signal.aborted) throw err;
    await recordFailedBuild(image, key, messageOf(err));
    return {
      key,
      problem: `hull: notice: no agent startup snapshot for CPU model ${target.cpuModel} (${messageOf(err)}); agents start without one, slower: \`hull check\` tells more`,
    };
  }
}

/**
 * Whether sandboxes are cloned from templates (see src/template/): the vm.template setting,
 * except for VMs with a debug console, whose port is their own.
 */
export function templating(): boolean {
  return setting('template') === 'on' && setting('debugConsole') !== 'on';
}

/**
 * What every sandbox VM on this host shares, whatever its container: the image, the VMM, how
 * guests run here (accelerator, CPU), the agent's snapshot, and the template to clone from.
 */
export async function sandboxBase(
  settings: Pick<RuntimeSettings, 'debug' | 'notice' | 'boot'>,
  signal: AbortSignal,
  /** The guest architecture; the vm.arch setting's (or the host's) when not given. */
  arch: Arch = guestArch(),
): Promise<{
  options: Pick<
    SandboxOptions,
    | 'image'
    | 'hypervisor'
    | 'accel'
    | 'cpuModel'
    | 'agentSnapshot'
    | 'tscKhz'
    | 'tcgCacheMiB'
    | 'debug'
    | 'debugConsole'
    | 'bootTimeoutMs'
    | 'onAgentSnapshotRejected'
  >;
  /** How templates are made here, when templating is on (`hull template build` makes one). */
  templates?: Omit<CloneOptions, 'signal'>;
  /** Clones VMs from their templates, when templating is on. */
  cloneSource?: (
    config: VmConfig,
    signal: AbortSignal,
  ) => Promise<{ source?: CloneSource; problem?: string }>;
  /** Why there is no agent snapshot, to say once a sandbox is up. */
  snapshotProblem?: string;
}> {
  const notice = settings.notice ?? logNotice;
  const image = await currentImage(arch);
  const hypervisor = new QemuHypervisor(arch);
  const target = await vmTargetFor(image, hypervisor, notice);
  const snapshot = await agentSnapshotFor(image, target, { hypervisor, signal });
  const templates: Omit<CloneOptions, 'signal'> | undefined =
    templating() && !settings.boot
      ? {
          hypervisor,
          describe: { accel: target.accel, cpuModel: target.cpuModel, imageHash: image.manifest.hash },
          buildTimeoutMs: snapshotBuildTimeoutMs(target.accel),
        }
      : undefined;
  return {
    options: {
      image,
      hypervisor,
      accel: target.accel,
      cpuModel: target.cpuModel,
      agentSnapshot: snapshot?.disk,
      tscKhz: target.tscKhz,
      tcgCacheMiB: Number(setting('tcgCacheMiB')),
      debug: settings.debug,
      debugConsole: setting('debugConsole') === 'on',
      bootTimeoutMs: bootTimeoutMs(target.accel),
      onAgentSnapshotRejected: async () => {
        if (snapshot) await discardSnapshot(image, snapshot.key);
        notice(
          `hull: notice: the guest refused the agent's startup snapshot for CPU model ${target.cpuModel}; the agent started without it (slower), and the next start makes it again`,
        );
      },
    },
    templates,
    cloneSource:
      templates && ((config, cloneSignal) => cloneSourceFor(config, { ...templates, signal: cloneSignal })),
    snapshotProblem: snapshot?.problem,
  };
}

/** The key of the template for sandboxes of a size, on this host (see src/template/). */
export async function templateKeyFor(
  base: Awaited<ReturnType<typeof sandboxBase>>,
  size: { vcpus: number; memoryMiB: number; nics: number },
): Promise<{ key: string; shape: ReturnType<typeof templateConfigOf> }> {
  const config = vmConfigFor(
    { ...base.options, id: 'template', dir: '', vcpus: size.vcpus, memoryMiB: size.memoryMiB },
    {
      shareDir: '',
      network: size.nics
        ? { netns: '', vhost: false, nics: Array.from({ length: size.nics }, () => ({ tap: '', mac: '' })) }
        : undefined,
    },
  );
  const shape = templateConfigOf(config);
  const { hypervisor, image } = base.options;
  return { key: await templateKey(shape, hypervisor, image.manifest.hash), shape };
}

/** A fork's clone source; forks need templates (a snapshot is made a template to fork from). */
function forkSourceOf(fork: ForkFrom, base: Awaited<ReturnType<typeof sandboxBase>>) {
  if (!base.templates) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      'forks are clones of a snapshot made a template, and templates are off here (HULL_TEMPLATE, --boot, or the debug console)',
    );
  }
  const { hypervisor, describe, buildTimeoutMs } = base.templates;
  return snapshotForkSource(fork, {
    hypervisor,
    describe,
    timeoutMs: buildTimeoutMs,
    baseSource: (config) => liveCloneSource(config, { hypervisor, describe }),
  });
}

/** Boots a sandbox VM for `id` with the current guest image, in `options.dir`. */
export async function startSandbox(
  id: string,
  settings: RuntimeSettings,
  options: {
    dir: string;
    hostname?: string;
    netns?: string;
    /** The container's (a pod's sandbox container's) configuration: its cgroup and resources. */
    spec?: Pick<Spec, 'linux'>;
    /** The guest architecture (see container-arch.ts); the vm.arch setting's when not given. */
    arch?: Arch;
    /** The container's root disks, when its bundle names them (see storage/rootfs-disks.ts). */
    rootfsDisks?: RootfsDisks;
    /** A directory the sandbox's own VM was paused to (see snapshot/resume-source.ts): resumed from it. */
    resumeFrom?: string;
    /** What a refused saved state leaves as it was, said in the refusal (see state-file.ts). */
    resumedStays?: string;
    /** A snapshot of another sandbox's VM: this sandbox starts as a fork of it. */
    forkFrom?: ForkFrom;
    /** The container the VM is made for, its files put in the share during the start. */
    firstContainer?: SandboxOptions['firstContainer'];
    signal: AbortSignal;
  },
): Promise<Sandbox> {
  const notice = settings.notice ?? logNotice;
  const base = await sandboxBase(settings, options.signal, options.arch);
  const memoryMiB = settings.memoryMiB ?? defaultMemoryMiB();
  const sandbox = await Sandbox.create(
    {
      ...base.options,
      id,
      dir: options.dir,
      mounter: new HostMounter(),
      vcpus: settings.vcpus ?? defaultVcpus(),
      memoryMiB,
      hostCgroup: {
        path: hostCgroupPath(options.spec ?? {}, id),
        limits: hostCgroupLimits(options.spec?.linux?.resources, {
          memoryMiB,
          accel: base.options.accel,
          tcgCacheMiB: base.options.tcgCacheMiB,
          // A resumed VM's memory is loaded over its template's where that is live (see
          // resume-source.ts), else its own.
          clone: Boolean(options.forkFrom) || Boolean(base.cloneSource),
        }),
        // The process creating the sandbox owns its VM: the monitor, `hull run`, or the shim.
        owner: process.pid,
      },
      hostname: options.hostname,
      netns: options.netns,
      rootfsDisks: options.rootfsDisks,
      firstContainer: options.firstContainer,
      cloneSource: options.resumeFrom
        ? savedVmSource(options.resumeFrom, {
            hypervisor: base.options.hypervisor,
            imageHash: base.options.image.manifest.hash,
            stays: options.resumedStays,
            baseSource:
              base.templates &&
              ((config) =>
                liveCloneSource(config, {
                  hypervisor: base.templates!.hypervisor,
                  describe: base.templates!.describe,
                })),
          })
        : options.forkFrom
          ? forkSourceOf(options.forkFrom, base)
          : base.cloneSource,
      notice,
    },
    options.signal,
  );
  // Said once the sandbox is up: a guest that cannot boot has a better error to give.
  if (base.snapshotProblem) notice(base.snapshotProblem);
  return sandbox;
}
