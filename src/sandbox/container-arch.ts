import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { setting } from '../config/settings.js';
import { type Arch, archOfElfMachine, hostArch, requireArch } from '../hypervisor/arch.js';
import type { Spec } from '../oci/spec.js';

/** The annotation a client sets to choose the guest architecture of a container's VM. */
export const ARCH_ANNOTATION = 'dev.hull.arch';

/** Symlinks followed in one resolution before giving up, as the kernel's limit (ELOOP). */
const MAX_SYMLINKS = 40;
const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * Resolves `path` inside `rootfs` as the container would see it: every symlink, absolute or
 * relative, is read as the container's (an absolute target starts again at `rootfs`, `..`
 * stops at it), so nothing outside the root filesystem is reached through a link. Returns the
 * host path of a regular file, or undefined.
 */
export async function resolveInRootfs(rootfs: string, path: string): Promise<string | undefined> {
  const pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const host = join(rootfs, ...done, part);
    const info = await lstat(host).catch(() => undefined);
    if (!info) return undefined;
    if (info.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    if (pending.length > 0 && !info.isDirectory()) return undefined;
    done.push(part);
  }
  return join(rootfs, ...done);
}

/** The head of a file opened without following a final symlink (resolveInRootfs did those). */
async function head(file: string, bytes: number): Promise<Buffer | undefined> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    () => undefined,
  );
  if (!handle) return undefined;
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const buffer = Buffer.alloc(bytes);
    const { bytesRead } = await handle.read(buffer, 0, bytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * The architecture of the program a container runs: its `process.args[0]` found as the
 * container would (a name without a slash on the container's PATH, else from its cwd), in its
 * root filesystem; a script's interpreter (`#!`) is followed, twice at most. Undefined when it
 * is none hull runs or cannot be found (then the VM is the configured architecture's, and the
 * container fails in it as it would anywhere).
 */
export async function programArch(rootfs: string, process: Spec['process']): Promise<Arch | undefined> {
  let program = process?.args?.[0];
  if (!program) return undefined;
  const pathVar = process?.env?.find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  for (let depth = 0; depth < 3; depth++) {
    const candidates = program.includes('/')
      ? [posix.resolve(process?.cwd ?? '/', program)]
      : pathVar
          .split(':')
          .filter((d) => d.startsWith('/'))
          .map((d) => posix.join(d, program!));
    let file: string | undefined;
    for (const candidate of candidates) {
      file = await resolveInRootfs(rootfs, candidate);
      if (file) break;
    }
    if (!file) return undefined;
    const bytes = await head(file, 256);
    if (!bytes) return undefined;
    if (bytes.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46])) && bytes.length >= 20) {
      // e_machine, in the file's own byte order (EI_DATA: 1 little-endian, 2 big-endian).
      const machine = bytes[5] === 2 ? bytes.readUInt16BE(18) : bytes.readUInt16LE(18);
      return archOfElfMachine(machine);
    }
    if (bytes.subarray(0, 2).toString() !== '#!') return undefined;
    const interpreter = bytes.subarray(2).toString().split('\n')[0]!.trim().split(/\s+/)[0];
    if (!interpreter?.startsWith('/')) return undefined;
    program = interpreter;
  }
  return undefined;
}

/**
 * The guest architecture of a container's VM: the vm.arch setting when one is set, else the
 * container's annotation, else its program's, else the host's.
 */
export async function containerArch(bundle: { spec: Spec; rootfs: string }): Promise<Arch> {
  const configured = setting('arch');
  if (configured !== 'auto') return configured as Arch;
  const annotated = bundle.spec.annotations?.[ARCH_ANNOTATION];
  if (annotated !== undefined) return requireArch(annotated, `annotation ${ARCH_ANNOTATION}`);
  return (await programArch(bundle.rootfs, bundle.spec.process)) ?? hostArch();
}
