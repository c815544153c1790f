import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { type Arch, archProfile, hostArch } from '../hypervisor/arch.js';
import type { DeviceDiscovery } from '../hypervisor/hypervisor.js';
import { agentBundlePath, guestImageSourceDir, imagesDir, installRoot, stateDir } from '../paths.js';
import { run, which } from '../sys/exec.js';
import { exists } from '../util/fs.js';
import { guestCrun } from './crun.js';
import { buildInitramfs } from './initramfs.js';
import { deviceDiscoveryOf, extractDebianKernel, type KernelSource, resolveDebianKernel } from './kernel.js';
import {
  type GuestImage,
  IMAGE_FILES,
  type ImageManifest,
  imageAt,
  markCurrent,
  sha256File,
} from './manifest.js';
import { buildMinimalKernel, minimalKernelFragments, minimalKernelKey } from './minimal-kernel.js';
import { modulesNamedBy, parseModuleList, resolveLoadOrder } from './modules.js';
import { Progress } from './progress.js';
import { buildRootfs } from './rootfs.js';
import { foreignNode, guestSysroot, type SysrootTools } from './sysroot.js';
import { extractVmlinux } from './vmlinux.js';
import { removeAbandoned, trailingPid } from './work-dirs.js';

/** Bumped when the builder itself changes what it makes from the same inputs. */
const BUILDER_VERSION = '8';

export type KernelKind = 'debian' | 'minimal';

export interface BuildOptions {
  kernel: KernelKind;
  /** The guest architecture; the host's when not given. */
  arch?: Arch;
  /** Rebuild even when an image with the same inputs exists. */
  force?: boolean;
  signal?: AbortSignal;
  out?: NodeJS.WriteStream;
}

interface HostTools {
  busybox: string;
  node: string;
  /** The guest's crun: built from the host's crun package's source (see crun.ts). */
  crun: string;
  /** iproute2's ip: the agent configures the guest's network cards with it. */
  ip: string;
  /** modprobe for the guest, and depmod to index its module tree. */
  kmod: string;
  depmod: string;
}

async function findHostTools(): Promise<Omit<HostTools, 'crun'>> {
  const busybox = (await which('busybox')) ?? '/bin/busybox';
  const ip = (await which('ip')) ?? ((await exists('/usr/sbin/ip')) ? '/usr/sbin/ip' : undefined);
  const kmod = await which('kmod');
  const depmod =
    (await which('depmod')) ?? ((await exists('/usr/sbin/depmod')) ? '/usr/sbin/depmod' : undefined);
  const missing = [
    (await exists(busybox)) ? undefined : 'busybox-static',
    ip ? undefined : 'iproute2',
    kmod && depmod ? undefined : 'kmod',
  ].filter(Boolean);
  if (missing.length > 0) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `the guest image needs ${missing.join(' and ')}: run \`apt-get install ${missing.join(' ')}\``,
    );
  }
  return { busybox, node: process.execPath, ip: ip!, kmod: kmod!, depmod: depmod! };
}

/**
 * The guest's tools for another architecture than the host's: Debian's packages for it,
 * unpacked (see sysroot.ts), and its official Node. depmod stays the host's: it only reads
 * module files.
 */
async function foreignTools(
  arch: Arch,
  host: Omit<HostTools, 'crun'>,
  { refresh, signal }: { refresh: boolean; signal?: AbortSignal },
): Promise<{ tools: HostTools; sysroot: SysrootTools }> {
  const cache = join(stateDir(), 'cache');
  const sysroot = await guestSysroot(arch, cache, { refresh, signal });
  const node = await foreignNode(arch, cache, signal);
  return {
    tools: { ...sysroot, node, depmod: host.depmod },
    sysroot,
  };
}

/** The Node-API headers the agent's addon compiles against (the node-api-headers package). */
function nodeApiHeaders(): string {
  return (createRequire(import.meta.url)('node-api-headers') as { include_dir: string }).include_dir;
}

/**
 * Builds the guest image (kernel, initramfs, root filesystem) unless one with the same inputs
 * is cached, and makes it the current one. Inputs are hashed: the kernel package or source,
 * every host binary copied in, the agent bundle and the guest's boot files.
 */
