import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { HullError } from '../errors.js';
import { type Arch, archProfile } from '../hypervisor/arch.js';
import { run } from '../sys/exec.js';
import { exists } from '../util/fs.js';

/**
 * The guest's programs for an architecture other than the host's come from Debian's packages
 * for that architecture, unpacked (never installed, never run) into a directory of their own:
 * mmdebstrap's extract variant downloads the packages with their dependencies and unpacks
 * them, with no emulation and no change to the host's apt configuration.
 */
const SYSROOT_PACKAGES = (arch: Arch) => [
  'busybox-static',
  'crun',
  'iproute2',
  'kmod',
  // What the official Node binary links against besides libc.
  'libstdc++6',
  archProfile(arch).kernelPackage,
];

/** The Debian release the guest's programs come from. */
export const DEBIAN_SUITE = 'bookworm';

/** The programs the guest image copies, as paths in the sysroot. */
export interface SysrootTools {
  root: string;
  busybox: string;
  crun: string;
  ip: string;
  kmod: string;
  /** The kernel package's vmlinuz, config and modules. */
  kernel: { vmlinuz: string; config: string; modulesDir: string; release: string };
}

/**
 * The sysroot for `arch` under `cacheDir`, made once (a minute, most of it the kernel's
 * modules) and kept; `refresh` makes it again from the archive's current packages.
 */
export async function guestSysroot(
  arch: Arch,
  cacheDir: string,
  options: { refresh?: boolean; signal?: AbortSignal } = {},
): Promise<SysrootTools> {
  const debian = archProfile(arch).debian;
  const root = join(cacheDir, `sysroot-${debian}`);
  if (options.refresh || !(await exists(join(root, '.complete')))) {
    const work = `${root}.tmp-${process.pid}`;
    await rm(work, { recursive: true, force: true });
    await mkdir(cacheDir, { recursive: true });
    try {
      await run(
        'mmdebstrap',
        [
          '--quiet',
          '--variant=extract',
          `--architectures=${debian}`,
          `--include=${SYSROOT_PACKAGES(arch).join(',')}`,
          DEBIAN_SUITE,
          work,
        ],
        {
          signal: options.signal,
          errorCode: 'ERR_IMAGE_BUILD',
          purpose: `unpacking Debian's ${debian} packages for the guest (install mmdebstrap)`,
        },
      );
      await run('touch', [join(work, '.complete')], { signal: options.signal });
      await rm(root, { recursive: true, force: true });
      await rename(work, root);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
  const boot = await readdir(join(root, 'boot'));
  const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new HullError('ERR_IMAGE_BUILD', `the ${debian} sysroot ${root} holds no kernel`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  return {
    root,
    busybox: join(root, 'bin', 'busybox'),
    crun: join(root, 'usr', 'bin', 'crun'),
    ip: join(root, 'bin', 'ip'),
    kmod: join(root, 'bin', 'kmod'),
    kernel: {
      vmlinuz: join(root, 'boot', vmlinuz),
      config: join(root, 'boot', `config-${release}`),
      modulesDir: join(root, 'lib', 'modules', release),
      release,
    },
  };
}

/** The program interpreter and the DT_NEEDED libraries of an ELF file, from readelf. */
async function elfDependencies(file: string, signal?: AbortSignal) {
  const out = await run('readelf', ['--wide', '--program-headers', '--dynamic', file], {
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: `reading the libraries ${file} needs (install binutils)`,
  });
  const interpreter = /\[Requesting program interpreter: ([^\]]+)\]/.exec(out)?.[1];
  const needed = [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
  return { interpreter, needed };
}

/**
 * The libraries a program of the sysroot loads, as absolute paths in the guest (the same as in
 * the sysroot), found the way its dynamic loader would, in the architecture's multiarch
 * directories; the host's own ldd cannot run a foreign program to ask it.
 */
export async function sysrootLibraries(
  sysroot: string,
  binary: string,
  signal?: AbortSignal,
): Promise<string[]> {
  const triplet = (await readdir(join(sysroot, 'lib'))).find((d) => /-linux-gnu$/.test(d));
  const searchDirs = triplet
    ? [`/lib/${triplet}`, `/usr/lib/${triplet}`, '/lib', '/usr/lib']
    : ['/lib', '/usr/lib'];
  const found = new Set<string>();
  const pending = [binary];
  while (pending.length > 0) {
    const file = pending.pop()!;
    const { interpreter, needed } = await elfDependencies(file, signal);
    const guestPaths: string[] = [];
    if (interpreter) guestPaths.push(interpreter);
    for (const name of needed) {
      let hit: string | undefined;
      for (const dir of searchDirs) {
        const candidate = posix.join(dir, name);
        if (await exists(join(sysroot, candidate))) {
          hit = candidate;
          break;
        }
      }
      if (!hit)
        throw new HullError('ERR_IMAGE_BUILD', `${binary} needs ${name}, which the sysroot ${sysroot} lacks`);
      guestPaths.push(hit);
    }
    for (const guestPath of guestPaths) {
      if (found.has(guestPath)) continue;
      found.add(guestPath);
      pending.push(join(sysroot, guestPath));
    }
  }
  return [...found];
}

/**
 * The official Node binary for `arch`, of the same version as the Node running hull, from the
 * npm registry's `node-linux-<arch>` package (the one `npm install node` picks on such a
 * host), fetched once into `cacheDir`.
 */
export async function foreignNode(
  arch: Arch,
  cacheDir: string,
  signal?: AbortSignal,
  version = process.versions.node,
): Promise<string> {
  const name = `node-linux-${archProfile(arch).nodeArch}`;
  const dir = join(cacheDir, `${name}-${version}`);
  const node = join(dir, 'package', 'bin', 'node');
  if (await exists(node)) return node;
  const work = `${dir}.tmp-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const tarball = (
      await run('npm', ['pack', '--silent', `${name}@${version}`], {
        cwd: work,
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
        purpose: `fetching Node ${version} for ${arch} from the npm registry`,
      })
    ).trim();
    await run('tar', ['-xzf', tarball, 'package/bin/node'], {
      cwd: work,
      signal,
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: `unpacking ${tarball}`,
    });
    await rm(join(work, tarball));
    await rm(dir, { recursive: true, force: true });
    await rename(work, dir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return node;
}
