import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { HullError, messageOf } from '../errors.js';
import { exists } from '../util/fs.js';

const CGROUP_ROOT = '/sys/fs/cgroup';
/** Where a VMM's cgroup goes when the container names none: `/hull/<sandbox>`. */
export const VMM_CGROUP_PARENT = 'hull';

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  /** A CFS bandwidth limit, when the container has one. */
  cpu?: { quotaUs: number; periodUs: number };
  /** The container's CPU shares (v1 cpu.shares; converted to cpu.weight on v2). */
  cpuShares?: number;
}

/** The v1 hierarchies a sandbox's cgroup spans; the first holds the memory files. */
const V1_HIERARCHIES = ['memory', 'pids', 'cpu'] as const;

/**
 * One sandbox's cgroup on the host, holding its VMM and the process that owns it (monitor or
 * shim), sized to the sandbox: the memory a guest can make them use and the tasks it can make
 * them start stop there instead of at the host's limits, and the host sees what the sandbox
 * costs at the path it asked for. On a cgroup v2 host it is one directory; on a v1 (or hybrid)
 * host, one in each of the memory, pids and cpu hierarchies. The VMM joins it before it runs
 * (hull-jail writes its pid to `procsFiles`).
 */
export class VmmCgroup {
  private constructor(
    readonly layout: 'v1' | 'v2',
    /** The path as /proc/<pid>/cgroup shows it, e.g. `/hull/<sandbox>`. */
    readonly path: string,
    /** The root of each hierarchy it spans (v2: the one), by controller name on v1. */
    private readonly roots: Map<string, string>,
  ) {}

  /** The cgroup directories, one per hierarchy. */
  get dirs(): string[] {
    return [...this.roots.values()].map((root) => join(root, this.path));
  }

  get procsFiles(): string[] {
    return this.dirs.map((dir) => join(dir, 'cgroup.procs'));
  }

  /** `/hull/<name>`: the cgroup of a VMM whose container named none. */
  static defaultPath(name: string): string {
    return `/${VMM_CGROUP_PARENT}/${name}`;
  }

  /** The cgroup at `path` (relative to each hierarchy's root) on this host; nothing is made. */
  static async of(path: string): Promise<VmmCgroup> {
    // Lexically inside the hierarchy: "/../x" is "/x", as runc cleans cgroup paths.
    const clean = posix.normalize(`/${path}`);
    if (await exists(join(CGROUP_ROOT, 'cgroup.controllers'))) {
      return new VmmCgroup('v2', clean, new Map([['unified', CGROUP_ROOT]]));
    }
    const roots = new Map<string, string>();
    for (const h of V1_HIERARCHIES) {
      if (await exists(join(CGROUP_ROOT, h, 'cgroup.procs'))) roots.set(h, join(CGROUP_ROOT, h));
    }
    return new VmmCgroup('v1', clean, roots);
  }

  static async create(path: string, limits: CgroupLimits): Promise<VmmCgroup> {
    const cgroup = await VmmCgroup.of(path);
    const v2 = cgroup.layout === 'v2';
    try {
      if (v2) await enableControllers(cgroup.path);
      // One left by a VMM that was killed with its monitor: empty, so it can go.
      await cgroup.remove();
      for (const dir of cgroup.dirs) await mkdir(dir, { recursive: true });
      await cgroup.apply(limits);
    } catch (err) {
      await cgroup.remove().catch(() => {});
      throw new HullError(
        'ERR_VM_START',
        `cannot make the sandbox's cgroup ${cgroup.path}: ${messageOf(err)} (is ${CGROUP_ROOT} mounted writable?)`,
        { cause: err },
      );
    }
    return cgroup;
  }

