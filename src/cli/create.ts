import { resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { checkSettings } from '../config/settings.js';
import { HullError, isHullError } from '../errors.js';
import { NEW_NETNS_WRAPPER, networkSource } from '../network/namespace.js';
import { loadBundle } from '../sandbox/bundle.js';
import { claimContainerDir, removeContainerDir, removeContainerLeftovers } from '../sandbox/container-dir.js';
import { validateContainerId } from '../sandbox/container-id.js';
import { runHostHooks } from '../sandbox/hooks.js';
import { checkedPodOf, recordPod } from '../sandbox/pod-claim.js';
import type { ContainerState } from '../sandbox/state.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { HOOKS_QUESTION } from './hooks-question.js';
import { writePidFile } from './pid-file.js';
import { spawnHelper } from './spawn-helper.js';

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
  /**
   * Not for users (`hull serve` forks): the container is a fork of the snapshot in this
   * directory, running at once (see snapshot/fork-source.ts); `cardMacs` are its parent's.
   */
  forkFrom?: string;
  cardMacs?: string;
}

/** What a caller of createContainer in its own process (`hull serve`) may ask beyond the verb's flags. */
export interface CreateExtras {
  /** The container's process is started with its create, in one guest step (see `startAtCreate`). */
  startAtCreate?: boolean;
  /** The monitor's stdout and stderr go to this file instead of the caller's stdio. */
  outputFd?: number;
  /** Settings for the monitor's environment (HULL_VCPUS, HULL_MEMORY_MIB). */
  env?: Record<string, string>;
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
  extras: CreateExtras = {},
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
    const forkArgs = options.forkFrom
      ? ['--fork-from', resolve(options.forkFrom), '--card-macs', options.cardMacs ?? '']
      : [];
    const { pid } = await spawnHelper(
      globals,
      [
        '_monitor',
        '--bundle',
        bundle.dir,
        ...consoleArgs,
        ...podArgs,
        ...forkArgs,
        ...(extras.startAtCreate ? ['--start-at-create'] : []),
        id,
      ],
      {
        keepStdio: !bundle.spec.process?.terminal && extras.outputFd === undefined,
        outputFd: extras.outputFd,
        env: extras.env,
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
    .addOption(new Option('--fork-from <dir>').hideHelp())
    .addOption(new Option('--card-macs <list>').hideHelp())
    .action(async (rawId: string, options: CreateOptions, command: Command) => {
      await createContainer(rawId, options, command.optsWithGlobals<GlobalOptions>());
    });
}
