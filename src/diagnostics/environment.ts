import { configFileInUse, type EffectiveSetting, effectiveSettings } from '../config/settings.js';
import { messageOf } from '../errors.js';
import { type Arch, hostArch } from '../hypervisor/arch.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { currentImage } from '../image/manifest.js';
import { snapshotDisk } from '../image/snapshot.js';
import { agentBundlePath, imagesDir, installRoot } from '../paths.js';
import {
  agentSnapshotKey,
  defaultMemoryMiB,
  defaultVcpus,
  guestArch,
  vmTargetFor,
} from '../sandbox/runtime.js';
import { VERSION } from '../version.js';
import { cgroupLayout } from './host-facts.js';
import { type ArchImage, formatImagesByArch, imagesByArch } from './images-by-arch.js';

/**
 * `hull env`: the effective configuration and versions in one block, for bug reports, as
 * `kata-runtime env` does. Nothing here boots a VM; what cannot be found says why.
 */
export interface Environment {
  hull: { version: string; installRoot: string; agentBundle: string };
  node: string;
  qemu: string;
  image: {
    dir: string;
    /** The guest architecture sandboxes get (vm.arch), whose image this is. */
    arch: string;
    hash?: string;
    kernel?: string;
    kernelSource?: string;
    builtAt?: string;
    problem?: string;
  };
  vm: {
    accel?: string;
    accelReason?: string;
    cpuModel?: string;
    agentSnapshot?: string;
    vcpus: number;
    memoryMiB: number;
  };
  host: { kernel: string; cgroups: string; arch: string };
  /** Each architecture's current image. */
  images: ArchImage[];
  /** The configuration file whose values are in force, if one is. */
  configFile?: string;
  settings: EffectiveSetting[];
}

export async function describeEnvironment(): Promise<Environment> {
  const arch = guestArch();
  const hypervisor = new QemuHypervisor(arch);
  const env: Environment = {
    hull: { version: VERSION, installRoot: installRoot(), agentBundle: agentBundlePath() },
    node: process.version,
    qemu: await hypervisor.version(AbortSignal.timeout(10_000)).catch((err: unknown) => messageOf(err)),
    image: { dir: imagesDir(), arch },
    vm: { vcpus: defaultVcpus(), memoryMiB: defaultMemoryMiB() },
    host: { kernel: (await import('node:os')).release(), cgroups: cgroupLayout(), arch: hostArch() },
    images: await imagesByArch(),
    configFile: configFileInUse(),
    settings: effectiveSettings(),
  };
  try {
    const image = await currentImage(arch);
    env.image = {
      dir: image.dir,
      arch,
      hash: image.manifest.hash,
      kernel: image.manifest.kernel.release,
      kernelSource: image.manifest.kernel.source,
      builtAt: image.manifest.builtAt,
    };
    const target = await vmTargetFor(image, hypervisor, () => {});
    const { key } = await agentSnapshotKey(image, target, hypervisor);
    env.vm = {
      ...env.vm,
      accel: target.accel,
      accelReason: target.accelReason,
      cpuModel: target.cpuModel,
      agentSnapshot: snapshotDisk(image, key),
    };
  } catch (err) {
    env.image.problem = messageOf(err);
  }
  return env;
}

/** The block `hull env` prints. */
export function formatEnvironment(env: Environment): string {
  const rows: [string, string | undefined][] = [
    ['hull', `${env.hull.version} (${env.hull.installRoot})`],
    ['node', env.node],
    ['qemu', env.qemu],
    ['host kernel', `${env.host.kernel} (${env.host.arch})`],
    ['host cgroups', env.host.cgroups],
    ['architectures', formatImagesByArch(env.images, env.host.arch as Arch)],
    [
      'guest image',
      env.image.hash ? `${env.image.hash}, ${env.image.arch} (${env.image.dir})` : env.image.problem,
    ],
    ['guest kernel', env.image.kernel && `${env.image.kernel} (${env.image.kernelSource})`],
    ['image built', env.image.builtAt],
    ['accelerator', env.vm.accel && `${env.vm.accel} (${env.vm.accelReason})`],
    ['guest CPU model', env.vm.cpuModel],
    ['agent snapshot', env.vm.agentSnapshot],
    ['default VM size', `${env.vm.vcpus} vCPU, ${env.vm.memoryMiB} MiB`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length)) + 1;
  const lines = rows.filter(([, v]) => v !== undefined).map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`);
  lines.push(`settings (configuration file: ${env.configFile ?? 'none'}):`);
  for (const s of env.settings) {
    lines.push(`  ${s.env}=${s.value} (${s.source}; ${s.fileKey} in the file): ${s.description}`);
  }
  return `${lines.join('\n')}\n`;
}
