import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ProcessRef } from '../agent/client.js';
import { HullError } from '../errors.js';
import type { Process, Spec } from '../oci/spec.js';
import { AttachedProcess, inputOf, ownStdio } from '../sandbox/attached-process.js';
import { forwardResizes, openTerminalFor } from '../sandbox/monitor.js';
import type { MonitorClient } from '../sandbox/monitor-client.js';
import { requireAllowed } from '../sandbox/state.js';
import { openContainer, withContainer, withMonitor } from './container-ref.js';
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
        requireAllowed(r.id, r.state.status, 'exec');
        return r;
      });
      const processSpec = await buildProcess(ref.state.bundle, args, options);
      if (processSpec.terminal && !options.consoleSocket) {
        throw new HullError('ERR_CONFIG', 'a terminal needs --console-socket: pass one, or drop --tty');
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
      process.exitCode = await withMonitor(ref, (monitor) =>
        runExec(monitor, { containerId: ref.id, execId }, processSpec, consoleSocket, async () => {
          if (options.pidFile) await writePidFile(options.pidFile, process.pid);
        }),
      );
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
        const ref = await openContainer(command.optsWithGlobals<GlobalOptions>(), id).catch(
          async (err: unknown) => {
            await reportFailure(err);
            throw err;
          },
        );
        process.exitCode = await withMonitor(ref, (monitor) =>
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
      },
    );
}

/** Starts the exec in the guest, relays this process's stdio to it, and returns its exit status. */
async function runExec(
  monitor: MonitorClient,
  ref: Required<ProcessRef>,
  spec: Process,
  consoleSocket: string | undefined,
  onStarted: () => Promise<void>,
): Promise<number> {
  const terminal = await openTerminalFor(spec, consoleSocket, AbortSignal.timeout(10_000));
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
  await onStarted();
  const exec = new AttachedProcess(monitor.agent, ref, stdio, new Promise(() => {}));
  const stopForwarding = forwardSignals(
    (signalNumber) =>
      void monitor.agent
        .signalProcess(ref, signalNumber, { signal: AbortSignal.timeout(5000) })
        .catch(() => {}),
  );
  try {
    const { status, outputLost } = await exec.exit;
    if (!outputLost) return status;
    process.stderr.write(`hull: the output of the exec was cut short: ${outputLost}\n`);
    return status || 1;
  } finally {
    await terminal?.close();
    stopForwarding();
    process.stdin.destroy();
  }
}

/** The exec's process: --process, or the command line over the container's own process settings. */
async function buildProcess(bundle: string, args: string[], options: ExecOptions): Promise<Process> {
  if (options.process) {
    try {
      return JSON.parse(await readFile(options.process, 'utf8')) as Process;
    } catch (err) {
      throw new HullError(
        'ERR_CONFIG',
        `cannot read the process ${options.process}: ${(err as Error).message}`,
      );
    }
  }
  if (args.length === 0) throw new HullError('ERR_USAGE', 'give a command to run, or --process FILE');
  const spec = JSON.parse(await readFile(join(bundle, 'config.json'), 'utf8').catch(() => '{}')) as Spec;
  const base = spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };
  const [uid, gid] = (options.user ?? '').split(':');
  return {
    ...base,
    terminal: Boolean(options.tty),
    args,
    cwd: options.cwd ?? base.cwd,
    env: [...(base.env ?? []), ...options.env],
    user: options.user ? { uid: Number(uid), gid: Number(gid ?? uid) } : base.user,
  };
}
