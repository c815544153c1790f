import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { asksRootOnDisks } from '../oci/rootfs-annotations.js';
import { monitorOf } from '../sandbox/state.js';
import { completeCheckpoint, requireCheckpointRoom } from '../snapshot/checkpoint-dir.js';
import { checkpointRefusal } from '../snapshot/savable.js';
import { bundleDisksIn } from '../storage/bundle-disks.js';
import { isAlive } from '../sys/process-identity.js';
import { type ContainerRef, withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

/** How long saving a VM may take (its RAM streamed to disk and hashed). */
const SAVE_TIMEOUT_MS = 300_000;
/** How long the monitor may take to end once its VM is saved and gone. */
const MONITOR_END_MS = 30_000;

interface CheckpointOptions {
  imagePath?: string;
  leaveRunning?: boolean;
}

/**
 * `checkpoint` as runc has it (podman `container checkpoint` calls it with these flags, and
 * first runs `checkpoint --help` to learn whether the runtime has the verb). CRIU's own
 * options (TCP, unix sockets, file locks, cgroups) mean nothing to a VM, which is saved whole;
 * they are accepted so that a caller's command line parses.
 *
 * A container whose root is on disks (`dev.hull.rootfs=disk`) has its VM saved into the image
 * path with its disks (snapshot/checkpoint-dir.ts), and then holds nothing: its VM and its
 * monitor end (the caller sees the container stop, as after a CRIU dump), and `restore` brings
 * it back with every process where it was. A container on the 9p share cannot be saved: the
 * verb says so in one line and leaves it running.
 */
export function registerCheckpoint(program: Command): void {
  program
    .command('checkpoint')
    .description("save a running container's VM to disk and stop it (a container whose root is on disks)")
    .argument('<container-id>')
    .option('--image-path <dir>', 'where the checkpoint is written')
    .option('--work-path <dir>', 'accepted for runc compatibility (where CRIU writes its logs)')
    .option('--parent-path <dir>', 'accepted for runc compatibility (pre-dumps)')
    .option('--leave-running', 'keep the container running after the checkpoint (not supported)')
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
    .action(async (id: string, options: CheckpointOptions & { preDump?: boolean }, command: Command) => {
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        if (ref.state.status !== 'running') {
          throw new HullError(
            'ERR_STATE',
            `container ${ref.id} is ${ref.state.status}: only a running container can be checkpointed`,
          );
        }
        const refusal = checkpointRefusal(
          `container ${ref.id}`,
          asksRootOnDisks(ref.state.annotations) ? 'disk' : 'share',
        );
        if (refusal) throw refusal;
        if (options.leaveRunning || options.preDump) {
          throw new HullError(
            'ERR_UNSUPPORTED',
            `container ${ref.id} was not checkpointed: hull checkpoints a container by saving its VM and ending it, so it cannot be left running or pre-dumped; checkpoint it, then restore it`,
          );
        }
        if (!options.imagePath) {
          throw new HullError(
            'ERR_USAGE',
            'checkpoint needs --image-path <dir>: where the checkpoint is written',
          );
        }
        await checkpoint(ref, resolve(options.imagePath));
      });
    });
}

/** Saves the VM into `dir`, waits for the monitor to end, then moves the disks beside it. */
async function checkpoint(ref: ContainerRef, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const disks = await bundleDisksIn(ref.dir);
  // What the disks' move needs is checked before the VM is saved and ended: the container
  // then runs on when it is missing.
  await requireCheckpointRoom(dir, disks);
  const signal = AbortSignal.timeout(SAVE_TIMEOUT_MS);
  // A failed save lets the VM run on (saved-vm.ts): the container is as it was.
  await withMonitor(ref, (monitor) => monitor.saveVm(dir, signal));
  const deadline = Date.now() + MONITOR_END_MS;
  while (isAlive(monitorOf(ref.state))) {
    if (Date.now() > deadline) {
      throw new HullError('ERR_STATE', `container ${ref.id} was saved, but its monitor did not end`);
    }
    await new Promise((done) => setTimeout(done, 20));
  }
  await completeCheckpoint(dir, ref.id, disks, signal);
}
