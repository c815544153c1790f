import type { Command } from 'commander';
import { isHullError } from '../errors.js';
import { logger } from '../log.js';
import { loadBundle } from '../sandbox/bundle.js';
import { PodVm } from '../sandbox/pod-vm.js';
import { leaveCallerCgroups } from '../sys/cgroup.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { reportFailure, reportToParent } from './spawn-helper.js';

/** How long the pod's VM may take to boot. */
const START_TIMEOUT_MS = 300_000;

/**
 * `_podvm`: the holder of a pod's VM (sandbox/pod-vm.ts), started by the monitor of the pod's
 * first container; not for users. Ready once the VM answers and its socket listens; it ends
 * when the last container is removed, or on SIGTERM/SIGINT, stopping the VM.
 */
export function registerPodVm(program: Command): void {
  program
    .command('_podvm', { hidden: true })
    .argument('<pod-key>')
    .requiredOption('--bundle <dir>', "the bundle of the pod's first container, which sizes the VM")
    .action(async (key: string, options: { bundle: string }, command: Command) => {
      const settings = settingsFrom(command.optsWithGlobals<GlobalOptions>());
      let pod: PodVm;
      try {
        const bundle = await loadBundle(options.bundle);
        await leaveCallerCgroups();
        pod = await PodVm.start({ key, settings, bundle }, AbortSignal.timeout(START_TIMEOUT_MS));
      } catch (err) {
        await reportFailure(err);
        process.exitCode = isHullError(err) ? 1 : 2;
        return;
      }
      for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
        process.once(signal, () => {
          logger('pod').warn({ signal }, "stopping the pod's VM on a signal");
          void pod.stop();
        });
      }
      await reportToParent(`ready ${process.pid}`);
      await pod.done;
      // The last member's removal is answered before the VM's end lets this process go.
      setTimeout(() => process.exit(0), 200);
    });
}
