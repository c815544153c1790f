import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { DeviceDiscovery } from '../hypervisor/hypervisor.js';
import { run } from '../sys/exec.js';

export interface KernelSource {
  /** The Debian package that holds the kernel, e.g. linux-image-6.1.0-56-amd64. */
  packageName: string;
  packageVersion: string;
}

export interface ExtractedKernel {
  vmlinuz: string;
  /** The kernel's build configuration (boot/config-<release>). */
  config: string;
  /** lib/modules/<release>, holding kernel/… module files. */
  modulesDir: string;
  release: string;
}

/**
 * A kernel that cannot take virtio-mmio devices from its command line must be told about
 * them through ACPI; Debian's packaged kernel is one.
 */
export function deviceDiscoveryOf(kernelConfig: string): DeviceDiscovery {
  return /^CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y$/m.test(kernelConfig) ? 'cmdline' : 'acpi';
}

const APT_AS_ROOT = ['-o', 'APT::Sandbox::User=root'];

/** Resolves Debian's default kernel (the linux-image-amd64 metapackage) to a concrete package. */
export async function resolveDebianKernel(signal?: AbortSignal): Promise<KernelSource> {
  const depends = await run('apt-cache', ['depends', 'linux-image-amd64'], {
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: 'looking up the Debian kernel package (run `apt-get update` first)',
  });
  const packageName = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(depends)?.[1];
  if (!packageName) {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      'cannot find the kernel package linux-image-amd64 depends on; run `apt-get update`',
    );
  }
  const policy = await run('apt-cache', ['policy', packageName], { signal, errorCode: 'ERR_IMAGE_BUILD' });
  const packageVersion = /Candidate:\s*(\S+)/.exec(policy)?.[1];
  if (!packageVersion || packageVersion === '(none)') {
    throw new HullError(
      'ERR_IMAGE_BUILD',
      `${packageName} has no installable version; run \`apt-get update\``,
    );
  }
  return { packageName, packageVersion };
}

/**
 * Downloads the kernel .deb into `cacheDir` (once) and unpacks it under `workDir`. The kernel
 * is never installed on the host: only its vmlinuz and modules are taken.
 */
export async function extractDebianKernel(
  source: KernelSource,
  cacheDir: string,
  workDir: string,
  signal?: AbortSignal,
): Promise<ExtractedKernel> {
  await mkdir(cacheDir, { recursive: true });
  const debName = (await readdir(cacheDir)).find(
    (f) =>
      f.startsWith(`${source.packageName}_`) &&
      f.endsWith('.deb') &&
      f.includes(source.packageVersion.replace(/:/g, '%3a')),
  );
  let deb = debName ? join(cacheDir, debName) : undefined;
  if (!deb) {
    await run('apt-get', [...APT_AS_ROOT, 'download', `${source.packageName}=${source.packageVersion}`], {
      cwd: cacheDir,
      signal,
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: `downloading ${source.packageName}`,
    });
    const found = (await readdir(cacheDir)).find(
      (f) => f.startsWith(`${source.packageName}_`) && f.endsWith('.deb'),
    );
    if (!found)
      throw new HullError('ERR_IMAGE_BUILD', `apt-get download left no ${source.packageName} package`);
    deb = join(cacheDir, found);
  }
  const root = join(workDir, 'kernel');
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await run('dpkg-deb', ['-x', deb, root], {
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: 'unpacking the kernel',
  });
  const boot = await readdir(join(root, 'boot'));
  const vmlinuz = boot.find((f) => f.startsWith('vmlinuz-'));
  if (!vmlinuz) throw new HullError('ERR_IMAGE_BUILD', `${source.packageName} holds no vmlinuz`);
  const release = vmlinuz.slice('vmlinuz-'.length);
  return {
    vmlinuz: join(root, 'boot', vmlinuz),
    config: join(root, 'boot', `config-${release}`),
    modulesDir: join(root, 'lib', 'modules', release),
    release,
  };
}
