import { resolve } from 'node:path';
import type { Command } from 'commander';
import { checkSettings } from '../config/settings.js';
import { HullError, isHullError } from '../errors.js';
import { NEW_NETNS_WRAPPER, networkSource } from '../network/namespace.js';
import { loadBundle } from '../sandbox/bundle.js';
import { claimContainerDir, removeContainerDir, removeContainerLeftovers } from '../sandbox/container-dir.js';
import { validateContainerId } from '../sandbox/container-id.js';
import { placeCheckpointDisks, restorableCheckpoint } from '../snapshot/checkpoint-dir.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { writePidFile } from './pid-file.js';
import { spawnHelper } from './spawn-helper.js';

interface RestoreOptions {
  bundle: string;
  imagePath?: string;
  consoleSocket?: string;
  pidFile?: string;
}

/** How long the disks may take to be put back (a sparse copy of the writable disk). */
const PLACE_DISKS_TIMEOUT_MS = 300_000;

/**
 * `restore` as runc has it (conmon runs it for podman `container restore`, with `--detach`):
 * the container checkpointed into `--image-path` (see checkpoint.ts) is made again under its
 * ID, its disks put back and its VM resumed from the saved state by a new monitor, with every
 * process running where it was; returns once it runs. Like `create` it leaves, on success, a
 * monitor that lives as long as the container (its pid in `--pid-file`), and on failure
 * nothing: no directory, no VM, and the checkpoint as it was, so that it can be tried again.
 */
export function registerRestore(program: Command): void {
  program
    .command('restore')
    .description('restore a container from a checkpoint hull made (see checkpoint)')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the bundle of the container', '.')
    .option('--image-path <dir>', 'where the checkpoint is')
    .option('--work-path <dir>', 'accepted for runc compatibility (where CRIU writes its logs)')
    .option('--console-socket <path>', 'where the terminal is sent')
    .option('-d, --detach', 'return once the container runs (always so)')
    .option('--pid-file <file>', 'write the pid of the process that lives as long as the container')
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
    .action(async (rawId: string, options: RestoreOptions, command: Command) => {
      await restoreContainer(rawId, options, command.optsWithGlobals<GlobalOptions>());
    });
}

async function restoreContainer(
  rawId: string,
  options: RestoreOptions,
  globals: GlobalOptions,
): Promise<void> {
  checkSettings();
  const id = validateContainerId(rawId);
  if (!options.imagePath) {
    throw new HullError('ERR_USAGE', 'restore needs --image-path <dir>: the checkpoint to restore');
  }
  const imagePath = resolve(options.imagePath);
  const bundle = await loadBundle(options.bundle);
  const record = await restorableCheckpoint(imagePath, id, bundle.spec.annotations);
  if (bundle.spec.process?.terminal && !options.consoleSocket) {
    throw new HullError('ERR_CONFIG', 'process.terminal is true but no --console-socket was given: pass one');
  }
  const settings = settingsFrom(globals);
  const dir = await claimContainerDir(settings, id);
  try {
    await placeCheckpointDisks(imagePath, record, dir, AbortSignal.timeout(PLACE_DISKS_TIMEOUT_MS));
    const consoleArgs = options.consoleSocket ? ['--console-socket', resolve(options.consoleSocket)] : [];
    const { pid } = await spawnHelper(
      globals,
      ['_monitor', '--bundle', bundle.dir, ...consoleArgs, '--resume-from', imagePath, id],
      {
        keepStdio: !bundle.spec.process?.terminal,
        name: `the monitor of container ${id}`,
        wrapper: networkSource(bundle.spec).kind === 'new' ? NEW_NETNS_WRAPPER : undefined,
      },
    );
    if (options.pidFile) await writePidFile(options.pidFile, pid);
  } catch (err) {
    // As for create: a killed monitor may have left its VM; the checkpoint itself is untouched.
    if (isHullError(err, 'ERR_PROCESS_LOST')) await removeContainerLeftovers(dir, id, bundle.spec);
    else await removeContainerDir(dir);
    throw err;
  }
}
