import type { Command } from 'commander';
import type { ProcessInput } from '../agent/client.js';
import { isHullError } from '../errors.js';
import { logger } from '../log.js';
import { monitorNetns } from '../network/namespace.js';
import { ownStdio } from '../sandbox/attached-process.js';
import { type Bundle, loadBundle } from '../sandbox/bundle.js';
import { containerDir } from '../sandbox/container-id.js';
import { ContainerMonitor } from '../sandbox/monitor.js';
import { askParent } from '../sys/detached-helper.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { HOOKS_QUESTION } from './hooks-question.js';
import { forwardSignals } from './signals.js';
import { reportFailure, reportToParent, spawnHelper } from './spawn-helper.js';

interface MonitorOptions {
  bundle: string;
  consoleSocket?: string;
  /** The pod whose VM the container runs in (pod-claim.ts), when it is in one. */
  pod?: string;
  /** The directory the container's VM was paused to: resumed from it (see `_resume`). */
  resumeFrom?: string;
  /** Nothing runs between the create and the start (`hull serve`'s sandboxes): one guest step. */
  startAtCreate?: boolean;
  /** A snapshot this container is a fork of (see `create --fork-from`). */
  forkFrom?: string;
  /** Its parent's cards' MAC addresses, comma-separated. */
  cardMacs?: string;
}

/**
 * The monitor `create` starts (`_monitor`); not for users. It holds the caller's stdio. A file
 * apart from create.ts, so that `create` itself does not load the monitor's modules.
 */
export function registerMonitorHelper(program: Command): void {
  program
    .command('_monitor', { hidden: true })
    .argument('<container-id>')
    .requiredOption('--bundle <dir>')
    .option('--console-socket <path>')
    .option('--pod <key>')
    .option('--resume-from <dir>')
    .option('--start-at-create')
    .option('--fork-from <dir>')
    .option('--card-macs <list>')
    .action(async (id: string, options: MonitorOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const settings = settingsFrom(globals);
      const creator = process.ppid;
      let monitor: ContainerMonitor;
      try {
        const bundle = await loadBundle(options.bundle);
        const dir = containerDir(settings, id);
        monitor = await ContainerMonitor.create(
          {
            id,
            dir,
            bundle,
            settings,
            stdio: ownStdio(),
            consoleSocket: options.consoleSocket,
            netns: monitorNetns(bundle.spec),
            createRuntimeHooks: (state) =>
              askParent(`${HOOKS_QUESTION}${JSON.stringify(state)}`).then(() => {}),
            podVm: options.pod ? podVmOf(globals, options.pod, id, bundle) : undefined,
            resumeFrom: options.resumeFrom,
            startAtCreate: options.startAtCreate === true,
            forkFrom: options.forkFrom
              ? { dir: options.forkFrom, cardMacs: (options.cardMacs ?? '').split(',').filter(Boolean) }
              : undefined,
          },
          AbortSignal.timeout(300_000),
        );
        await monitor.serve();
      } catch (err) {
        await reportFailure(err);
        process.exitCode = isHullError(err) ? 1 : 2;
        return;
      }
      if (process.ppid !== creator) {
        // The `create` that asked for this container died while its VM booted: no one will
        // start it, so it stops now, and reads as stopped until `delete` removes it.
        logger('monitor').error({ creator }, 'the create command died before the container was created');
        void monitor.sandbox.release();
        process.exitCode = await monitor.waitExit();
        return;
      }
      forwardSignals((signalNumber) => void monitor.kill(signalNumber, false).catch(() => {}));
      await reportToParent(`ready ${process.pid}`);
      process.exitCode = await monitor.waitExit();
    });
}

/**
 * How a member monitor reaches its pod's VM: the pod's holder, started if none answers. The pod's
 * modules (its protocol's descriptors among them) are loaded only here, so that the monitor of a
 * container with a VM of its own never holds them.
 */
export function podVmOf(globals: GlobalOptions, key: string, id: string, bundle: Bundle) {
  return async (input: ProcessInput, signal: AbortSignal) => {
    const { joinPod } = await import('../sandbox/pod-member.js');
    return joinPod(
      {
        root: settingsFrom(globals).root,
        key,
        id,
        bundle,
        input,
        startHolder: async () => {
          await spawnHelper(globals, ['_podvm', '--bundle', bundle.dir, key], {
            keepStdio: false,
            name: `the VM holder of pod ${key}`,
          });
        },
      },
      signal,
    );
  };
}
