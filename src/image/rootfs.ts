import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../sys/exec.js';
import { type ModuleTree, stageModuleTree } from './module-tree.js';
import { mkdirs, stageBinary, stageBusybox, stageFile } from './stage.js';

/**
 * The files hull-init reads ahead into the page cache at boot (guest/image/hull-init.c): crun
 * and its libraries, which every container's start needs. A VM template is saved with them
 * cached, so its clones share those pages instead of each reading them from the root disk into
 * memory of its own at its first container (about 3 MiB a clone), and find them without I/O.
 */
const PAGE_CACHE_LIST = '/opt/hull/page-cache.list';

export interface RootfsInputs {
  stage: string;
  output: string;
  busybox: string;
  node: string;
  crun: string;
  ip: string;
  hullInit: string;
  hullTty: string;
  /** The directory watcher (guest/image/hull-watch.c). */
  hullWatch: string;
  /** Starts processes in containers without crun (guest/image/hull-spawn.c). */
  hullSpawn: string;
  /** The agent's Node-API addon (guest/agent/native/guest-syscalls.c). */
  guestSyscalls: string;
  agentBundle: string;
  /** Modules containers load on demand, with kmod to load them; none for a kernel without modules. */
  moduleTree?: ModuleTree;
  /**
   * For a guest of another architecture than the host's: the sysroot busybox, crun, ip and
   * Node's libraries come from, and the host's busybox that lists the applets.
   */
  foreign?: { sysroot: string; hostBusybox: string };
  signal?: AbortSignal;
}

/**
 * The guest root filesystem: read-only erofs on a virtio disk, so the 100 MiB Node runtime is
 * paged in on demand instead of unpacked into guest RAM at every boot. Uncompressed, because
 * decompression under software emulation costs more than reading a host-cached file.
 */
export async function buildRootfs(inputs: RootfsInputs): Promise<void> {
  const { stage, signal } = inputs;
  await mkdirs(stage, [
    'bin',
    'sbin',
    'usr/bin',
    'usr/sbin',
    'dev',
    'proc',
    'sys',
    'run',
    'tmp',
    'mnt',
    'root',
    'etc',
    'opt/hull',
  ]);
  const sysroot = inputs.foreign?.sysroot;
  await stageBusybox(stage, inputs.busybox, 'bin', signal, inputs.foreign?.hostBusybox);
  await stageBinary(stage, inputs.node, '/usr/bin/node', signal, sysroot);
  const crunFiles = await stageBinary(stage, inputs.crun, '/usr/bin/crun', signal, sysroot);
  await stageBinary(stage, inputs.ip, '/usr/sbin/ip', signal, sysroot);
  await stageFile(stage, inputs.hullInit, '/sbin/hull-init', 0o755);
  await stageFile(stage, inputs.hullTty, '/usr/bin/hull-tty', 0o755);
  await stageFile(stage, inputs.hullWatch, '/usr/bin/hull-watch', 0o755);
  await stageFile(stage, inputs.hullSpawn, '/usr/bin/hull-spawn', 0o755);
  await stageFile(stage, inputs.guestSyscalls, '/opt/hull/guest-syscalls.node', 0o644);
  await stageFile(stage, inputs.agentBundle, '/opt/hull/agent.cjs', 0o644);
  const modprobeFiles = inputs.moduleTree ? await stageModuleTree(stage, inputs.moduleTree, signal) : [];
  // No nsswitch.conf: crun is static (crun.ts), and glibc's built-in files module answers its
  // user lookups from these; a file naming other services would have it load their libraries.
  await writeFile(join(stage, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
  await writeFile(join(stage, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(stage, 'etc/hostname'), 'hull\n');
  await writeFile(
    join(stage, PAGE_CACHE_LIST),
    `${[...new Set([...crunFiles, ...modprobeFiles])].join('\n')}\n`,
  );
  await run('mkfs.erofs', ['--quiet', '--all-root', '-T0', inputs.output, stage], {
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: 'making the erofs root filesystem (is erofs-utils installed?)',
  });
}
