import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setting } from '../config/settings.js';
import { messageOf } from '../errors.js';
import { kvmPrerequisites } from '../hypervisor/accel.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { crunBuildNeeds } from '../image/crun.js';
import { currentImage, type GuestImage } from '../image/manifest.js';
import { failedBuild, snapshotDisk } from '../image/snapshot.js';
import {
  agentSnapshotFor,
  agentSnapshotKey,
  defaultMemoryMiB,
  defaultVcpus,
  guestArch,
  sandboxBase,
  startSandbox,
  templateKeyFor,
  templating,
  type VmTarget,
  vmTargetFor,
} from '../sandbox/runtime.js';
import { which } from '../sys/exec.js';
import { failedTemplateBuild } from '../template/clone.js';
import { heldMemoryBytes } from '../template/memory.js';
import { liveTemplate } from '../template/store.js';
import { vmmConfinement } from './confinement.js';
import { availableMemoryMiB, cgroupLayout, clientSetups } from './host-facts.js';
import { formatImagesByArch, imagesByArch } from './images-by-arch.js';

/**
 * `hull check`: one line per requirement, as `kata-runtime check` does for Kata. A `fail`
 * says what to do; `warn` is something that works but costs (software emulation, no agent
 * snapshot, a client not set up). Every check runs, whatever the ones before it found.
 */
export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  name: string;
  status: CheckStatus;
  detail: string;
}

/** What several checks need, found once. */
class HostProbe {
  readonly arch = guestArch();
  readonly hypervisor = new QemuHypervisor(this.arch);
  private imageResult?: Promise<GuestImage>;
  private targetResult?: Promise<VmTarget>;
  readonly notices: string[] = [];

  image(): Promise<GuestImage> {
    this.imageResult ??= currentImage(this.arch);
    return this.imageResult;
  }

  async target(): Promise<VmTarget> {
    this.targetResult ??= this.image().then((image) =>
      vmTargetFor(image, this.hypervisor, (line) => this.notices.push(line)),
    );
    return this.targetResult;
  }
}

const ok = (name: string, detail: string): CheckResult => ({ name, status: 'ok', detail });
const warn = (name: string, detail: string): CheckResult => ({ name, status: 'warn', detail });
const fail = (name: string, detail: string): CheckResult => ({ name, status: 'fail', detail });

async function checkQemu(probe: HostProbe): Promise<CheckResult> {
  try {
    return ok('qemu', await probe.hypervisor.version(AbortSignal.timeout(10_000)));
  } catch (err) {
    return fail('qemu', messageOf(err));
  }
}

async function checkAccelerator(probe: HostProbe): Promise<CheckResult> {
  try {
    const { accel, accelReason } = await probe.target();
    if (accel === 'kvm') return ok('accelerator', `KVM (${accelReason})`);
    return warn('accelerator', `TCG software emulation, guests run slower: ${accelReason}`);
  } catch {
    // Without an image there is no kernel to probe with; say what the host itself offers.
    const missing = await kvmPrerequisites();
    return missing
      ? warn('accelerator', `TCG software emulation, guests run slower: ${missing}`)
      : warn('accelerator', 'KVM looks usable; a probe boot needs the guest image');
  }
}

async function checkImage(probe: HostProbe): Promise<CheckResult> {
  try {
    const image = await probe.image();
    const { kernel, hash, builtAt } = image.manifest;
    return ok(
      'guest image',
      `${hash}, ${image.manifest.arch ?? 'x86_64'}, kernel ${kernel.release} (${kernel.kind}), built ${builtAt}`,
    );
  } catch (err) {
    return fail('guest image', messageOf(err));
  }
}

async function checkCpuModel(probe: HostProbe): Promise<CheckResult> {
  try {
    const { cpuModel } = await probe.target();
    const how = setting('cpuModel') === 'auto' ? 'the default for this accelerator' : 'set by HULL_CPU_MODEL';
    return ok('guest CPU model', `${cpuModel} (${how})`);
  } catch (err) {
    return fail('guest CPU model', messageOf(err));
  }
}

