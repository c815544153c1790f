import { createHash } from 'node:crypto';
import {
  chmod,
  chown,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { run, which } from '../sys/exec.js';
import { exists } from '../util/fs.js';
import { DEBIAN_SUITE } from './sysroot.js';
import { removeAbandoned } from './work-dirs.js';

/**
 * The guest's crun, built from Debian's source package of the crun the host has installed:
 * the same upstream release with Debian's patches, configured without systemd and linked
 * static-pie against Debian's libseccomp, libcap, yajl and glibc.
 *
 * Why not Debian's binary: it loads ten shared libraries at every command (libsystemd, and
 * the compression and crypto libraries libsystemd loads), and a VM cloned from a template
 * translates every page of code it runs anew, the dynamic loader's included. The guest has
 * no systemd (its cgroups are crun's cgroupfs), so that code is never used there. Built
 * static, a clone's `crun run` took 335 ms against 385 (six traced runs each).
 *
 * The source comes through apt, configured apart from the host's apt (its lists, cache and
 * settings are its own; the host's are neither read nor changed): apt checks the source
 * against the archive's signed index, and dpkg-source against the .dsc, before anything is
 * built.
 */

const ARCHIVE_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';
const SOURCE_LISTS = [
  `http://deb.debian.org/debian ${DEBIAN_SUITE} main`,
  `http://deb.debian.org/debian ${DEBIAN_SUITE}-updates main`,
  `http://deb.debian.org/debian-security ${DEBIAN_SUITE}-security main`,
];

const CONFIGURE_ARGS = [
  // The guest has no systemd; libsystemd is most of what crun loaded.
  '--disable-systemd',
  // A container's checkpoint is its VM's saved state, never CRIU's.
  '--disable-criu',
  // No handler or seccomp-notify libraries are opened at run time.
  '--disable-dl',
  '--disable-shared',
  // As Debian's build, which has no libgcrypt: it would only name crun's seccomp cache files.
  'ac_cv_search_gcry_check_version=no',
  // Debian's hardening flags for crun (dpkg-buildflags, hardening=+all) and two more of gcc's.
  'CFLAGS=-O2 -fstack-protector-strong -fstack-clash-protection -fcf-protection -Wformat -Werror=format-security',
  'CPPFLAGS=-D_FORTIFY_SOURCE=2',
];
/** PIE, so the static program keeps address-space randomisation; RELRO and bind-now as Debian's. */
const LINK_FLAGS = '-static-pie -Wl,-z,relro -Wl,-z,now';

/**
 * The Debian packages whose files end up in the program (the statically linked libraries and
 * the compiler): a new version of any of them builds crun again, so their fixes reach the guest.
 */
const LINKED_PACKAGES = ['crun', 'libc6-dev', 'libseccomp-dev', 'libcap-dev', 'libyajl-dev', 'gcc'];

/** What building crun needs on the host: a file that shows it, and the package that has it. */
const BUILD_NEEDS: [path: string, pkg: string][] = [
  ['/usr/include/seccomp.h', 'libseccomp-dev'],
  ['/usr/include/sys/capability.h', 'libcap-dev'],
  ['/usr/include/yajl/yajl_tree.h', 'libyajl-dev'],
  ['/usr/bin/dpkg-source', 'dpkg-dev'],
  ['/usr/bin/make', 'make'],
  ['/usr/bin/strip', 'binutils'],
  [ARCHIVE_KEYRING, 'debian-archive-keyring'],
];

/** The build sees this environment only: nothing of the caller's (CC, LDFLAGS, MAKEFLAGS...). */
const BUILD_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' };

/** The packages missing for building the guest's crun, by name. */
export async function crunBuildNeeds(): Promise<string[]> {
  const missing: string[] = [];
  for (const [path, pkg] of BUILD_NEEDS) if (!(await exists(path))) missing.push(pkg);
  if (!(await which('cc'))) missing.push('gcc');
  return missing;
}

/** An installed package's version, or undefined when it is not installed. */
async function installedVersion(pkg: string, signal?: AbortSignal): Promise<string | undefined> {
  // dpkg-query's field names, not placeholders of this file's.
  const format = ['$', '{db:Status-Abbrev}$', '{Version}'].join('');
  try {
    const out = await run('dpkg-query', ['--show', `--showformat=${format}`, pkg], { signal });
    return out.startsWith('ii ') ? out.slice(3).trim() : undefined;
  } catch (err) {
    signal?.throwIfAborted();
    if (await which('dpkg-query')) return undefined;
    throw err;
  }
}

/**
 * Where the crun for these inputs is kept: the host crun's version (the source), the versions
 * of what is linked into it, and the recipe.
 */
async function cacheKey(
  sourceVersion: string | undefined,
  signal?: AbortSignal,
): Promise<{ version: string; key: string }> {
  const versions = await Promise.all(LINKED_PACKAGES.map((pkg) => installedVersion(pkg, signal)));
  versions[0] = sourceVersion ?? versions[0];
  const version = versions[0];
  if (!version) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      "the guest's crun is built from the source of the host's crun package, which is not installed: run `apt-get install crun`",
    );
  }
  const hash = createHash('sha256');
  LINKED_PACKAGES.forEach((pkg, i) => {
    hash.update(`${pkg} ${versions[i] ?? 'none'}\n`);
  });
  hash.update(`${CONFIGURE_ARGS.join('\n')}\n${LINK_FLAGS}\n`);
  // Debian versions never hold `_`: the epoch's `:` made one cannot meet another version.
  return { version, key: `crun-${version.replace(/:/g, '_')}-${hash.digest('hex').slice(0, 12)}` };
}

