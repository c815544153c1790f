import { readFile, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { HullError } from '../errors.js';
import { checkSpec } from '../oci/checks.js';
import { isBindMount, type Spec } from '../oci/spec.js';

export interface Bundle {
  dir: string;
  spec: Spec;
  /** The root filesystem's absolute host path. */
  rootfs: string;
}

/** Reads and checks an OCI bundle; each problem is one line that says what to fix. */
export async function loadBundle(path: string): Promise<Bundle> {
  // The bundle directory itself may be reached through a symlink: that is the caller's path.
  const dir = await realpath(resolve(path)).catch(() => resolve(path));
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new HullError(
      'ERR_BUNDLE',
      `bundle ${dir} does not exist: pass an OCI bundle directory with --bundle`,
    );
  }
  const configPath = join(dir, 'config.json');
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch {
    throw new HullError(
      'ERR_BUNDLE',
      `${configPath} is missing: create one with \`runc spec\` or \`hull spec\``,
    );
  }
  let spec: Spec;
  try {
    spec = JSON.parse(text) as Spec;
  } catch (err) {
    throw new HullError('ERR_CONFIG', `${configPath} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    throw new HullError('ERR_CONFIG', `${configPath} must hold a JSON object`);
  }
  if (!spec.root?.path)
    throw new HullError('ERR_CONFIG', `${configPath} has no root.path: name the root filesystem`);
  if (!spec.process?.args?.length) {
    throw new HullError('ERR_CONFIG', `${configPath} has no process.args: name the program to run`);
  }
  if (typeof spec.process.cwd !== 'string' || !spec.process.cwd.startsWith('/')) {
    throw new HullError('ERR_CONFIG', `${configPath}: process.cwd must be an absolute path`);
  }
  checkSpec(spec, configPath);
  const rootfs = isAbsolute(spec.root.path) ? resolve(spec.root.path) : join(dir, spec.root.path);
  if (!(await stat(rootfs).catch(() => undefined))?.isDirectory()) {
    throw new HullError('ERR_BUNDLE', `the root filesystem ${rootfs} does not exist: unpack an image there`);
  }
  // As runc: the rootfs path must be the real one. A symlink (to /, say) would hand the guest
  // whatever it points at, read-write.
  if ((await realpath(rootfs)) !== rootfs) {
    throw new HullError(
      'ERR_BUNDLE',
      `invalid rootfs ${rootfs}: a symlink, or reached through one; point root.path at the real directory`,
    );
  }
  await checkBindSources(spec, dir, configPath);
  return { dir, spec, rootfs };
}

/** A missing bind source is found here, before a VM is booted for nothing. */
async function checkBindSources(spec: Spec, dir: string, configPath: string): Promise<void> {
  for (const mount of spec.mounts ?? []) {
    if (!isBindMount(mount)) continue;
    const source = isAbsolute(mount.source ?? '') ? mount.source! : join(dir, mount.source ?? '');
    if (!(await stat(source).catch(() => undefined))) {
      throw new HullError(
        'ERR_CONFIG',
        `mount source ${source} (for ${mount.destination}) does not exist: create it or fix ${configPath}`,
      );
    }
  }
}
