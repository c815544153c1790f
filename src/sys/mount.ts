import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { HullError } from '../errors.js';
import { installRoot } from '../paths.js';
import { run } from './exec.js';
import { systemTool } from './system-tool.js';

/**
 * Mounting behind an interface: Node has no mount(2), so the real implementation runs
 * util-linux's mount for filesystems, and hull-share-mount for a share's own mounts; tests of the logic
 * above it use a recording fake.
 */
export interface Mounter {
  /**
   * Makes `rel` inside `dir` (its missing directories, then a directory or an empty file) and
   * bind-mounts `source` there, never following a symlink below `dir`: a guest can make them
   * in a container's root filesystem, which is inside a sandbox's share.
   */
  bindBeneath(dir: string, rel: string, source: string, options: BindOptions): Promise<void>;
  /** Mounts a filesystem as described (overlay, bind, tmpfs…), as mount(8) -t -o would. */
  mount(spec: FilesystemMount, target: string): Promise<void>;
  /**
   * Makes `dir` a mount point of its own whose later submounts propagate to its copies (the
   * VMM's view of it, in the VMM's own mount namespace).
   */
  makeSharedMountPoint(dir: string): Promise<void>;
  /**
   * Takes the steps in order, as the methods above would, and stops at the first that fails
   * (those before it stay done): a container's mount points, root and bind mounts are placed
   * in the share in one step (HostMounter: one helper run instead of one each). A
   * `makeMountPoints` step makes each missing mount point inside `rootfs` (a directory or an
   * empty file), resolving its path inside `rootfs` as the container will; what cannot be made
   * is left as it is.
   */
  inOrder(steps: readonly MountStep[]): Promise<void>;
  /** Unmounts `target` and everything mounted below it, following no symlink below `target`. */
  unmountTree(target: string): Promise<void>;
  /** Mount points at or below `dir`, deepest first. */
  mountsUnder(dir: string): Promise<string[]>;
}

/**
 * How `bindBeneath` binds: with the source's submounts or not, onto a directory or a file, and
 * read-only (each mount of it) or not.
 */
export interface BindOptions {
  recursive: boolean;
  kind: 'dir' | 'file';
  readonly?: boolean;
}

/** Where a container mounts something: a path inside its root, a directory or a file. */
export interface MountPoint {
  path: string;
  kind: 'dir' | 'file';
}

/** One of the Mounter's steps, as its method of that name takes it. */
export type MountStep =
  | { step: 'makeSharedMountPoint'; dir: string }
  | { step: 'makeMountPoints'; rootfs: string; points: readonly MountPoint[] }
  | { step: 'bindBeneath'; dir: string; rel: string; source: string; options: BindOptions };

/** A mount as containerd's snapshotters describe one. */
export interface FilesystemMount {
  type: string;
  source: string;
  options: readonly string[];
}

/**
 * Unmounts everything at or below `dir`, then removes it. Removing a directory that still has
 * a bind mount below it would delete the user's own files through the mount, so it is removed
 * only once nothing is mounted there.
 */
export async function removeUnmounted(mounter: Mounter, dir: string): Promise<void> {
  await mounter.unmountTree(dir);
  const left = await mounter.mountsUnder(dir);
  if (left.length > 0) {
    throw new HullError(
      'ERR_MOUNT',
      `cannot unmount ${left[0]}; remove it by hand with \`umount -l ${left[0]}\``,
    );
  }
  await rm(dir, { recursive: true, force: true });
}

/** Decodes the octal escapes (\040 for space…) of /proc/self/mountinfo paths. */
function unescapeMountPath(path: string): string {
  return path.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(Number.parseInt(oct, 8)));
}

/** The helper that mounts and unmounts below a directory by file descriptor (openat2). */
function shareMountPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-share-mount');
}

/** A step as hull-share-mount's arguments, and what it is for (for its error). */
function shareMountCommand(step: MountStep): { args: string[]; purpose: string } {
  switch (step.step) {
    case 'bindBeneath':
      return {
        args: [
          'bind',
          step.dir,
          step.rel,
          step.options.kind,
          step.source,
          ...(step.options.recursive ? ['recursive'] : []),
          ...(step.options.readonly ? ['readonly'] : []),
        ],
        purpose: `sharing ${step.source} with the VM`,
      };
    case 'makeMountPoints':
      return {
        args: ['mountpoints', step.rootfs, ...step.points.map((p) => `${p.kind}:${p.path}`)],
        purpose: `making mount points in ${step.rootfs}`,
      };
    case 'makeSharedMountPoint':
      return { args: ['shared', step.dir], purpose: `making ${step.dir} a shared mount point` };
  }
}

/** What joins two commands on hull-share-mount's command line. */
const COMMAND_JOINER = '+';

/**
 * Runs hull-share-mount once for all `commands`, joined by "+". No argument may be a lone "+"
 * (paths here are absolute or below a share, so none is): the helper would take it for a join.
 */
