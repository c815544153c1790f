import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { HullError } from '../errors.js';
import { type Arch, archProfile, hostArch } from '../hypervisor/arch.js';
import { run } from '../sys/exec.js';
import { sha256File } from './manifest.js';

const SOURCE_PACKAGE = 'linux-source-6.1';
const SOURCE_DIR = '/usr/src';
/** What building a kernel needs besides the source. */
const BUILD_PACKAGES = [
  'linux-source-6.1',
  'build-essential',
  'bc',
  'bison',
  'flex',
  'libelf-dev',
  'xz-utils',
];

async function sourceTarball(): Promise<string | undefined> {
  const names = await readdir(SOURCE_DIR).catch(() => [] as string[]);
  const tar = names.find((n) => n.startsWith('linux-source-') && n.endsWith('.tar.xz'));
  return tar ? join(SOURCE_DIR, tar) : undefined;
}

async function hasProgram(name: string): Promise<boolean> {
  return run(name, ['--version']).then(
    () => true,
    () => false,
  );
}

async function ensureSource(arch: Arch, signal?: AbortSignal): Promise<string> {
  let tar = await sourceTarball();
  const cross = arch === hostArch() ? undefined : archProfile(arch);
  const packages = [...BUILD_PACKAGES, ...(cross?.crossPackages ?? [])];
  if (!tar || (cross && !(await hasProgram(cross.crossCompiler)))) {
    await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...packages], {
      signal,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: `installing ${SOURCE_PACKAGE} and the kernel build tools${cross ? ` and ${cross.crossCompiler}` : ''}`,
    });
    tar = await sourceTarball();
  }
  if (!tar)
    throw new HullError('ERR_IMAGE_BUILD', `${SOURCE_PACKAGE} installed no source tarball in ${SOURCE_DIR}`);
  return tar;
}

/**
 * Kconfig silently drops an option whose dependencies are off (erofs needs
 * MISC_FILESYSTEMS, say). Check every option the fragment sets before spending minutes on
 * a kernel that lacks it.
 */
export async function checkFragmentApplied(fragment: string | string[], dotConfig: string): Promise<void> {
  const fragments = typeof fragment === 'string' ? [fragment] : fragment;
  // Later fragments override earlier ones, as merge_config.sh applies them.
  const wanted = new Map<string, string>();
  for (const f of fragments) for (const [k, v] of parseConfig(await readFile(f, 'utf8'))) wanted.set(k, v);
  const got = parseConfig(await readFile(dotConfig, 'utf8'));
  const lost = [...wanted].filter(([k, v]) => (got.get(k) ?? 'n') !== v).map(([k, v]) => `${k}=${v}`);
  if (lost.length > 0) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `the kernel configuration dropped ${lost.join(', ')}: add what they depend on to ${fragments.join(' or ')}`,
    );
  }
}

/** CONFIG_X=value lines, with "# CONFIG_X is not set" read as n. */
export function parseConfig(text: string): Map<string, string> {
  const options = new Map<string, string>();
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line.trim());
    if (set) options.set(set[1]!, set[2]!);
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line.trim());
    if (unset) options.set(unset[1]!, 'n');
  }
  return options;
}

/**
 * The configuration fragments of `arch`'s minimal kernel in `dir` (guest/image/kernel): the
 * common one, then the architecture's own (its console, its RTC), which overrides it.
 */
export function minimalKernelFragments(dir: string, arch: Arch): string[] {
  const common = join(dir, 'minimal.config');
  return arch === 'x86_64' ? [common] : [common, join(dir, `minimal-${arch}.config`)];
}

/** make's variables for building `arch`'s kernel on a `host` host: none, or ARCH= and CROSS_COMPILE=. */
export function kernelMakeVariables(arch: Arch, host: Arch = hostArch()): string[] {
  if (arch === host) return [];
  const profile = archProfile(arch);
  return [
    `ARCH=${profile.minimalKernel.linuxArch}`,
    `CROSS_COMPILE=${profile.crossCompiler.replace(/gcc$/, '')}`,
  ];
}

/**
 * The cache key of a minimal kernel: the Debian source version, the architecture and the
 * config fragments. x86_64's is the source and its one fragment, as before arm64's existed.
 */
export function minimalKernelKeyOf(source: string, arch: Arch, fragmentTexts: string[]): string {
  const h = createHash('sha256').update(`${SOURCE_PACKAGE}=${source}\n`);
  if (arch !== 'x86_64') h.update(`arch ${arch}\n`);
  for (const text of fragmentTexts) h.update(text);
  return h.digest('hex').slice(0, 16);
}

export async function minimalKernelKey(
  fragments: string[],
  arch: Arch,
  signal?: AbortSignal,
): Promise<string> {
  const policy = await run('apt-cache', ['policy', SOURCE_PACKAGE], { signal, errorCode: 'ERR_IMAGE_BUILD' });
  const version = /Installed:\s*(\S+)/.exec(policy)?.[1];
  const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  const source = version && version !== '(none)' ? version : candidate;
  if (!source || source === '(none)') {
    throw new HullError('ERR_IMAGE_BUILD', `${SOURCE_PACKAGE} is not available: run \`apt-get update\``);
  }
  const texts = await Promise.all(fragments.map((f) => readFile(f, 'utf8')));
  return minimalKernelKeyOf(source, arch, texts);
}

/**
 * Builds a small kernel with every driver the guest needs built in (no modules, so the
 * initramfs loads nothing): `make tinyconfig`, then the fragments kept in guest/image/kernel.
 * Another architecture's is cross-built with Debian's cross compiler. The result is cached by
 * source version, architecture and fragments.
 */
export async function buildMinimalKernel(
  fragments: string[],
  cacheDir: string,
  options: { arch?: Arch; signal?: AbortSignal } = {},
): Promise<{ vmlinuz: string; release: string }> {
  const { signal } = options;
  const arch = options.arch ?? hostArch();
  const { target, output } = archProfile(arch).minimalKernel;
  const tar = await ensureSource(arch, signal);
  const key = await minimalKernelKey(fragments, arch, signal);
  const done = join(cacheDir, key);
  const cached = join(done, basename(output));
  const readRelease = async () => (await readFile(join(done, 'release'), 'utf8')).trim();
  try {
    await stat(cached);
    return { vmlinuz: cached, release: await readRelease() };
  } catch {}
  const work = join(cacheDir, `.build-${key}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    await run('tar', ['-xf', tar, '-C', work, '--strip-components=1'], {
      signal,
      errorCode: 'ERR_IMAGE_BUILD',
    });
    const variables = kernelMakeVariables(arch);
    const make = (args: string[]) =>
      run('make', ['-C', work, ...variables, ...args], {
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
        purpose: `make ${args[0]}`,
      });
    await make(['tinyconfig']);
    await run(
      join(work, 'scripts/kconfig/merge_config.sh'),
      ['-m', '-O', work, join(work, '.config'), ...fragments],
      {
        cwd: work,
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
      },
    );
    await make(['olddefconfig']);
    await checkFragmentApplied(fragments, join(work, '.config'));
    await make([`-j${availableParallelism() + 1}`, target]);
    const release = (await make(['-s', 'kernelrelease'])).trim();
    await mkdir(join(work, 'out'));
    await rename(join(work, output), join(work, 'out', basename(output)));
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(work, 'out', 'release'), `${release}\n`);
    await rm(done, { recursive: true, force: true });
    await rename(join(work, 'out'), done);
    await sha256File(cached);
    return { vmlinuz: cached, release };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
