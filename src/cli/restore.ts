import type { Command } from 'commander';
import { validateContainerId } from '../sandbox/container-id.js';
import { restoreRefusal } from '../snapshot/savable.js';

/**
 * `restore` as runc has it (conmon runs it for podman `container restore`). No container of
 * the command line can have been checkpointed (see checkpoint.ts), so it refuses in one line
 * before anything is made: no state directory, no monitor, no VM.
 */
export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a container from a checkpoint (only for VMs whose root is on a disk)')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the bundle of the container')
    .option('--image-path <dir>', 'where the checkpoint is')
    .option('--work-path <dir>', 'where logs of the restore go')
    .option('--console-socket <path>', 'where the terminal is sent')
    .option('-d, --detach', 'detach from the container')
    .option('--pid-file <file>', 'where the pid is written')
    .option('--no-subreaper', 'accepted for runc compatibility')
    .option('--no-pivot', 'accepted for runc compatibility')
    .option('--tcp-established', 'accepted for runc compatibility')
    .option('--ext-unix-sk', 'accepted for runc compatibility')
    .option('--shell-job', 'accepted for runc compatibility')
    .option('--file-locks', 'accepted for runc compatibility')
    .option('--manage-cgroups-mode <mode>', 'accepted for runc compatibility')
    .option('--empty-ns <namespace>', 'accepted for runc compatibility')
    .option('--auto-dedup', 'accepted for runc compatibility')
    .option('--lazy-pages', 'accepted for runc compatibility')
    .option('--lsm-profile <profile>', 'accepted for runc compatibility')
    .option('--lsm-mount-context <context>', 'accepted for runc compatibility')
    .action(async (id: string) => {
      throw restoreRefusal(`container ${validateContainerId(id)}`);
    });
}