/**
 * The path of the guest's crun for the host's architecture, built (about half a minute) when
 * no crun of the same inputs is kept under `cacheDir`, or when `refresh` asks.
 */
export async function guestCrun(
  cacheDir: string,
  options: {
    signal?: AbortSignal;
    refresh?: boolean;
    onBuild?: (line: string) => void;
    /** The version of Debian's crun source to build; the host's crun package's by default. */
    sourceVersion?: string;
  } = {},
): Promise<string> {
  const { signal } = options;
  const missing = await crunBuildNeeds();
  if (missing.length > 0) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `building the guest's crun needs ${missing.join(', ')}: run \`apt-get install ${missing.join(' ')}\``,
    );
  }
  const { version, key } = await cacheKey(options.sourceVersion, signal);
  const done = join(cacheDir, key);
  const kept = join(done, 'crun');
  if (!options.refresh && (await exists(kept))) return kept;
  options.onBuild?.(`building the guest's crun from Debian's source of crun ${version} (once)`);
  const built = await buildCrun(version, signal);
  try {
    // Into place by a rename in the cache's own directory: a build beside this one (another
    // `hull image build`) never sees a half-copied file, and the first one there is kept.
    await mkdir(done, { recursive: true });
    if (options.refresh || !(await exists(kept))) {
      const copy = `${kept}.tmp-${process.pid}`;
      await copyFile(built.file, copy);
      await rename(copy, kept);
    }
    return kept;
  } finally {
    await built.remove();
  }
}

