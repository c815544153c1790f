import { join } from 'node:path';
import { decideAccel } from '../hypervisor/accel.js';
import type { Accel } from '../hypervisor/hypervisor.js';
import { probeKvmBoot } from '../hypervisor/qemu/probe.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { hostTscKhz } from '../hypervisor/tsc.js';
import { currentImage, type GuestImage } from '../image/manifest.js';
import { stateDir } from '../paths.js';
import { HostMounter } from '../sys/mount.js';
import { idDirectoryName } from './container-id.js';
import { Sandbox } from './sandbox.js';

/** Settings that shape every sandbox; the front doors fill them from flags and annotations. */
export interface RuntimeSettings {
  /** The runtime root (`--root`): per-sandbox directories live here. */
  root: string;
  debug: boolean;
  vcpus?: number;
  memoryMiB?: number;
}

export const DEFAULT_VCPUS = 1;
export const DEFAULT_MEMORY_MIB = 512;

function bootTimeoutMs(accel: Accel): number {
  const fromEnv = Number(process.env.HULL_BOOT_TIMEOUT);
  if (fromEnv > 0) return fromEnv * 1000;
  // Software emulation boots in seconds when idle, but a busy 2-core CI host can take far longer.
  return accel === 'kvm' ? 20_000 : 60_000;
}

/** Chooses the accelerator for the current image, printing the one-line notice if it is news. */
export async function accelFor(
  image: GuestImage,
  notice: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
) {
  return decideAccel(
    {
      bootsUnderKvm: () => probeKvmBoot(image.kernel, image.initrd, image.manifest.kernel.deviceDiscovery),
      cacheFile: join(stateDir(), 'accel.json'),
      kernelId: image.manifest.hash,
    },
    notice,
  );
}

/** The directory of a container's state under the runtime root. */
export function containerDir(settings: RuntimeSettings, id: string): string {
  return join(settings.root, idDirectoryName(id));
}

/** Boots a sandbox VM for `id` with the current guest image, in `options.dir`. */
export async function startSandbox(
  id: string,
  settings: RuntimeSettings,
  options: { dir: string; hostname?: string; signal: AbortSignal },
): Promise<Sandbox> {
  const image = await currentImage();
  const { accel } = await accelFor(image);
  return Sandbox.create(
    {
      id,
      dir: options.dir,
      image,
      hypervisor: new QemuHypervisor(),
      mounter: new HostMounter(),
      accel,
      tscKhz: accel === 'tcg' ? await hostTscKhz() : undefined,
      vcpus: settings.vcpus ?? DEFAULT_VCPUS,
      memoryMiB: settings.memoryMiB ?? DEFAULT_MEMORY_MIB,
      hostname: options.hostname,
      bootTimeoutMs: bootTimeoutMs(accel),
      debug: settings.debug,
    },
    options.signal,
  );
}
