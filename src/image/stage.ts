import { chmod, copyFile, mkdir, readlink, realpath, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { HullError } from '../errors.js';
import { run } from '../sys/exec.js';
import { sysrootLibraries } from './sysroot.js';

/** Helpers to lay out a guest file tree in a staging directory on the host. */

export async function stageFile(
  stage: string,
  hostPath: string,
  guestPath = hostPath,
  mode?: number,
): Promise<void> {
  const target = join(stage, guestPath);
  await mkdir(dirname(target), { recursive: true });
  await copyFile(await realpath(hostPath), target);
  if (mode !== undefined) await chmod(target, mode);
}

/** The shared libraries a dynamically linked host binary loads, as ldd lists them. */
export async function sharedLibraries(binary: string, signal?: AbortSignal): Promise<string[]> {
  let out: string;
  try {
    out = await run('ldd', [binary], { signal });
  } catch (err) {
    // ldd fails on static binaries ("not a dynamic executable"): they need nothing.
    if (/not a dynamic executable/.test(String((err as Error).message))) return [];
    throw err;
  }
  const libs: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
    if (/not found/.test(line))
      throw new HullError('ERR_IMAGE_BUILD', `${binary} needs a library the host lacks: ${line.trim()}`);
  }
  return libs;
}

/**
 * Copies a binary and the libraries it loads to the same paths in the stage: the host's own,
 * or, given the `sysroot` of another architecture the binary comes from, that sysroot's.
 * Returns the guest paths of the binary and its libraries.
 */
export async function stageBinary(
  stage: string,
  hostPath: string,
  guestPath: string,
  signal?: AbortSignal,
  sysroot?: string,
): Promise<string[]> {
  await stageFile(stage, hostPath, guestPath, 0o755);
  const libs = sysroot
    ? await sysrootLibraries(sysroot, hostPath, signal)
    : await sharedLibraries(hostPath, signal);
  for (const lib of libs) await stageFile(stage, sysroot ? join(sysroot, lib) : lib, lib, 0o755);
  return [guestPath, ...libs];
}

/**
 * Installs busybox and a symlink per applet in `binDir` of the stage. A busybox of another
 * architecture cannot be asked for its applets: `listedBy` is the host's busybox from the
 * same Debian release, which has the same ones.
 */
export async function stageBusybox(
  stage: string,
  busybox: string,
  binDir: string,
  signal?: AbortSignal,
  listedBy = busybox,
): Promise<void> {
  await stageFile(stage, busybox, `${binDir}/busybox`, 0o755);
  const applets = (await run(listedBy, ['--list'], { signal })).split('\n').filter(Boolean);
  for (const applet of applets) {
    if (applet === 'busybox') continue;
    const link = join(stage, binDir, applet);
    try {
      await readlink(link);
    } catch {
      await symlink('busybox', link);
    }
  }
}

export async function mkdirs(stage: string, dirs: readonly string[]): Promise<void> {
  for (const dir of dirs) await mkdir(join(stage, dir), { recursive: true });
}