async function runShareMount(commands: readonly string[][], purpose: string): Promise<void> {
  const joiner = commands.flat().find((arg) => arg === COMMAND_JOINER);
  if (joiner !== undefined)
    throw new HullError('ERR_MOUNT', `"${joiner}" is not a path hull can share: give the full path`);
  const args = commands.flatMap((command, index) => (index === 0 ? command : [COMMAND_JOINER, ...command]));
  await run(shareMountPath(), args, { errorCode: 'ERR_MOUNT', purpose });
}

export class HostMounter implements Mounter {
  bindBeneath(dir: string, rel: string, source: string, options: BindOptions): Promise<void> {
    return this.inOrder([{ step: 'bindBeneath', dir, rel, source, options }]);
  }

  makeSharedMountPoint(dir: string): Promise<void> {
    return this.inOrder([{ step: 'makeSharedMountPoint', dir }]);
  }

  /** One run of hull-share-mount, its commands joined by "+". */
  async inOrder(steps: readonly MountStep[]): Promise<void> {
    if (steps.length === 0) return;
    const commands = steps.map(shareMountCommand);
    await runShareMount(
      commands.map((command) => command.args),
      commands.map((command) => command.purpose).join(', then '),
    );
  }

  async mount(spec: FilesystemMount, target: string): Promise<void> {
    const args = ['-t', spec.type || 'none'];
    if (spec.options.length > 0) args.push('-o', spec.options.join(','));
    await run(systemTool('mount'), [...args, spec.source, target], {
      errorCode: 'ERR_MOUNT',
      purpose: `mounting the ${spec.type} filesystem for ${target}`,
    });
  }

  async unmountTree(target: string): Promise<void> {
    const points = await this.mountsUnder(target);
    if (points.length === 0) return;
    // Deepest first, in one helper run (a sandbox's share and its container's root: one spawn
    // instead of two on `hull run`'s way out, each 5-8 ms of CPU).
    const commands = points.map((mountPoint) => {
      // Reached from `target` itself (or its parent, for `target`), one name at a time.
      const [base, rel] =
        mountPoint === target ? [dirname(target), basename(target)] : [target, relative(target, mountPoint)];
      return ['unmount', base, rel];
    });
    await runShareMount(
      commands,
      points.length === 1 ? `unmounting ${points[0]}` : `unmounting ${points.join(', ')} (in this order)`,
    );
  }

  async mountsUnder(dir: string): Promise<string[]> {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const prefix = dir.endsWith('/') ? dir : `${dir}/`;
    return info
      .split('\n')
      .map((line) => line.split(' ')[4])
      .filter((p): p is string => p !== undefined)
      .map(unescapeMountPath)
      .filter((p) => p === dir || p.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
  }
}

/** A Mounter that only records, for unit tests. */
export class RecordingMounter implements Mounter {
  readonly calls: string[] = [];
  /** How many times hull-share-mount would have run. */
  runs = 0;
  private readonly mounted = new Set<string>();

  bindBeneath(dir: string, rel: string, source: string, options: BindOptions): Promise<void> {
    return this.inOrder([{ step: 'bindBeneath', dir, rel, source, options }]);
  }

  private async recordBind(dir: string, rel: string, source: string, options: BindOptions): Promise<void> {
    const target = join(dir, rel);
    await mkdir(options.kind === 'dir' ? target : dirname(target), { recursive: true });
    if (options.kind === 'file') await writeFile(target, '', { flag: 'a' });
    this.calls.push(
      `${options.recursive ? 'rbind' : 'bind'}${options.readonly ? ' ro' : ''} ${source} ${target}`,
    );
    this.mounted.add(target);
  }

  private async makeMountPoints(rootfs: string, points: readonly MountPoint[]): Promise<void> {
    this.calls.push(`mountpoints ${rootfs} ${points.map((p) => `${p.kind}:${p.path}`).join(' ')}`);
  }

  makeSharedMountPoint(dir: string): Promise<void> {
    return this.inOrder([{ step: 'makeSharedMountPoint', dir }]);
  }

  private async recordShared(dir: string): Promise<void> {
    this.calls.push(`shared ${dir}`);
    this.mounted.add(dir);
  }

  async mount(spec: FilesystemMount, target: string): Promise<void> {
    this.calls.push(`mount ${spec.type} ${spec.source} ${target} ${spec.options.join(',')}`);
    this.mounted.add(target);
  }

  async inOrder(steps: readonly MountStep[]): Promise<void> {
    if (steps.length > 0) this.runs++;
    for (const step of steps) {
      if (step.step === 'bindBeneath') await this.recordBind(step.dir, step.rel, step.source, step.options);
      else if (step.step === 'makeMountPoints') await this.makeMountPoints(step.rootfs, step.points);
      else await this.recordShared(step.dir);
    }
  }

  async unmountTree(target: string): Promise<void> {
    for (const point of await this.mountsUnder(target)) {
      this.calls.push(`umount ${point}`);
      this.mounted.delete(point);
    }
  }

  async mountsUnder(dir: string): Promise<string[]> {
    return [...this.mounted]
      .filter((p) => p === dir || p.startsWith(`${dir}/`))
      .sort((a, b) => b.length - a.length);
  }
}
