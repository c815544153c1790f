import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { HullError } from '../errors.js';
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

async function ensureSource(signal?: AbortSignal): Promise<string> {
  let tar = await sourceTarball();
  if (!tar) {
    await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', ...BUILD_PACKAGES], {
      signal,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: `installing ${SOURCE_PACKAGE} and the kernel build tools`,
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
export async function checkFragmentApplied(fragment: string, dotConfig: string): Promise<void> {
  const wanted = parseConfig(await readFile(fragment, 'utf8'));
  const got = parseConfig(await readFile(dotConfig, 'utf8'));
  const lost = [...wanted].filter(([k, v]) => (got.get(k) ?? 'n') !== v).map(([k, v]) => `${k}=${v}`);
  if (lost.length > 0) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `the kernel configuration dropped ${lost.join(', ')}: add what they depend on to ${fragment}`,
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

/** The cache key of a minimal kernel: the Debian source version and the config fragment. */
export async function minimalKernelKey(fragment: string, signal?: AbortSignal): Promise<string> {
  const policy = await run('apt-cache', ['policy', SOURCE_PACKAGE], { signal, errorCode: 'ERR_IMAGE_BUILD' });
  const version = /Installed:\s*(\S+)/.exec(policy)?.[1];
  const candidate = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  const source = version && version !== '(none)' ? version : candidate;
  if (!source || source === '(none)') {
    throw new HullError('ERR_IMAGE_BUILD', `${SOURCE_PACKAGE} is not available: run \`apt-get update\``);
  }
  const h = createHash('sha256').update(`${SOURCE_PACKAGE}=${source}\n${await readFile(fragment, 'utf8')}`);
  return h.digest('hex').slice(0, 16);
}

/**
 * Builds a small kernel with every driver the guest needs built in (no modules, so the
 * initramfs loads nothing): `make tinyconfig`, then the fragment kept in guest/image/kernel.
 * The result is cached by source version and fragment.
 */
export async function buildMinimalKernel(
  fragment: string,
  cacheDir: string,
  signal?: AbortSignal,
): Promise<{ vmlinuz: string; release: string }> {
  const tar = await ensureSource(signal);
  const key = await minimalKernelKey(fragment, signal);
  const done = join(cacheDir, key);
  const cached = join(done, 'bzImage');
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
    const make = (args: string[]) =>
      run('make', ['-C', work, ...args], {
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
        purpose: `make ${args[0]}`,
      });
    await make(['tinyconfig']);
    await run(
      join(work, 'scripts/kconfig/merge_config.sh'),
      ['-m', '-O', work, join(work, '.config'), fragment],
      {
        cwd: work,
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
      },
    );
    await make(['olddefconfig']);
    await checkFragmentApplied(fragment, join(work, '.config'));
    await make([`-j${availableParallelism() + 1}`, 'bzImage']);
    const release = (await make(['-s', 'kernelrelease'])).trim();
    await mkdir(join(work, 'out'));
    await rename(join(work, 'arch/x86/boot/bzImage'), join(work, 'out', 'bzImage'));
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
