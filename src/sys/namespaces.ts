import { lstat, readlink, stat } from 'node:fs/promises';
import { run } from './exec.js';
import { systemTool } from './system-tool.js';

/**
 * Each runtime-spec namespace type: the kernel's name for it in /proc/<pid>/ns links
 * ("net:[4026531840]"), which is also nsenter's option for it, but for mount (`--mount`).
 */
const KERNEL_NAME: Record<string, string> = {
  network: 'net',
  mount: 'mnt',
  ipc: 'ipc',
  uts: 'uts',
  pid: 'pid',
  user: 'user',
  cgroup: 'cgroup',
  time: 'time',
};

export type NamespacePathCheck = 'ok' | 'missing' | 'unreadable' | 'other-type';

/**
 * Whether `path` names a namespace of `type`, as setns(2) would find when runc joins it: a
 * /proc/<pid>/ns link says its type in its target; a bind-mounted namespace file (ip netns)
 * does not, so nsenter tries to enter it as that type, which the kernel refuses for another.
 * Never for a mount namespace: the program nsenter runs would come from that namespace's
 * files, which whoever made it chose; such a file is only checked to be a namespace file.
 */
export async function checkNamespacePath(
  path: string,
  type: string,
  signal?: AbortSignal,
): Promise<NamespacePathCheck> {
  let device: number;
  try {
    device = (await stat(path)).dev;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unreadable';
  }
  const kernelName = KERNEL_NAME[type];
  if (!kernelName) return 'other-type';
  const target = await readlink(path).catch(() => undefined);
  const linked = target && /^(\w+):\[\d+\]$/.exec(target)?.[1];
  if (linked) return linked === kernelName || linked === `${kernelName}_for_children` ? 'ok' : 'other-type';
  if (type === 'mount') {
    // Every namespace file lives on the one nsfs: this one's device says it is one.
    const nsfs = (await stat('/proc/self/ns/mnt')).dev;
    return device === nsfs ? 'ok' : 'other-type';
  }
  try {
    await run(systemTool('nsenter'), [`--${kernelName}=${path}`, '--', systemTool('true')], {
      signal,
      errorCode: 'ERR_CONFIG',
      purpose: `entering ${path}`,
    });
    return 'ok';
  } catch {
    return 'other-type';
  }
}

/**
 * Whether `path` (already checked to be a namespace of `type`) is a pinned namespace: a
 * namespace file bind-mounted outside /proc, as CRI-O's pinns and `ip netns` make, to keep a
 * namespace no process is in, and not one hull itself is in (the host's). A /proc/<pid>/ns
 * link names some process's namespace, so it is never a pin.
 */
export async function isPinnedNamespace(path: string, type: string): Promise<boolean> {
  const kernelName = KERNEL_NAME[type];
  const info = await lstat(path).catch(() => undefined);
  if (!kernelName || !info?.isFile()) return false;
  const nsfs = (await stat('/proc/self/ns/mnt')).dev;
  if (info.dev !== nsfs) return false;
  for (const own of [`/proc/self/ns/${kernelName}`, `/proc/1/ns/${kernelName}`]) {
    const ino = await stat(own).then(
      (s) => s.ino,
      () => undefined,
    );
    if (ino === info.ino) return false;
  }
  return true;
}
