import { rename, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { logger } from '../log.js';
import { loadBundle } from '../sandbox/bundle.js';
import { validateContainerId } from '../sandbox/container-id.js';
import { startSandbox } from '../sandbox/runtime.js';
import { relayInput, relayOutput } from '../sandbox/stdio-relay.js';
import { sleep } from '../util/deadline.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';

interface RunOptions {
  bundle: string;
  pidFile?: string;
  detach?: boolean;
  consoleSocket?: string;
}

/** Signals `hull run` passes on to the container's process, as runc does. */
const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
/** After the process exits, how long its output may still drain (a daemon may hold it open). */
const OUTPUT_DRAIN_MS = 3000;

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('create and run a container in its own VM, and wait for it to exit')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the OCI bundle directory', '.')
    .option('--pid-file <file>', 'write the pid of the process that waits for the container')
    .option('-d, --detach', 'detach from the container (not supported by run yet)')
    .option('--console-socket <path>', 'console socket for a terminal (not supported by run yet)')
    .option('--no-pivot', 'accepted for runc compatibility; the guest always pivots')
    .option('--no-new-keyring', 'accepted for runc compatibility')
    .option('--no-subreaper', 'accepted for runc compatibility')
    .action(async (id: string, options: RunOptions, command: Command) => {
      process.exitCode = await run(id, options, command.optsWithGlobals<GlobalOptions>());
    });
}

async function run(rawId: string, options: RunOptions, globals: GlobalOptions): Promise<number> {
  const log = logger('run');
  const id = validateContainerId(rawId);
  if (options.detach || options.consoleSocket) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      '`hull run` cannot detach or use a console socket yet: use `hull create` and `hull start`',
    );
  }
  const bundle = await loadBundle(options.bundle);
  if (bundle.spec.process?.terminal) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      'process.terminal is true but terminals are not supported yet: set it to false in config.json',
    );
  }
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  let forward: ((sig: NodeJS.Signals) => void) | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (forward) return forward(sig);
    received ??= sig;
    controller.abort(new HullError('ERR_ABORTED', `interrupted by ${sig} before the container started`));
  };
  for (const sig of FORWARDED) process.on(sig, onSignal);
  try {
    const sandbox = await startSandbox(id, settingsFrom(globals), {
      hostname: bundle.spec.hostname,
      signal: controller.signal,
    });
    try {
      const ref = { containerId: id };
      await sandbox.createContainer(id, bundle, controller.signal);
      if (options.pidFile) await writePidFile(options.pidFile, process.pid);
      const relays = new AbortController();
      const stdout = relayOutput(sandbox.agent, ref, 'stdout', process.stdout, relays.signal);
      const stderr = relayOutput(sandbox.agent, ref, 'stderr', process.stderr, relays.signal);
      const stopInput = relayInput(sandbox.agent, ref, process.stdin, relays.signal);
      forward = (sig) => {
        sandbox.agent
          .signalProcess(ref, constants.signals[sig], { signal: AbortSignal.timeout(5000) })
          .catch(() => {});
      };
      log.debug('container created');
      await sandbox.agent.startContainer(id, controller.signal);
      log.debug('container started');
      const exitStatus = await Promise.race([
        sandbox.agent.waitProcess(ref, relays.signal),
        sandbox.vm.exited.then(() => {
          throw new HullError('ERR_VM_EXITED', 'the VM stopped before the container exited');
        }),
      ]);
      log.debug({ exitStatus }, 'container exited');
      stopInput();
      const drained = new AbortController();
      await Promise.race([
        Promise.allSettled([stdout, stderr]),
        sleep(OUTPUT_DRAIN_MS, drained.signal).catch(() => {}),
      ]);
      drained.abort();
      relays.abort();
      return exitStatus;
    } finally {
      await sandbox.destroy();
      log.debug('sandbox destroyed');
    }
  } catch (err) {
    if (received) return 128 + constants.signals[received];
    throw err;
  } finally {
    for (const sig of FORWARDED) process.off(sig, onSignal);
    process.stdin.destroy();
  }
}

/** Pid files are written whole or not at all: callers may read them at any moment. */
export async function writePidFile(path: string, pid: number): Promise<void> {
  await writeFile(`${path}.tmp`, String(pid));
  await rename(`${path}.tmp`, path);
}