async function checkSnapshot(probe: HostProbe): Promise<CheckResult> {
  const name = 'agent snapshot';
  if (setting('agentSnapshot') === 'off')
    return warn(name, 'off (HULL_AGENT_SNAPSHOT=off): agents start slower');
  try {
    const image = await probe.image();
    const target = await probe.target();
    const { key } = await agentSnapshotKey(image, target, probe.hypervisor);
    const disk = await stat(snapshotDisk(image, key)).catch(() => undefined);
    if (disk)
      return ok(
        name,
        `made for CPU model ${target.cpuModel} (${key}, ${(disk.size / 2 ** 20).toFixed(1)} MiB)`,
      );
    const failed = await failedBuild(image, key);
    if (failed)
      return warn(
        name,
        `could not be made for CPU model ${target.cpuModel}: ${failed}; run \`hull image build\``,
      );
    return warn(
      name,
      `none yet for CPU model ${target.cpuModel}: the first start makes it, or run \`hull image build\``,
    );
  } catch (err) {
    return fail(name, messageOf(err));
  }
}

/** A real boot, timed: the image's agent must start on this host with this CPU model. */
async function checkAgentBoot(probe: HostProbe): Promise<CheckResult[]> {
  const unconfirmed = (why: string) => fail('QEMU confinement', `no VM ran to check it: ${why}`);
  const name = 'agent boot';
  let image: GuestImage;
  try {
    image = await probe.image();
  } catch {
    const why = 'no guest image to boot: run `hull image build`';
    return [fail(name, why), unconfirmed(why)];
  }
  const root = await mkdtemp(join(tmpdir(), 'hull-check-'));
  try {
    // Made first when missing (one boot of its own), so the boot timed below is a sandbox's.
    const signal = AbortSignal.timeout(300_000);
    await agentSnapshotFor(image, await probe.target(), { hypervisor: probe.hypervisor, signal });
    const started = Date.now();
    // Booted even where sandboxes are cloned: this proves the image boots on this host.
    const sandbox = await startSandbox(
      'hull-check',
      { root, debug: false, boot: true, notice: (line) => probe.notices.push(line) },
      { dir: join(root, 'vm'), signal },
    );
    const ms = Date.now() - started;
    const confinement = await vmmConfinement(sandbox.vm.pid).catch((err: unknown) => ({
      facts: [],
      missing: [`cannot read /proc/${sandbox.vm.pid}: ${messageOf(err)}`],
    }));
    const confined =
      confinement.missing.length === 0
        ? ok('QEMU confinement', confinement.facts.join(', '))
        : fail('QEMU confinement', `QEMU is not confined: ${confinement.missing.join(', ')}`);
    const how = {
      used: 'from its startup snapshot',
      none: 'without a startup snapshot',
      rejected: 'without its startup snapshot, which the guest refused',
    }[sandbox.guest.agentSnapshot];
    await sandbox.destroy();
    const line = `a sandbox booted and its agent answered in ${(ms / 1000).toFixed(1)} s, ${how}; guest kernel ${sandbox.guest.kernelRelease}`;
    return [sandbox.guest.agentSnapshot === 'used' ? ok(name, line) : warn(name, line), confined];
  } catch (err) {
    return [fail(name, messageOf(err)), unconfirmed('the boot failed')];
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** The template sandboxes of the default size are cloned from (see src/template/). */
async function checkTemplate(): Promise<CheckResult> {
  const name = 'VM template';
  if (!templating()) {
    return ok(name, 'off: sandboxes boot, and no guest memory page is shared between them');
  }
  try {
    const base = await sandboxBase({ debug: false, notice: () => {} }, AbortSignal.timeout(300_000));
    const size = { vcpus: defaultVcpus(), memoryMiB: defaultMemoryMiB(), nics: 0 };
    const { key } = await templateKeyFor(base, size);
    const live = await liveTemplate(key);
    if (live) {
      const held = await heldMemoryBytes(key, live.memory);
      return ok(
        name,
        `${key} for ${size.vcpus} vCPU and ${size.memoryMiB} MiB, made ${live.builtAt} in ${(live.buildMs / 1000).toFixed(1)} s; it holds ${((held ?? 0) / 2 ** 20).toFixed(0)} MiB that its clones share`,
      );
    }
    const failed = await failedTemplateBuild(key);
    if (failed)
      return warn(name, `could not be made: ${failed}; sandboxes boot, slower: run \`hull template build\``);
    return warn(
      name,
      'none yet for the default size: the first start makes it, or run `hull template build`',
    );
  } catch (err) {
    return fail(name, messageOf(err));
  }
}

async function checkBuildTools(): Promise<CheckResult> {
  const tools: [string, string][] = [
    ['busybox', 'busybox-static'],
    ['mkfs.erofs', 'erofs-utils'],
    ['cc', 'gcc libc6-dev'],
    ['cpio', 'cpio'],
  ];
  const missing: string[] = [];
  for (const [tool, pkg] of tools) if (!(await which(tool))) missing.push(pkg);
  // The guest's crun is built from the source of the host's crun package.
  if (!(await which('crun'))) missing.push('crun');
  for (const pkg of await crunBuildNeeds())
    if (!missing.join(' ').split(' ').includes(pkg)) missing.push(pkg);
  return missing.length === 0
    ? ok(
        'image tools',
        'busybox, erofs-utils, a C compiler, cpio, and crun with what builds it are installed',
      )
    : fail(
        'image tools',
        `building the guest image needs more: run \`apt-get install ${missing.join(' ')}\``,
      );
}

async function checkCgroups(): Promise<CheckResult> {
  const layout = cgroupLayout();
  const text = { v2: 'cgroup v2', hybrid: 'cgroup v1 (hybrid, with a v2 hierarchy)', v1: 'cgroup v1' }[
    layout
  ];
  return ok('host cgroups', `${text}; container limits are applied by the guest's own cgroup v2`);
}

async function checkMemory(): Promise<CheckResult> {
  const available = await availableMemoryMiB();
  if (available === undefined) return warn('memory', 'cannot read MemAvailable from /proc/meminfo');
  const vmMiB = defaultMemoryMiB();
  const line = `${available} MiB available; a default sandbox is given ${vmMiB} MiB`;
  if (available < vmMiB) return fail('memory', `${line}: free memory before starting sandboxes`);
  if (available < 4 * vmMiB) return warn('memory', `${line}: room for few sandboxes`);
  return ok('memory', line);
}

async function checkClients(): Promise<CheckResult[]> {
  const binaries = { podman: 'podman', docker: 'dockerd', containerd: 'containerd' } as const;
  const how = {
    podman: 'add `hull = ["/path/to/hull"]` under [engine.runtimes] in containers.conf',
    docker: 'add "runtimes": {"hull": {"path": "/path/to/hull"}} to /etc/docker/daemon.json',
    containerd:
      'add runtime_type "io.containerd.hull.v2" under the CRI runtimes in /etc/containerd/config.toml',
  } as const;
  const results: CheckResult[] = [];
  for (const setup of await clientSetups()) {
    const name = setup.client;
    if (!(await which(binaries[name]))) results.push(ok(name, 'not installed'));
    else if (setup.configuredIn) results.push(ok(name, `hull is configured in ${setup.configuredIn}`));
    else results.push(warn(name, `installed, hull not configured: ${how[name]} (see the README)`));
  }
  return results;
}

export async function runChecks(): Promise<{ results: CheckResult[]; notices: string[] }> {
  const probe = new HostProbe();
  const results = [
    await checkQemu(probe),
    await checkAccelerator(probe),
    await checkImage(probe),
    ok('architectures', formatImagesByArch(await imagesByArch())),
    await checkCpuModel(probe),
    ...(await checkAgentBoot(probe)),
    await checkSnapshot(probe),
    await checkTemplate(),
    await checkBuildTools(),
    await checkCgroups(),
    await checkMemory(),
    ...(await checkClients()),
  ];
  return { results, notices: probe.notices };
}
