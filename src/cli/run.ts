import { writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import type { Command } from 'commander';
import { checkSettings } from '../config/settings.js';
import { HullError, isHullError } from '../errors.js';
import { configuredNetns } from '../network/namespace.js';
import { ownStdio } from '../sandbox/attached-process.js';
import { loadBundle } from '../sandbox/bundle.js';
import { claimContainerDir, removeContainerDir } from '../sandbox/container-dir.js';
import { validateContainerId } from '../sandbox/container-id.js';
import { runHostHooks } from '../sandbox/hooks.js';
import { ContainerMonitor } from '../sandbox/monitor.js';
import { checkedPodOf, recordPod } from '../sandbox/pod-claim.js';
import { hostNowMs } from '../trace/boot-marks.js';
import { BootTraceRecorder, traceFile } from '../trace/boot-trace.js';
import { withContainer, withMonitor } from './container-ref.js';
import { createContainer } from './create.js';
import { stopMonitor } from './delete.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { podVmOf } from './monitor-helper.js';
import { writePidFile } from './pid-file.js';
import { forwardSignals } from './signals.js';

interface RunOptions {
  bundle: string;
  trace?: string;
  pidFile?: string;
  detach?: boolean;
  consoleSocket?: string;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('create and run a container in its own VM, and wait for it to exit')
    .argument('<container-id>')
    .option('-b, --bundle <dir>', 'the OCI bundle directory', '.')
    .option('--pid-file <file>', 'write the pid of the process that waits for the container')
    .option('-d, --detach', 'create and start the container, then return while it runs')
    .option('--console-socket <path>', 'console socket for a terminal')
    .option('--trace <file>', "write the run's phases, host and guest, as Chrome trace-event JSON")
    .option('--no-pivot', 'accepted for runc compatibility; the guest always pivots')
    .option('--no-new-keyring', 'accepted for runc compatibility')
    .option('--no-subreaper', 'accepted for runc compatibility')
    .action(async (id: string, options: RunOptions, command: Command) => {
      process.exitCode = await run(id, options, command.optsWithGlobals<GlobalOptions>());
    });
}

function stderrNotice(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * `run --detach`, as `runc run -d`: create (the monitor keeps this command's stdio, as it
 * keeps conmon's), then start, and return 0 while the container runs on. A start that fails
 * leaves no container behind.
 */
async function runDetached(rawId: string, options: RunOptions, globals: GlobalOptions): Promise<number> {
  const { id } = await createContainer(rawId, options, globals);
  try {
    await withContainer(globals, id, (ref) =>
      withMonitor(ref, (monitor) => monitor.start(AbortSignal.timeout(60_000))),
    );
  } catch (err) {
    await withContainer(globals, id, async (ref) => {
      await stopMonitor(ref);
      await removeContainerDir(ref.dir);
    }).catch(() => {});
    throw err;
  }
  return 0;
}

/** create + start + wait in one process, which is also the container's monitor. */
async function run(rawId: string, options: RunOptions, globals: GlobalOptions): Promise<number> {
  if (options.detach) return runDetached(rawId, options, globals);
  if (!options.trace) return runAttached(rawId, options, globals);
  const recorder = new BootTraceRecorder(performance.timeOrigin);
  try {
    return await runAttached(rawId, options, globals);
  } finally {
    recorder.stop();
    const trace = traceFile(recorder.phases(hostNowMs()), undefined, recorder.guestSteps());
    await writeFile(options.trace, `${JSON.stringify(trace, null, 1)}\n`);
  }
}

async function runAttached(rawId: string, options: RunOptions, globals: GlobalOptions): Promise<number> {
  checkSettings();
  const id = validateContainerId(rawId);
  const bundle = await loadBundle(options.bundle);
  // `hull run` holds the user's terminal: its notices (TCG, the agent snapshot) show there.
  const settings = { ...settingsFrom(globals), notice: stderrNotice };
  const pod = await checkedPodOf(settings, bundle);
  const dir = await claimContainerDir(settings, id);
  if (pod) {
    await recordPod(settings, id, pod.key).catch(async (err: unknown) => {
      await removeContainerDir(dir);
      throw err;
    });
  }
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  let monitor: ContainerMonitor | undefined;
  const stopForwarding = forwardSignals((signalNumber, name) => {
    if (monitor) {
      monitor.kill(signalNumber, false).catch(() => {});
      return;
    }
    received ??= name;
    controller.abort(new HullError('ERR_ABORTED', `interrupted by ${name} before the container started`));
  });
  try {
    const created = await ContainerMonitor.create(
      {
        id,
        dir,
        bundle,
        settings,
        stdio: ownStdio(),
        consoleSocket: options.consoleSocket,
        // `hull run` is the container's process on the host and stays in the caller's network
        // namespace: only a namespace named by path gives its VM a network.
        netns: configuredNetns(bundle.spec),
        createRuntimeHooks: (state) => runHostHooks(bundle.spec, 'createRuntime', state),
        podVm: pod ? podVmOf(globals, pod.key, id, bundle) : undefined,
        // Nothing runs between this create and its start (the poststart hooks come after).
        startAtCreate: true,
      },
      controller.signal,
    );
    monitor = created;
    await created.serve();
    if (options.pidFile) await writePidFile(options.pidFile, process.pid);
    const startFailure = await created.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    if (startFailure) {
      // A guest that died while the start was being answered (a container crashing its
      // kernel at once) ends as any lost VM does: its own one line, and 137.
      if (await created.vmEndedByItself(AbortSignal.timeout(3000))) return await created.waitExit();
      await created.kill(constants.signals.SIGKILL, true).catch(() => {});
      throw startFailure;
    }
    const exitStatus = await created.waitExit();
    await runHostHooks(bundle.spec, 'poststop', { ...created.state(), status: 'stopped' });
    return exitStatus;
  } catch (err) {
    if (monitor) await monitor.waitExit();
    if (received) return 128 + constants.signals[received];
    if (!monitor && !pod && isHullError(err, 'ERR_VM_EXITED')) {
      // The process, started with its create, took its VM down (see startAtCreate): as for
      // any VM lost under a running container, its one line and 137.
      process.stderr.write(`hull: ${err.message}\n`);
      return 128 + constants.signals.SIGKILL;
    }
    throw err;
  } finally {
    stopForwarding();
    process.stdin.destroy();
    await removeContainerDir(dir);
  }
}
