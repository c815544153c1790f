import { resolve } from 'node:path';
import type { Command } from 'commander';
import { checkSettings } from '../config/settings.js';
import { HullError } from '../errors.js';
import { NEW_NETNS_WRAPPER, networkSource } from '../network/namespace.js';
import { loadBundle } from '../sandbox/bundle.js';
import { containerDir, validateContainerId } from '../sandbox/container-id.js';
import { effectiveState, readState } from '../sandbox/state.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { spawnHelper } from './spawn-helper.js';

/**
 * `_resume` (not for users; `hull serve` runs it): a container whose VM was paused to disk
 * (the Monitor API's SaveVm) gets a monitor again, which resumes the VM from the saved
 * directory and takes up the container running in it. Returns once the container runs; a
 * refused or failed resume leaves the container stopped and the saved state where it was.
 */
export function registerResumeSaved(program: Command): void {
  program
    .command('_resume', { hidden: true })
    .argument('<container-id>')
    .requiredOption('--bundle <dir>')
    .requiredOption('--saved <dir>')
    .action(async (rawId: string, options: { bundle: string; saved: string }, command: Command) => {
      checkSettings();
      const globals = command.optsWithGlobals<GlobalOptions>();
      const id = validateContainerId(rawId);
      const bundle = await loadBundle(options.bundle);
      const state = await readState(containerDir(settingsFrom(globals), id), id);
      if (effectiveState(state).status !== 'stopped') {
        throw new HullError(
          'ERR_STATE',
          `container ${id} is ${state.status}: only a container paused to disk is resumed`,
        );
      }
      await spawnHelper(
        globals,
        ['_monitor', '--bundle', bundle.dir, '--resume-from', resolve(options.saved), id],
        {
          keepStdio: true,
          name: `the monitor of container ${id}`,
          wrapper: networkSource(bundle.spec).kind === 'new' ? NEW_NETNS_WRAPPER : undefined,
        },
      );
    });
}