/** Builds crun `version` in a directory of its own; the caller removes it. */
async function buildCrun(
  version: string,
  signal?: AbortSignal,
): Promise<{ file: string; remove: () => Promise<void> }> {
  // Under the temporary directory, which apt's own unprivileged user can enter (hull's state
  // cannot): apt downloads as that user, not as root.
  await removeAbandoned(tmpdir(), (name) => Number(/^hull-crun-(\d+)-/.exec(name)?.[1]) || undefined);
  const work = await mkdtemp(join(tmpdir(), `hull-crun-${process.pid}-`));
  const remove = () => rm(work, { recursive: true, force: true, maxRetries: 3 });
  try {
    const tree = await fetchSource(work, version, signal);
    await compile(tree, work, signal);
    const file = join(work, 'crun');
    await run('strip', ['-o', file, join(tree, 'crun')], {
      signal,
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: "stripping the guest's crun",
    });
    return { file, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}

/** apt's user (Debian's `_apt`), which downloads for apt when apt runs as root. */
async function aptUser(): Promise<number | undefined> {
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  const entry = passwd.split('\n').find((line) => line.startsWith('_apt:'));
  const uid = Number(entry?.split(':')[2]);
  return Number.isInteger(uid) ? uid : undefined;
}

/** apt's whole configuration for the download: the host's apt.conf and apt.conf.d are not read. */
function aptConfig(apt: string): string {
  const settings: [string, string][] = [
    ['Dir::Etc::Main', join(apt, 'empty.conf')],
    ['Dir::Etc::Parts', join(apt, 'parts')],
    ['Dir::Etc::SourceList', join(apt, 'sources.list')],
    ['Dir::Etc::SourceParts', join(apt, 'parts')],
    ['Dir::State::Lists', join(apt, 'lists')],
    ['Dir::Cache', join(apt, 'cache')],
    ['Acquire::AllowInsecureRepositories', 'false'],
    ['Acquire::AllowDowngradeToInsecureRepositories', 'false'],
    ['APT::Get::AllowUnauthenticated', 'false'],
  ];
  return settings.map(([name, value]) => `${name} "${value}";\n`).join('');
}

/** Downloads crun's source package `version` through apt and unpacks it, patched; returns its tree. */
async function fetchSource(work: string, version: string, signal?: AbortSignal): Promise<string> {
  const apt = join(work, 'apt');
  const download = join(work, 'download');
  for (const dir of ['lists/partial', 'cache/archives/partial', 'parts'])
    await mkdir(join(apt, dir), { recursive: true });
  await mkdir(download);
  await chmod(work, 0o755);
  const uid = await aptUser();
  if (uid !== undefined) await chown(download, uid, 0);
  await writeFile(join(apt, 'empty.conf'), '');
  await writeFile(
    join(apt, 'sources.list'),
    SOURCE_LISTS.map((line) => `deb-src [signed-by=${ARCHIVE_KEYRING}] ${line}\n`).join(''),
  );
  await writeFile(join(apt, 'apt.conf'), aptConfig(apt));
  const aptGet = (args: string[], purpose: string) =>
    run('apt-get', ['-q', ...args], {
      cwd: download,
      signal,
      env: { ...BUILD_ENV, APT_CONFIG: join(apt, 'apt.conf'), DEBIAN_FRONTEND: 'noninteractive' },
      errorCode: 'ERR_IMAGE_BUILD',
      purpose,
    });
  // An index that cannot be fetched fails here, not as a version the archive seems to lack.
  await aptGet(
    ['--error-on=any', 'update'],
    "reading Debian's source index for crun (is deb.debian.org reachable?)",
  );
  await aptGet(
    ['source', '--download-only', `crun=${version}`],
    `downloading the source of the host's crun ${version} (if Debian has a newer one, run \`apt-get update && apt-get install crun\` and build again)`,
  );
  const dsc = (await readdir(download)).find((f) => f.endsWith('.dsc'));
  if (!dsc) throw new HullError('ERR_IMAGE_BUILD', `apt downloaded no .dsc for crun ${version}`);
  const tree = join(work, 'source');
  await run('dpkg-source', ['--extract', join(download, dsc), tree], {
    cwd: work,
    signal,
    env: BUILD_ENV,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: `unpacking crun ${version}'s source`,
  });
  return tree;
}

/** Configures and builds the crun program in `tree`. */
async function compile(tree: string, work: string, signal?: AbortSignal): Promise<void> {
  const step = (file: string, args: string[], purpose: string) =>
    run(file, args, { cwd: tree, signal, env: BUILD_ENV, errorCode: 'ERR_IMAGE_BUILD', purpose });
  const multiarch = (await step('cc', ['-print-multiarch'], 'asking the C compiler for its target')).trim();
  // Debian's static yajl is libyajl_s.a: under the name the linker looks for with -lyajl.
  const libs = join(work, 'static-libs');
  await mkdir(libs);
  await symlink(join('/usr/lib', multiarch, 'libyajl_s.a'), join(libs, 'libyajl.a'));
  const jobs = `-j${availableParallelism()}`;
  await step('./configure', CONFIGURE_ARGS, "configuring the guest's crun");
  // The program's own rule does not name the header it includes from the tree's version.
  await step('make', [jobs, 'git-version.h'], "building the guest's crun");
  await step('make', [jobs, 'crun', `LDFLAGS=-L${libs} ${LINK_FLAGS}`], "building the guest's crun");
}
