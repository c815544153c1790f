import type { Command } from 'commander';
import { setting } from '../config/settings.js';
import { HullError } from '../errors.js';
import { hostArch, requireArch } from '../hypervisor/arch.js';
import { QemuHypervisor } from '../hypervisor/qemu/qemu.js';
import { buildImage, type KernelKind } from '../image/build.js';
import { listImages } from '../image/manifest.js';
import { agentSnapshotFor, vmTargetFor } from '../sandbox/runtime.js';
import { formatTable, listFormat } from './output-format.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('build and inspect the guest image');
  image
    .command('build')
    .description(
      "build the guest kernel, initramfs and root filesystem (cached by their inputs), and the agent's startup snapshot for this host's guest CPU",
    )
    .option(
      '--kernel <kind>',
      'debian (the packaged kernel) or minimal (built from linux-source); default: image.kernel of the configuration, or debian',
    )
    .option('--arch <arch>', "guest architecture: x86_64 (amd64) or arm64 (aarch64); default: the host's")
    .option('--force', 'rebuild even if an image with the same inputs exists')
    .action(async (given: { kernel?: string; arch?: string; force?: boolean }) => {
      const arch = given.arch === undefined ? hostArch() : requireArch(given.arch, '--arch');
      const options = { ...given, kernel: given.kernel ?? setting('kernel') };
      if (options.kernel !== 'debian' && options.kernel !== 'minimal') {
        throw new HullError('ERR_USAGE', `unknown kernel kind ${options.kernel}: use debian or minimal`);
      }
      const { image: built } = await buildImage({
        kernel: options.kernel as KernelKind,
        arch,
        force: options.force,
      });
      const notice = (line: string) => process.stderr.write(`${line}\n`);
      const hypervisor = new QemuHypervisor(arch);
      const target = await vmTargetFor(built, hypervisor, notice);
      process.stderr.write(
        `guest image ${built.manifest.hash} (${arch}): kernel ${built.manifest.kernel.release}, ${target.accel} (${target.accelReason}), CPU model ${target.cpuModel}\n`,
      );
      const started = Date.now();
      const snapshot = await agentSnapshotFor(built, target, {
        hypervisor,
        signal: AbortSignal.timeout(600_000),
        retryFailed: true,
      });
      if (snapshot?.problem) notice(snapshot.problem);
      if (snapshot?.disk) {
        process.stderr.write(
          `agent startup snapshot for CPU model ${target.cpuModel}: ${snapshot.disk} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
        );
      }
    });
  image
    .command('list')
    .alias('ls')
    .description('list the built guest images, each with its architecture; * marks the current one of each')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = listFormat(options.format);
      const images = await listImages();
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify(images)}\n`);
        return;
      }
      const rows = [['IMAGE', 'ARCH', 'KERNEL', 'BUILT', 'CURRENT']];
      for (const i of images) rows.push([i.hash, i.arch, i.kernel, i.builtAt, i.current ? '*' : '']);
      process.stdout.write(formatTable(rows));
    });
}
