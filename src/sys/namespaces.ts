import { readlink, stat } from 'node:fs/promises';
import { run } from './exec.js';

/** nsenter's option for each runtime-spec namespace type. */
const NSENTER_OPTION: Record<string, string> = {
  network: '--net',
  mount: '--mount',
  ipc: '--ipc',
  uts: '--uts',
  pid: '--pid',
  user: '--user',
  cgroup: '--cgroup',
  time: '--time',
};

/** The kernel's name in /proc/<pid>/ns links ("net:[4026531840]") for each type. */
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
 */
export async function checkNamespacePath(
  path: string,
  type: string,
  signal?: AbortSignal,
): Promise<NamespacePathCheck> {
  try {
    await stat(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? 'missing' : 'unreadable';
  }
  const target = await readlink(path).catch(() => undefined);
  const kernelName = KERNEL_NAME[type];
  if (target !== undefined && kernelName) {
    const linked = /^(\w+):\[\d+\]$/.exec(target)?.[1];
    if (linked) return linked === kernelName || linked === `${kernelName}_for_children` ? 'ok' : 'other-type';
  }
  const option = NSENTER_OPTION[type];
  if (!option) return 'other-type';
  try {
    await run('nsenter', [`${option}=${path}`, '--', 'true'], {
      signal,
      errorCode: 'ERR_CONFIG',
      purpose: `entering ${path}`,
    });
    return 'ok';
  } catch {
    return 'other-type';
  }
}
