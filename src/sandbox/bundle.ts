import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { HullError } from '../errors.js';
import { checkSpec } from '../oci/checks.js';
import { INPUT_LIMITS } from '../oci/input-limits.js';
import { clip } from '../oci/shape.js';
import { isBindMount, type Spec } from '../oci/spec.js';
import { readRegularFile } from '../sys/regular-file.js';

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
  const spec = await readConfigJson(configPath);
  checkSpec(spec, configPath);
  const root = spec.root!;
  const rootfs = isAbsolute(root.path) ? resolve(root.path) : join(dir, root.path);
  if (!(await stat(rootfs).catch(() => undefined))?.isDirectory()) {
    throw new HullError(
      'ERR_BUNDLE',
      `the root filesystem ${clip(rootfs, 200)} does not exist: unpack an image there`,
    );
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

/**
 * A bundle's config.json, parsed but not checked: read only if it is a regular file of
 * bounded size (sys/regular-file.ts), each failure one line naming the file.
 */
export async function readConfigJson(configPath: string): Promise<unknown> {
  const text = await readRegularFile(configPath, {
    maxBytes: INPUT_LIMITS.configBytes,
    why: "a container's configuration is far smaller",
    code: 'ERR_BUNDLE',
    missing: 'is missing: create one with `runc spec` or `hull spec`',
  });
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HullError(
      'ERR_CONFIG',
      `${configPath} is not valid JSON: ${clip((err as Error).message, 200)}`,
    );
  }
}

/** A missing bind source is found here, before a VM is booted for nothing. */
async function checkBindSources(spec: Spec, dir: string, configPath: string): Promise<void> {
  for (const mount of spec.mounts ?? []) {
    if (!isBindMount(mount)) continue;
    const source = isAbsolute(mount.source ?? '') ? mount.source! : join(dir, mount.source ?? '');
    if (!(await stat(source).catch(() => undefined))) {
      throw new HullError(
        'ERR_CONFIG',
        `mount source ${clip(source)} (for ${clip(mount.destination)}) does not exist: create it or fix ${configPath}`,
      );
    }
  }
}
