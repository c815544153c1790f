import { spawn } from 'node:child_process';
import { chmod, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { Arch } from '../hypervisor/arch.js';
import { currentImage } from '../image/manifest.js';
import type { Bundle } from '../sandbox/bundle.js';
import { programArch } from '../sandbox/container-arch.js';

/** Where the guest's busybox appears in a pod's sandbox container whose own pause cannot run. */
export const GUEST_PAUSE_PATH = '/.hull/busybox';
/** What the stand-in runs: busybox's sleep, as long as it can (the pause image's job). */
const PAUSE_ARGS = [GUEST_PAUSE_PATH, 'sleep', '2147483647'];

/**
 * A pod's sandbox (pause) container as its VM can run it. containerd's CRI plugin pulls the
 * pause image for the host's architecture, before any container image is known; in a pod of
 * another architecture (vm.arch, or the dev.hull.arch pod annotation) that program cannot run
 * in the VM. The pause container only holds the pod's namespaces, so its process is replaced
 * by the guest image's own static busybox sleeping, bound read-only into the container: no
 * emulation, and the image's root filesystem is otherwise the pause image's.
 */
export async function runnableSandboxBundle(
  bundle: Bundle,
  vmArch: Arch,
  workDir: string,
  /** The guest's busybox (the image's; a test gives its own). */
  busyboxOf: (arch: Arch) => Promise<Buffer> = guestBusybox,
): Promise<Bundle> {
  const arch = await programArch(bundle.rootfs, bundle.spec.process);
  if (arch === undefined || arch === vmArch) return bundle;
  const busybox = join(workDir, 'guest-busybox');
  await mkdir(workDir, { recursive: true });
  await writeFile(busybox, await busyboxOf(vmArch));
  await chmod(busybox, 0o555);
  return {
    ...bundle,
    spec: {
      ...bundle.spec,
      process: { ...bundle.spec.process!, args: PAUSE_ARGS },
      mounts: [
        ...(bundle.spec.mounts ?? []),
        { destination: GUEST_PAUSE_PATH, type: 'bind', source: busybox, options: ['rbind', 'ro'] },
      ],
    },
  };
}

/** The static busybox of the `arch` guest image's initramfs (cpio reads the archive; ~30 ms). */
export async function guestBusybox(arch: Arch): Promise<Buffer> {
  const image = await currentImage(arch);
  const archive = await open(image.initrd, 'r');
  try {
    const child = spawn('cpio', ['-i', '--quiet', '--to-stdout', 'bin/busybox'], {
      stdio: [archive.fd, 'pipe', 'ignore'],
    });
    const chunks: Buffer[] = [];
    child.stdout!.on('data', (chunk: Buffer) => chunks.push(chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    const busybox = Buffer.concat(chunks);
    if (code !== 0 || busybox.length === 0)
      throw new HullError('ERR_IMAGE_MISSING', `no busybox in the ${arch} guest image's ${image.initrd}`);
    return busybox;
  } finally {
    await archive.close();
  }
}
