import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { ProcessInput } from '../agent/client.js';
import { checkSettings } from '../config/settings.js';
import { HullError, isHullError } from '../errors.js';
import { logger } from '../log.js';
import { monitorNetns, NEW_NETNS_WRAPPER, networkSource } from '../network/namespace.js';
import { ownStdio } from '../sandbox/attached-process.js';
import { type Bundle, loadBundle } from '../sandbox/bundle.js';
import { claimContainerDir, removeContainerDir, removeContainerLeftovers } from '../sandbox/container-dir.js';
import { validateContainerId } from '../sandbox/container-id.js';
import { runHostHooks } from '../sandbox/hooks.js';
import { ContainerMonitor } from '../sandbox/monitor.js';
import { checkedPodOf, recordPod } from '../sandbox/pod-claim.js';
import { joinPod } from '../sandbox/pod-member.js';
import { containerDir } from '../sandbox/runtime.js';
import type { ContainerState } from '../sandbox/state.js';
import { askParent } from '../sys/detached-helper.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { writePidFile } from './pid-file.js';
import { forwardSignals } from './signals.js';
import { reportFailure, reportToParent, spawnHelper } from './spawn-helper.js';

interface MonitorOptions {
  bundle: string;
  consoleSocket?: string;
  /** The pod whose VM the container runs in (pod-claim.ts), when it is in one. */
  pod?: string;
  /** The directory the container's VM was paused to: resumed from it (see `_resume`). */
  resumeFrom?: string;
}

const HOOKS_QUESTION = 'createRuntime-hooks ';

function parseHookQuestion(question: string): ContainerState {
  if (!question.startsWith(HOOKS_QUESTION)) {
    throw new HullError('ERR_INTERNAL', `the monitor asked something unknown: ${question.slice(0, 80)}`);
  }
  return JSON.parse(question.slice(HOOKS_QUESTION.length)) as ContainerState;
}

export interface CreateOptions {
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
}

/**
 * `create`: checks the bundle, claims the ID, and starts the container's monitor, which boots
 * the VM and creates the container; returns once it is created (or has failed and left
 * nothing). `run --detach` is this and `start`.
 */
export async function createContainer(
  rawId: string,
  options: CreateOptions,
  globals: GlobalOptions,
): Promise<{ id: string; pid: number }> {
  checkSettings();
  const id = validateContainerId(rawId);
  const bundle = await loadBundle(options.bundle);
  const settings = settingsFrom(globals);
  const pod = await checkedPodOf(settings, bundle);
  if (bundle.spec.process?.terminal && !options.consoleSocket) {
    throw new HullError('ERR_CONFIG', 'process.terminal is true but no --console-socket was given: pass one');
  }
  const dir = await claimContainerDir(settings, id);
  try {
    if (pod) await recordPod(settings, id, pod.key);
    const consoleArgs = options.consoleSocket ? ['--console-socket', resolve(options.consoleSocket)] : [];
    const podArgs = pod ? ['--pod', pod.key] : [];
    const { pid } = await spawnHelper(
      globals,
      ['_monitor', '--bundle', bundle.dir, ...consoleArgs, ...podArgs, id],
      {
        keepStdio: !bundle.spec.process?.terminal,
        name: `the monitor of container ${id}`,
        // A network namespace the runtime makes is the monitor's own: hooks get its pid.
        wrapper: networkSource(bundle.spec).kind === 'new' ? NEW_NETNS_WRAPPER : undefined,
        // The monitor asks for its createRuntime hooks to be run here, in the caller's
        // namespaces, as runc runs them; the monitor may be in a network namespace of its own.
        onAsk: async (question) => {
          await runHostHooks(bundle.spec, 'createRuntime', parseHookQuestion(question));
          return 'done';
        },
      },
    );
    if (options.pidFile) await writePidFile(options.pidFile, pid);
    return { id, pid };
  } catch (err) {
    // A monitor that failed cleaned up after itself; one that was killed left its VM, its
    // cgroup and its share's mounts, which nothing could remove once the directory is gone.
    if (isHullError(err, 'ERR_PROCESS_LOST')) await removeContainerLeftovers(dir, id, bundle.spec);
    else await removeContainerDir(dir);
    throw err;
  }
}

export function registerCreate(program: Command): void {
  program
    .command('create')
    .description("boot the container's VM and create the container, without starting its process")
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the OCI bundle directory', '.')
    .option('--pid-file <file>', 'write the pid of the process that lives as long as the container')
    .option('--console-socket <path>', 'console socket for a terminal')
    .option('--no-pivot', 'accepted for runc compatibility; the guest always pivots')
    .option('--no-new-keyring', 'accepted for runc compatibility')
    .option('--preserve-fds <n>', 'accepted for runc compatibility')
    .action(async (rawId: string, options: CreateOptions, command: Command) => {
      await createContainer(rawId, options, command.optsWithGlobals<GlobalOptions>());
    });

  // The monitor `create` starts; not for users. It holds the caller's stdio.
  program
    .command('_monitor', { hidden: true })
    .argument('<container-id>')
    .requiredOption('--bundle <dir>')
    .option('--console-socket <path>')
    .option('--pod <key>')
    .option('--resume-from <dir>')
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

/** How a member monitor reaches its pod's VM: the pod's holder, started if none answers. */
export function podVmOf(globals: GlobalOptions, key: string, id: string, bundle: Bundle) {
  return (input: ProcessInput, signal: AbortSignal) =>
    joinPod(
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
}