  private async apply(limits: CgroupLimits): Promise<void> {
    if (this.layout === 'v2') {
      const dir = this.dirs[0]!;
      await writeFile(join(dir, 'memory.max'), String(limits.memoryBytes));
      await writeFile(join(dir, 'memory.swap.max'), '0').catch(() => {});
      await writeFile(join(dir, 'pids.max'), String(limits.pids));
      if (limits.cpu) await writeFile(join(dir, 'cpu.max'), `${limits.cpu.quotaUs} ${limits.cpu.periodUs}`);
      if (limits.cpuShares)
        await writeFile(join(dir, 'cpu.weight'), String(weightOfShares(limits.cpuShares)));
      return;
    }
    const dirOf = (h: string) => {
      const root = this.roots.get(h);
      return root && join(root, this.path);
    };
    const memory = dirOf('memory');
    if (memory) await writeFile(join(memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    const pids = dirOf('pids');
    if (pids) await writeFile(join(pids, 'pids.max'), String(limits.pids));
    const cpu = dirOf('cpu');
    if (cpu && limits.cpu) {
      await writeFile(join(cpu, 'cpu.cfs_period_us'), String(limits.cpu.periodUs));
      await writeFile(join(cpu, 'cpu.cfs_quota_us'), String(limits.cpu.quotaUs));
    }
    if (cpu && limits.cpuShares) await writeFile(join(cpu, 'cpu.shares'), String(limits.cpuShares));
  }

  /** Whether any process is in the cgroup (false once it is gone). */
  async hasProcesses(): Promise<boolean> {
    const procs = await readFile(this.procsFiles[0] ?? '', 'utf8').catch(() => '');
    return procs.trim() !== '';
  }

  /** Moves a process (the sandbox's monitor or shim) into this cgroup. */
  async join(pid: number): Promise<void> {
    for (const procs of this.procsFiles) await writeFile(procs, String(pid));
  }

  /**
   * Moves a process back to the root of each hierarchy, so the cgroup can be removed while
   * the process (a monitor finishing its exit, a shim serving on) still runs.
   */
  async leave(pid: number): Promise<void> {
    for (const root of this.roots.values()) {
      await writeFile(join(root, 'cgroup.procs'), String(pid)).catch(() => {});
    }
  }

  /** Whether the kernel killed a process here for want of memory. */
  async oomKilled(): Promise<boolean> {
    const counters = this.layout === 'v2' ? 'memory.events' : 'memory.oom_control';
    const text = await readFile(join(this.dirs[0]!, counters), 'utf8').catch(() => '');
    return /^oom_kill [1-9]/m.test(text);
  }

  /**
   * Removes the cgroup once its processes have exited (an absent one is fine). A VMM killed
   * a moment ago may still be leaving it, so a busy cgroup is tried again for a while. Only
   * the sandbox's own directory goes: its parents (a pod's, a client's slice) are the client's.
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

/**
 * Moves `pid` into `path` (made if absent) in every cgroup hierarchy this host mounts: on a
 * v1 or hybrid host each controller's (cpuset, cpuacct, blkio, freezer, devices, ...), the
 * named and the unified one, not only those hull sets limits in. For a process that outlives
 * the one that started it (a template's memory holder): its starter's cgroups (conmon's, a
 * pod's) are its starter's, and go with it.
 */
export async function moveToOwnCgroups(pid: number, path: string): Promise<void> {
  const clean = posix.normalize(`/${path}`);
  for (const root of await hierarchyRoots()) {
    let dir = root;
    for (const part of clean.split('/').filter(Boolean)) {
      const parent = dir;
      dir = join(dir, part);
      await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      // A v1 cpuset cgroup takes no process until it has CPUs and memory nodes: its parent's.
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        const own = await readFile(join(dir, file), 'utf8').catch(() => undefined);
        if (own !== undefined && own.trim() === '')
          await writeFile(join(dir, file), await readFile(join(parent, file), 'utf8'));
      }
    }
    await writeFile(join(dir, 'cgroup.procs'), String(pid));
  }
}

/** The unified hierarchy's root, or on a v1 (hybrid) host the root of every mounted hierarchy. */
async function hierarchyRoots(): Promise<string[]> {
  if (await exists(join(CGROUP_ROOT, 'cgroup.controllers'))) return [CGROUP_ROOT];
  return v1Roots();
}

/** The root of every v1 hierarchy mounted under /sys/fs/cgroup, and the unified one if any. */
async function v1Roots(): Promise<string[]> {
  const roots: string[] = [];
  for (const entry of await readdir(CGROUP_ROOT, { withFileTypes: true })) {
    // cpu,cpuacct style names are often links to the one hierarchy: each is visited once.
    if (!entry.isDirectory()) continue;
    const root = join(CGROUP_ROOT, entry.name);
    if (await exists(join(root, 'cgroup.procs'))) roots.push(root);
  }
  return roots;
}

/** The conversion runc and crun use from v1 cpu.shares (2–262144) to v2 cpu.weight (1–10000). */
export function weightOfShares(shares: number): number {
  const clamped = Math.min(Math.max(shares, 2), 262_144);
  return 1 + Math.floor(((clamped - 2) * 9999) / 262_142);
}

/**
 * On v2, a child gets the memory, pids and cpu files only once every ancestor delegates them,
 * from the root down to the cgroup's parent.
 */
async function enableControllers(path: string): Promise<void> {
  const parts = path.split('/').filter(Boolean);
  let dir = CGROUP_ROOT;
  for (const part of parts) {
    await writeFile(join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu').catch(() => {});
    dir = join(dir, part);
    await mkdir(dir, { recursive: true });
  }
}

/**
 * Moves this process (and so the processes it starts later) to the root cgroup of every
 * hierarchy, out of the cgroups of whoever started it. The holder of a pod's VM is started
 * under the first container's conmon, whose cgroup CRI-O kills when that container is
 * removed; the VM is the pod's and must outlive it. The sandbox's own cgroup (VmmCgroup)
 * then takes the controllers it limits. A hierarchy that refuses is left as it is.
 */
export async function leaveCallerCgroups(): Promise<void> {
  const pid = String(process.pid);
  for (const root of await hierarchyRoots().catch(() => [] as string[])) {
    await writeFile(join(root, 'cgroup.procs'), pid).catch(() => {});
  }
}
