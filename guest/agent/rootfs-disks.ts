import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from './errors.js';
import { syscalls } from './syscalls.js';

/**
 * The virtio serials of a container's root disks; the host's QEMU driver sets the same
 * (src/hypervisor/qemu/command-line.ts): the image read-only, and the container's own
 * writable disk.
 */
const IMAGE_DISK_SERIAL = 'hull-image';
const WRITABLE_DISK_SERIAL = 'hull-disk';

/** Where the disks and the container's merged root are mounted in the guest. */
const ROOTFS_DISKS = '/run/hull/rootfs';

const MS_RDONLY = 0x1;
const MS_NODEV = 0x4;

/** How long a clone's VMM may take to tell the guest its writable disk's real size. */
const CAPACITY_WAIT_MS = 5000;

/** The /dev node of the virtio disk whose serial is `serial`. */
async function diskBySerial(serial: string): Promise<{ name: string; path: string }> {
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    if (!name.startsWith('vd')) continue;
    const found = await readFile(join('/sys/block', name, 'serial'), 'utf8').catch(() => '');
    if (found.trim() === serial) return { name, path: join('/dev', name) };
  }
  throw new AgentError('runtime-failed', `the VM has no disk with serial ${serial}`);
}

/** Whether the VM was given a writable root disk (its serial is the host's, never a guest's). */
export async function hasWritableRootDisk(): Promise<boolean> {
  return diskBySerial(WRITABLE_DISK_SERIAL).then(
    () => true,
    () => false,
  );
}

/**
 * Waits until the guest sees the writable disk at its real size. A VM cloned from a template
 * starts with the template's placeholder size; its VMM then reports the clone's own disk, and
 * the driver updates the size a moment later (a config-change interrupt, handled in a work
 * queue).
 */
async function waitForCapacity(name: string, bytes: bigint): Promise<void> {
  const deadline = Date.now() + CAPACITY_WAIT_MS;
  let seen = 0n;
  for (;;) {
    seen = BigInt((await readFile(join('/sys/block', name, 'size'), 'utf8')).trim()) * 512n;
    if (seen === bytes) return;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new AgentError(
    'runtime-failed',
    `the writable disk ${name} is ${seen} bytes, not the ${bytes} the host made: its size never reached the guest`,
  );
}

function mount(source: string, target: string, type: string, flags: number, data = ''): void {
  try {
    syscalls().mount(source, target, type, flags, data);
  } catch (err) {
    throw new AgentError(
      'runtime-failed',
      `cannot mount ${type} ${source} on ${target}: ${(err as Error).message}`,
    );
  }
}

/**
 * Mounts a container's root from the VM's disks: the image's erofs read-only, the writable
 * disk's ext4 (the host made the filesystem and never mounts it), and overlayfs joining them
 * with the upper layer on the writable disk. Returns the merged root. Only one container of a
 * VM can have its root on disks (the VM has one pair); a second is refused.
 */
export async function mountRootfsDisks(containerId: string, writableBytes: bigint): Promise<string> {
  const dir = join(ROOTFS_DISKS, containerId);
  try {
    await mkdir(ROOTFS_DISKS, { recursive: true });
    await mkdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new AgentError('exists', `the root disks of ${containerId} are already mounted`);
    }
    throw err;
  }
  const image = await diskBySerial(IMAGE_DISK_SERIAL);
  const writable = await diskBySerial(WRITABLE_DISK_SERIAL);
  await waitForCapacity(writable.name, writableBytes);
  const [lower, disk, merged] = ['image', 'disk', 'merged'].map((name) => join(dir, name)) as [
    string,
    string,
    string,
  ];
  await Promise.all([lower, disk, merged].map((path) => mkdir(path)));
  mount(image.path, lower, 'erofs', MS_RDONLY | MS_NODEV);
  mount(writable.path, disk, 'ext4', MS_NODEV, 'errors=remount-ro');
  // The upper and work directories are made here the first time; a disk already holding them
  // (a sandbox resumed) keeps its files.
  await mkdir(join(disk, 'upper'), { recursive: true });
  await mkdir(join(disk, 'work'), { recursive: true });
  mount(
    'overlay',
    merged,
    'overlay',
    MS_NODEV,
    `lowerdir=${lower},upperdir=${join(disk, 'upper')},workdir=${join(disk, 'work')}`,
  );
  return merged;
}
