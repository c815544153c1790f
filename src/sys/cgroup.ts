import { access, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError, messageOf } from '../errors.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** Every VMM cgroup hull makes lives under this name, in each hierarchy it uses. */
export const VMM_CGROUP_PARENT = 'hull';

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

/**
 * One VMM's own cgroup, sized to its VM: the memory a guest can make QEMU use, and the
 * threads it can make it start, stop there instead of at the host's limits. On a cgroup v2
 * host it is one directory; on a v1 (or hybrid) host, one in the memory and one in the pids
 * hierarchy. The VMM joins it before it runs (hull-jail writes its pid to `procsFiles`).
 */
export class VmmCgroup {
  private constructor(
    readonly layout: 'v1' | 'v2',
    /** The cgroup directories, one per hierarchy. */
    readonly dirs: string[],
  ) {}

  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  /** The path as /proc/<pid>/cgroup shows it: `/hull/<name>`. */
  static pathOf(name: string): string {
    return `/${VMM_CGROUP_PARENT}/${name}`;
  }

  /** The cgroup a VMM named `name` has or would have on this host; nothing is made. */
  static async of(name: string): Promise<VmmCgroup> {
    return (await exists(join(CGROUP_ROOT, 'cgroup.controllers')))
      ? new VmmCgroup('v2', [join(CGROUP_ROOT, VMM_CGROUP_PARENT, name)])
      : new VmmCgroup('v1', [
          join(CGROUP_ROOT, 'memory', VMM_CGROUP_PARENT, name),
          join(CGROUP_ROOT, 'pids', VMM_CGROUP_PARENT, name),
        ]);
  }

  static async create(name: string, limits: CgroupLimits): Promise<VmmCgroup> {
    const cgroup = await VmmCgroup.of(name);
    const v2 = cgroup.layout === 'v2';
    try {
      if (v2) await enableControllers(join(CGROUP_ROOT, VMM_CGROUP_PARENT));
      // One left by a VMM that was killed with its monitor: empty, so it can go.
      await cgroup.remove();
      for (const dir of cgroup.dirs) await mkdir(dir, { recursive: true });
      const [memoryDir, pidsDir] = v2 ? [cgroup.dirs[0]!, cgroup.dirs[0]!] : cgroup.dirs;
      await writeFile(
        join(memoryDir!, v2 ? 'memory.max' : 'memory.limit_in_bytes'),
        String(limits.memoryBytes),
      );
      if (v2) await writeFile(join(memoryDir!, 'memory.swap.max'), '0').catch(() => {});
      await writeFile(join(pidsDir!, 'pids.max'), String(limits.pids));
    } catch (err) {
      await cgroup.remove().catch(() => {});
      throw new HullError(
        'ERR_VM_START',
        `cannot make the VM's cgroup ${VmmCgroup.pathOf(name)}: ${messageOf(err)} (is ${CGROUP_ROOT} mounted writable?)`,
        { cause: err },
      );
    }
    return cgroup;
  }

  /** Whether the kernel killed a process here for want of memory. */
  async oomKilled(): Promise<boolean> {
    const counters = this.layout === 'v2' ? 'memory.events' : 'memory.oom_control';
    const text = await readFile(join(this.dirs[0]!, counters), 'utf8').catch(() => '');
    return /^oom_kill [1-9]/m.test(text);
  }

  /**
   * Removes the cgroup once its processes have exited (an absent one is fine). A VMM killed
   * a moment ago may still be leaving it, so a busy cgroup is tried again for a while.
   */
  async remove(): Promise<void> {
    const deadline = Date.now() + 2000;
    for (const dir of this.dirs) {
      for (;;) {
        const err = await rmdir(dir).then(
          () => undefined,
          (e: NodeJS.ErrnoException) => e,
        );
        if (!err || err.code === 'ENOENT') break;
        if (err.code !== 'EBUSY' || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** On v2, a child gets the memory and pids files only once its parent delegates them. */
async function enableControllers(parent: string): Promise<void> {
  await mkdir(parent, { recursive: true });
  for (const dir of [CGROUP_ROOT, parent]) {
    await writeFile(join(dir, 'cgroup.subtree_control'), '+memory +pids').catch(() => {});
  }
}