export async function buildImage(options: BuildOptions): Promise<{ image: GuestImage; cached: boolean }> {
  const { signal } = options;
  const progress = new Progress(6, options.out);
  const sources = guestImageSourceDir();
  const files = {
    init: join(sources, 'initramfs-init.sh'),
    hullInit: join(sources, 'hull-init.c'),
    hullTty: join(installRoot(), 'src', 'sys', 'tty', 'hull-tty.c'),
    hullWatch: join(sources, 'hull-watch.c'),
    hullSpawn: join(sources, 'hull-spawn.c'),
    guestSyscalls: join(installRoot(), 'guest', 'agent', 'native', 'guest-syscalls.c'),
    modules: join(sources, 'guest-modules.txt'),
    containerModules: join(sources, 'container-modules.txt'),
    kernelConfigs: join(sources, 'kernel'),
    agent: agentBundlePath(),
  };
  if (!(await exists(files.agent))) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `the agent bundle ${files.agent} is missing: run \`npm run build\``,
    );
  }

  progress.begin('checking inputs');
  const cache = join(stateDir(), 'cache');
  // What builds killed before (Ctrl-C, a closed terminal) left behind: hundreds of MiB each.
  for (const dir of [imagesDir(), cache, join(cache, 'kernels')]) await removeAbandoned(dir, trailingPid);
  const arch = options.arch ?? hostArch();
  const hostTools = await findHostTools();
  const foreign =
    arch === hostArch()
      ? undefined
      : await foreignTools(arch, hostTools, { refresh: options.force === true, signal });
  const tools = foreign?.tools ?? {
    ...hostTools,
    crun: await guestCrun(cache, {
      signal,
      refresh: options.force === true,
      onBuild: (line) => progress.info(line),
    }),
  };
  const fragments = minimalKernelFragments(files.kernelConfigs, arch);
  let kernelSource: KernelSource | undefined;
  let kernelId: string;
  if (options.kernel === 'minimal') {
    kernelId = `minimal:${await minimalKernelKey(fragments, arch, signal)}`;
  } else if (foreign) {
    kernelId = `debian:${archProfile(arch).kernelPackage}:${foreign.sysroot.kernel.release}`;
  } else {
    kernelSource = await resolveDebianKernel(signal);
    kernelId = `debian:${kernelSource.packageName}=${kernelSource.packageVersion}`;
  }
  const hash = createHash('sha256');
  // An x86_64 image's inputs are hashed as before there was a choice: its id is unchanged.
  hash.update(`builder ${BUILDER_VERSION}\n${arch === 'x86_64' ? '' : `arch ${arch}\n`}kernel ${kernelId}\n`);
  const inputFiles = [
    tools.busybox,
    tools.node,
    tools.crun,
    tools.ip,
    files.init,
    files.hullInit,
    files.hullTty,
    files.hullWatch,
    files.hullSpawn,
    files.guestSyscalls,
    files.modules,
    files.containerModules,
    tools.kmod,
    files.agent,
    ...(foreign && options.kernel === 'debian' ? [foreign.sysroot.kernel.vmlinuz] : []),
  ];
  for (const file of inputFiles) hash.update(`${file} ${await sha256File(file)}\n`);
  const id = hash.digest('hex').slice(0, 16);
  const dir = join(imagesDir(), id);
  const agentSha256 = await sha256File(files.agent);
  if (!options.force && (await exists(join(dir, 'manifest.json')))) {
    progress.end(`image ${id} is up to date`);
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ImageManifest;
    await markCurrent(id, arch);
    return { image: imageAt(dir, manifest), cached: true };
  }
  progress.end(`building image ${id}`);

  const work = join(imagesDir(), `.build-${id}-${process.pid}`);
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    let vmlinuz: string;
    let release: string;
    let modulesDir: string | undefined;
    let deviceDiscovery: DeviceDiscovery;
    if (options.kernel === 'minimal') {
      progress.begin(
        `kernel: building a minimal ${arch} kernel from linux-source (several minutes${foreign ? ', cross-compiled' : ''})`,
      );
      ({ vmlinuz, release } = await buildMinimalKernel(fragments, join(stateDir(), 'cache', 'kernels'), {
        arch,
        signal,
      }));
      // The fragment builds virtio-mmio command-line devices in and leaves ACPI out (arm64's
      // virt lists its devices in the device tree all the same).
      deviceDiscovery = 'cmdline';
      progress.end();
    } else if (foreign) {
      const kernel = foreign.sysroot.kernel;
      ({ vmlinuz, release, modulesDir } = kernel);
      deviceDiscovery = deviceDiscoveryOf(await readFile(kernel.config, 'utf8'));
    } else {
      progress.begin(`kernel: ${kernelSource!.packageName} ${kernelSource!.packageVersion}`);
      const kernel = await extractDebianKernel(
        kernelSource!,
        join(stateDir(), 'cache', 'debs'),
        work,
        signal,
      );
      ({ vmlinuz, release, modulesDir } = kernel);
      deviceDiscovery = deviceDiscoveryOf(await readFile(kernel.config, 'utf8'));
      progress.end();
    }

    progress.begin(
      'guest programs: compiling hull-init, hull-tty, hull-watch, hull-spawn and the agent addon',
    );
    const hullInit = join(work, 'hull-init');
    const hullTty = join(work, 'hull-tty');
    const hullWatch = join(work, 'hull-watch');
    const hullSpawn = join(work, 'hull-spawn');
    const guestSyscalls = join(work, 'guest-syscalls.node');
    const compile = [
      [files.hullInit, hullInit, ['-static']],
      [files.hullTty, hullTty, ['-static']],
      [files.hullWatch, hullWatch, ['-static']],
      [files.hullSpawn, hullSpawn, ['-static']],
      [
        files.guestSyscalls,
        guestSyscalls,
        // Bound now (-z now, read-only after): the agent loads the addon at its start, so a
        // template's clones find every symbol resolved instead of each looking up, at its first
        // call of each function, names in Node's symbol tables: pages of the root disk each
        // clone read into memory of its own. An idle cloned busybox `sleep`: pages of Node's
        // file it read 106 -> 56, its guest pages of its own 12.0 -> 11.75 MiB (3 each).
        [
          '-shared',
          '-fPIC',
          '-Wl,-z,now,-z,relro',
          '-DNODE_GYP_MODULE_NAME=guest_syscalls',
          `-I${nodeApiHeaders()}`,
        ],
      ],
    ] as const;
    const profile = archProfile(arch);
    const compiler = foreign ? profile.crossCompiler : 'cc';
    const compilerPackages = foreign ? profile.crossPackages.join(' and ') : 'gcc and libc6-dev';
    for (const [source, output, flags] of compile) {
      await run(compiler, [...flags, '-Os', '-Wall', '-o', output, source], {
        signal,
        errorCode: 'ERR_IMAGE_BUILD',
        purpose: `compiling ${output.split('/').pop()} (install ${compilerPackages})`,
      });
    }
    progress.end();

    progress.begin('initramfs: busybox and the boot drivers');
    const modules = modulesDir
      ? await resolveLoadOrder(modulesDir, parseModuleList(await readFile(files.modules, 'utf8')))
      : [];
    await buildInitramfs({
      stage: join(work, 'initramfs'),
      output: join(work, IMAGE_FILES.initrd),
      busybox: tools.busybox,
      initScript: files.init,
      modulesDir: modulesDir ?? '',
      modules,
      appletsListedBy: foreign ? hostTools.busybox : undefined,
      signal,
    });
    progress.end(`${modules.length} modules`);

    progress.begin('root filesystem: node, crun, ip, busybox, agent (erofs)');
    await buildRootfs({
      stage: join(work, 'rootfs'),
      output: join(work, IMAGE_FILES.rootfs),
      busybox: tools.busybox,
      node: tools.node,
      crun: tools.crun,
      ip: tools.ip,
      hullInit,
      hullTty,
      hullWatch,
      hullSpawn,
      guestSyscalls,
      agentBundle: files.agent,
      moduleTree: modulesDir
        ? {
            modulesDir,
            release,
            modules: await resolveLoadOrder(
              modulesDir,
              await modulesNamedBy(
                modulesDir,
                parseModuleList(await readFile(files.containerModules, 'utf8')),
              ),
            ),
            kmod: tools.kmod,
            depmod: tools.depmod,
            sysroot: foreign?.sysroot.root,
          }
        : undefined,
      foreign: foreign && { sysroot: foreign.sysroot.root, hostBusybox: hostTools.busybox },
      signal,
    });
    const size = (await stat(join(work, IMAGE_FILES.rootfs))).size;
    progress.end(`${(size / 2 ** 20).toFixed(0)} MiB`);

    progress.begin('finishing');
    // The uncompressed kernel when it can boot through PVH, else the bzImage as it is.
    if (!(await extractVmlinux(vmlinuz, join(work, IMAGE_FILES.kernel)))) {
      await copyFile(vmlinuz, join(work, IMAGE_FILES.kernel));
    }
    const manifest: ImageManifest = {
      hash: id,
      ...(arch === 'x86_64' ? {} : { arch }),
      kernel: { kind: options.kernel, release, source: kernelId, deviceDiscovery },
      agentSha256,
      builtAt: new Date().toISOString(),
    };
    await writeFile(join(work, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    await rm(join(work, 'kernel'), { recursive: true, force: true });
    await rm(join(work, 'initramfs'), { recursive: true, force: true });
    await rm(join(work, 'rootfs'), { recursive: true, force: true });
    await rm(hullInit, { force: true });
    await rm(hullTty, { force: true });
    await rm(hullWatch, { force: true });
    await rm(hullSpawn, { force: true });
    await rm(guestSyscalls, { force: true });
    await rm(dir, { recursive: true, force: true });
    await rename(work, dir);
    await markCurrent(id, arch);
    progress.end(`image ${id} ready in ${dir}`);
    return { image: imageAt(dir, manifest), cached: false };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
