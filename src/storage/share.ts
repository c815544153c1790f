import { chmod, mkdir, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { ContainerPlacement } from '../agent/client.js';
import { HullError } from '../errors.js';
import { isBindMount, isReadOnlyMount, type Mount } from '../oci/spec.js';
import { type Mounter, type MountPoint, type MountStep, removeUnmounted } from '../sys/mount.js';

/** A container's files as the share takes them: its root and its mounts' sources. */
export interface ContainerFiles {
  id: string;
  root: { path: string; readonly?: boolean };
  mounts: readonly Mount[];
  bundleDir: string;
}

/**
 * The sandbox's one shared directory. QEMU exports it to the guest over virtio-9p at boot;
 * containers added later (pods, exec'd tools) appear inside it by bind-mounting their root
 * filesystem and bind-mount sources under `<share>/<container id>/`. One export for the whole
 * sandbox means no device hotplug, which the microvm machine cannot do.
 */
export class SandboxShare {
  constructor(
    readonly dir: string,
    private readonly mounter: Mounter,
  ) {}

  /**
   * The share is its own mount point with shared propagation: the VMM sees it from its own
   * mount namespace (read-only at the top), and containers mounted here later must reach it.
   * A sandbox's first container is placed in it by the same helper run (one process fewer
   * before QEMU can start); its placement is returned.
   */
  async prepare(first?: ContainerFiles): Promise<ContainerPlacement | undefined> {
    // Search-only for others: in the guest a user-namespaced container's root is not uid 0
    // and must still pass through to its rootfs. On the host the VM's directory (0700) guards it.
    await mkdir(this.dir, { recursive: true, mode: 0o711 });
    await chmod(this.dir, 0o711);
    const shared: MountStep = { step: 'makeSharedMountPoint', dir: this.dir };
    if (!first) {
      await this.mounter.inOrder([shared]);
      return undefined;
    }
    return this.place(first, [shared]);
  }

  /**
   * Makes a container's files visible in the guest; returns where they are in the share. A
   * read-only root or bind mount is bound read-only here, on the host, so that it stays so
   * whatever happens in the guest: the VMM's file server can write nothing below it. The
   * guest's runtime cannot make mount points in a read-only root, so they are made here first.
   */
  addContainer(files: ContainerFiles): Promise<ContainerPlacement> {
    return this.place(files, []);
  }

  /** Places a container's files after `before`, all in one helper run; undone if it fails. */
  private async place(files: ContainerFiles, before: MountStep[]): Promise<ContainerPlacement> {
    const { steps, placement } = await this.placing(files);
    try {
      await this.mounter.inOrder([...before, ...steps]);
      return placement;
    } catch (err) {
      await this.removeContainer(files.id);
      throw err;
    }
  }

  /** The mounts that place a container's files in the share, and where they will be. */
  private async placing({
    id: containerId,
    root,
    mounts,
    bundleDir,
  }: ContainerFiles): Promise<{ steps: MountStep[]; placement: ContainerPlacement }> {
    const binds = await bindSources(mounts, bundleDir);
    const steps: MountStep[] = [];
    if (root.readonly)
      steps.push({ step: 'makeMountPoints', rootfs: root.path, points: mountPoints(mounts, binds) });
    steps.push({
      step: 'bindBeneath',
      dir: this.dir,
      rel: `${containerId}/rootfs`,
      source: root.path,
      options: { recursive: true, kind: 'dir', readonly: root.readonly === true },
    });
    const sharedMounts: ContainerPlacement['sharedMounts'] = [];
    for (const [index, bind] of binds) {
      const mount = mounts[index]!;
      const sharePath = `${containerId}/mounts/${index}`;
      steps.push({
        step: 'bindBeneath',
        dir: this.dir,
        rel: sharePath,
        source: bind.source,
        options: {
          recursive: mount.type === 'rbind' || (mount.options ?? []).includes('rbind'),
          kind: bind.kind,
          readonly: isReadOnlyMount(mount),
        },
      });
      sharedMounts.push({ index, sharePath });
    }
    return { steps, placement: { rootfsSharePath: `${containerId}/rootfs`, sharedMounts } };
  }

  async removeContainer(containerId: string): Promise<void> {
    await removeUnmounted(this.mounter, join(this.dir, containerId));
  }

  /** Unmounts everything in the share, whatever a crashed run left, and removes it. */
  async destroy(): Promise<void> {
    await removeUnmounted(this.mounter, this.dir);
  }
}

/** Each bind mount's source on the host, and whether it is a directory, by index in `mounts`. */
async function bindSources(
  mounts: readonly Mount[],
  bundleDir: string,
): Promise<Map<number, { source: string; kind: 'dir' | 'file' }>> {
  const binds = new Map<number, { source: string; kind: 'dir' | 'file' }>();
  for (const [index, mount] of mounts.entries()) {
    if (!isBindMount(mount)) continue;
    const source = isAbsolute(mount.source ?? '') ? mount.source! : resolve(bundleDir, mount.source ?? '');
    const info = await stat(source).catch(() => undefined);
    if (!info) {
      throw new HullError(
        'ERR_CONFIG',
        `mount source ${source} (for ${mount.destination}) does not exist: create it or fix config.json`,
      );
    }
    binds.set(index, { source, kind: info.isDirectory() ? 'dir' : 'file' });
  }
  return binds;
}

/**
 * Where the mounts go in the container's root: a file for a bind of a file, else a directory;
 * none below an earlier mount, which the runtime makes inside that mount, not in the root.
 */
function mountPoints(mounts: readonly Mount[], binds: Map<number, { kind: 'dir' | 'file' }>): MountPoint[] {
  const points: MountPoint[] = [];
  for (const [index, mount] of mounts.entries()) {
    const path = mount.destination;
    const below = mounts
      .slice(0, index)
      .some((m) => path.startsWith(m.destination.endsWith('/') ? m.destination : `${m.destination}/`));
    if (isAbsolute(path) && !below) points.push({ path, kind: binds.get(index)?.kind ?? 'dir' });
  }
  return points;
}
