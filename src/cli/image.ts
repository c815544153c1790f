import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { buildImage, type KernelKind } from '../image/build.js';
import { accelFor } from '../sandbox/runtime.js';

export function registerImage(program: Command): void {
  const image = program.command('image').description('build and inspect the guest image');
  image
    .command('build')
    .description('build the guest kernel, initramfs and root filesystem (cached by their inputs)')
    .option('--kernel <kind>', 'debian (the packaged kernel) or minimal (built from linux-source)', 'debian')
    .option('--force', 'rebuild even if an image with the same inputs exists')
    .action(async (options: { kernel: string; force?: boolean }) => {
      if (options.kernel !== 'debian' && options.kernel !== 'minimal') {
        throw new HullError('ERR_USAGE', `unknown kernel kind ${options.kernel}: use debian or minimal`);
      }
      const { image: built } = await buildImage({
        kernel: options.kernel as KernelKind,
        force: options.force,
      });
      const { accel, reason } = await accelFor(built);
      process.stderr.write(
        `guest image ${built.manifest.hash}: kernel ${built.manifest.kernel.release}, ${accel} (${reason})\n`,
      );
    });
}
