import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ProcessRef } from '../agent/client.js';
import { HullError } from '../errors.js';
import { INPUT_LIMITS } from '../oci/input-limits.js';
import { clip } from '../oci/shape.js';
import type { Process, Spec } from '../oci/spec.js';
import { checkProcessShape } from '../oci/spec-schema.js';
import { AttachedProcess, inputOf, ownStdio, type ProcessExit } from '../sandbox/attached-process.js';
import { readConfigJson } from '../sandbox/bundle.js';
import { forwardResizes, openTerminalFor } from '../sandbox/monitor.js';
import type { MonitorClient } from '../sandbox/monitor-client.js';
import { monitorOf, readState, requireAllowed } from '../sandbox/state.js';
import { waitUntilReparented } from '../sys/detached-helper.js';
import { isAlive } from '../sys/process-identity.js';
import { readRegularFile } from '../sys/regular-file.js';
import { sleep } from '../util/deadline.js';
import { type ContainerRef, openContainer, withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { writePidFile } from './pid-file.js';
import { forwardSignals } from './signals.js';
import { reportFailure, reportToParent, spawnHelper } from './spawn-helper.js';

interface ExecOptions {
  process?: string;
  detach?: boolean;
  pidFile?: string;
  tty?: boolean;
  consoleSocket?: string;
  cwd?: string;
  env: string[];
  user?: string;
  execId?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerExec(program: Command): void {
  program
    .command('exec')
    .description('run another process in a running container')
    .argument('<container-id>')
    .argument('[command...]', 'the command, unless --process names a process.json')
    .option('-p, --process <file>', 'a runtime-spec process as JSON')
    .option('-d, --detach', 'return at once; the pid file names a process that waits for it')
    .option('--pid-file <file>', 'write the pid of the process that waits for the exec')
    .option('-t, --tty', 'allocate a terminal')
    .option('--console-socket <path>', 'console socket for the terminal')
    .option('--cwd <dir>', 'working directory')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .passThroughOptions()
    .action(async (id: string, args: string[], options: ExecOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const ref = await withContainer(globals, id, async (r) => {
        requireAllowed(r.id, r.state.status, 'exec', r.state.vmLost);
        return r;
      });
      const processSpec = await buildProcess(ref.state.bundle, args, options);
      // Without a console socket, runc's foreground exec makes its own terminal the process's
      // (CRI-O runs an exec with a terminal so, on a pty of its own).
      if (processSpec.terminal && !options.consoleSocket && (options.detach || !process.stdin.isTTY)) {
        throw new HullError(
          'ERR_CONFIG',
          'a terminal needs --console-socket, or a terminal as stdin: pass one, or drop --tty',
        );
      }
      const consoleSocket = options.consoleSocket ? resolve(options.consoleSocket) : undefined;
      const execId = randomUUID();
      if (options.detach) {
        const consoleArgs = consoleSocket ? ['--console-socket', consoleSocket] : [];
        const { pid } = await spawnHelper(
          globals,
          ['_exec', ...consoleArgs, ref.id, execId, JSON.stringify(processSpec)],
          { keepStdio: !processSpec.terminal },
        );
        if (options.pidFile) await writePidFile(options.pidFile, pid);
        return;
      }
      const exit = await withMonitor(ref, (monitor) =>
        runExec(monitor, { containerId: ref.id, execId }, processSpec, consoleSocket, async () => {
          if (options.pidFile) await writePidFile(options.pidFile, process.pid);
        }),
      );
      if (exit.vmLost) await sayWhatWasLost(ref);
      process.exitCode = exit.status;
    });

  // The waiter of a detached exec; not for users. It holds the caller's stdio.
  program
    .command('_exec', { hidden: true })
    .argument('<container-id>')
    .argument('<exec-id>')
    .argument('<process-json>')
    .option('--console-socket <path>')
    .action(
      async (
        id: string,
        execId: string,
        processJson: string,
        options: { consoleSocket?: string },
        command: Command,
      ) => {
        const starterPid = process.ppid;
        const ref = await openContainer(command.optsWithGlobals<GlobalOptions>(), id).catch(
          async (err: unknown) => {
            await reportFailure(err);
            throw err;
          },
        );
        const exit = await withMonitor(ref, (monitor) =>
          runExec(
            monitor,
            { containerId: ref.id, execId },
            JSON.parse(processJson) as Process,
            options.consoleSocket,
            () => reportToParent(`ready ${process.pid}`),
          ),
        ).catch(async (err: unknown) => {
          await reportFailure(err);
          throw err;
        });
        if (exit.vmLost) await sayWhatWasLost(ref);
        process.exitCode = exit.status;
        // `hull exec --detach` exits as soon as it has written the pid file; end only after it.
        await waitUntilReparented(starterPid, AbortSignal.timeout(REPARENT_WAIT_MS));
      },
    );
}

/** How long an exec's waiter waits for the `hull exec --detach` that started it to exit. */
const REPARENT_WAIT_MS = 10_000;

/** How long the container's monitor gets to record why the VM under an exec ended. */
const LOSS_RECORD_WAIT_MS = 15_000;

/**
 * An exec whose exit was never seen (its channel through the monitor closed): says on stderr,
 * in one line, what died under it — the VM (its monitor records why) or the monitor itself.
 */
async function sayWhatWasLost(ref: ContainerRef): Promise<void> {
  const monitor = monitorOf(ref.state);
  const deadline = Date.now() + LOSS_RECORD_WAIT_MS;
  let line = `hull: the connection to the monitor of container ${ref.id} closed before the process's exit was seen`;
  for (;;) {
    // Checked before the state is read: the monitor records the VM's loss before it exits.
    const monitorAlive = isAlive(monitor);
    const state = await readState(ref.dir, ref.id).catch(() => undefined);
    if (state?.vmLost) {
      line = `hull: the VM of container ${ref.id} ended under it: ${state.vmLost}`;
      break;
    }
    if (!state) {
      line = `hull: container ${ref.id} was deleted under the process`;
      break;
    }
    if (!monitorAlive) {
      line = `hull: the monitor of container ${ref.id} (pid ${monitor.pid}) died under the process, and the container with it: \`hull delete ${ref.id}\` removes what is left`;
      break;
    }
    if (Date.now() > deadline) break;
    await sleep(100);
  }
  process.stderr.write(`${line}\n`);
}

/** Starts the exec in the guest, relays this process's stdio to it, and returns its exit. */
async function runExec(
  monitor: MonitorClient,
  ref: Required<ProcessRef>,
  spec: Process,
  consoleSocket: string | undefined,
  onStarted: () => Promise<void>,
): Promise<ProcessExit> {
  // A terminal and no console socket: this process's own terminal is the process's.
  const ownTerminal = Boolean(spec.terminal && !consoleSocket);
  const terminal = ownTerminal
    ? undefined
    : await openTerminalFor(spec, consoleSocket, AbortSignal.timeout(10_000));
  const stdio = terminal
    ? { stdin: terminal.input, stdout: terminal.output, stderr: terminal.output }
    : ownStdio();
  try {
    await monitor.agent.execProcess(ref, spec, inputOf(stdio), AbortSignal.timeout(60_000));
  } catch (err) {
    await terminal?.close();
    throw err;
  }
  if (terminal) forwardResizes(terminal, monitor.agent, ref);
  if (ownTerminal) followOwnTerminal(monitor, ref);
  await onStarted();
  const exec = new AttachedProcess(monitor.agent, ref, stdio, new Promise(() => {}));
  const stopForwarding = forwardSignals(
    (signalNumber) =>
      void monitor.agent
        .signalProcess(ref, signalNumber, { signal: AbortSignal.timeout(5000) })
        .catch(() => {}),
  );
  try {
    const exit = await exec.exit;
    if (!exit.outputLost) return exit;
    process.stderr.write(`hull: the output of the exec was cut short: ${exit.outputLost}\n`);
    return { ...exit, status: exit.status || 1 };
  } finally {
    await terminal?.close();
    if (ownTerminal && process.stdin.isTTY) process.stdin.setRawMode(false);
    stopForwarding();
    process.stdin.destroy();
  }
}

/** Passes this process's terminal through raw, and its size and size changes, to the guest's. */
function followOwnTerminal(monitor: MonitorClient, ref: Required<ProcessRef>): void {
  if (process.stdin.isTTY) process.stdin.setRawMode(true);
  const send = () => {
    const { rows, columns } = process.stdout;
    if (!rows || !columns) return;
    monitor.agent.resizeTerminal(ref, rows, columns, AbortSignal.timeout(10_000)).catch(() => {});
  };
  send();
  process.stdout.on('resize', send);
}

/**
 * The exec's process: --process, or the command line over the container's own process
 * settings; either is checked as config.json's process is, before the guest sees it.
 */
async function buildProcess(bundle: string, args: string[], options: ExecOptions): Promise<Process> {
  if (options.process) {
    const parsed = parseJson(await readRegularFile(resolve(options.process), PROCESS_FILE), options.process);
    checkProcessShape(parsed, options.process);
    return parsed;
  }
  if (args.length === 0) throw new HullError('ERR_USAGE', 'give a command to run, or --process FILE');
  const configPath = join(bundle, 'config.json');
  const spec = (await readConfigJson(configPath)) as Spec;
  const base = spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };
  if (options.user !== undefined && !/^\d+(:\d+)?$/.test(options.user)) {
    throw new HullError('ERR_USAGE', `--user ${clip(options.user)}: give a numeric uid[:gid]`);
  }
  const [uid, gid] = (options.user ?? '').split(':');
  const built = {
    ...base,
    terminal: Boolean(options.tty),
    args,
    cwd: options.cwd ?? base.cwd,
    env: [...(base.env ?? []), ...options.env],
    user: options.user ? { uid: Number(uid), gid: Number(gid ?? uid) } : base.user,
  };
  checkProcessShape(built, "hull exec (its options over the container's process)");
  return built;
}

const PROCESS_FILE = {
  maxBytes: INPUT_LIMITS.processBytes,
  why: 'a process spec is far smaller',
  code: 'ERR_CONFIG',
  missing: 'does not exist: name a runtime-spec process JSON file',
} as const;

function parseJson(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HullError('ERR_CONFIG', `${file} is not valid JSON: ${clip((err as Error).message, 200)}`);
  }
}
