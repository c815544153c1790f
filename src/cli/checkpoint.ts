import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { checkpointRefusal } from '../snapshot/savable.js';
import { openContainer } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

/**
 * `checkpoint` as runc has it (podman `container checkpoint` calls it with these flags, and
 * first runs `checkpoint --help` to learn whether the runtime has the verb). CRIU's own
 * options (TCP, unix sockets, file locks, pre-dumps, cgroups) mean nothing to a VM, which is
 * saved whole; they are accepted so that a caller's command line parses.
 *
 * A container of the command line has its root on the 9p share, so its VM cannot be saved:
 * the verb says so in one line and leaves the container as it was, running.
 */
export function registerCheckpoint(program: Command): void {
  program
    .command('checkpoint')
    .description("save a running container's VM to disk (only for VMs whose root is on a disk)")
    .argument('<container-id>')
    .option('--image-path <dir>', 'where the checkpoint is written')
    .option('--work-path <dir>', 'where logs of the checkpoint go')
    .option('--parent-path <dir>', 'accepted for runc compatibility (pre-dumps)')
    .option('--leave-running', 'keep the container running after the checkpoint')
    .option('--tcp-established', 'accepted for runc compatibility')
    .option('--ext-unix-sk', 'accepted for runc compatibility')
    .option('--shell-job', 'accepted for runc compatibility')
    .option('--lazy-pages', 'accepted for runc compatibility')
    .option('--status-fd <fd>', 'accepted for runc compatibility')
    .option('--page-server <address>', 'accepted for runc compatibility')
    .option('--file-locks', 'accepted for runc compatibility')
    .option('--pre-dump', 'accepted for runc compatibility')
    .option('--manage-cgroups-mode <mode>', 'accepted for runc compatibility')
    .option('--empty-ns <namespace>', 'accepted for runc compatibility')
    .option('--auto-dedup', 'accepted for runc compatibility')
    .action(async (id: string, _options: unknown, command: Command) => {
      const ref = await openContainer(command.optsWithGlobals<GlobalOptions>(), id);
      if (ref.state.status !== 'running' && ref.state.status !== 'paused') {
        throw new HullError(
          'ERR_STATE',
          `container ${ref.id} is ${ref.state.status}: only a running container can be checkpointed`,
        );
      }
      // Every container the command line makes has its root on the share (see savable.ts).
      const refusal = checkpointRefusal(`container ${ref.id}`, 'share');
      if (refusal) throw refusal;
    });
}
