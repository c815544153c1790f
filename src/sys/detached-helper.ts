import { spawn } from 'node:child_process';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { type ErrorCode, HullError, messageOf } from '../errors.js';
import { onLines } from '../util/lines.js';
import { HELPER_CHANNEL_ENV } from './inherited-fds.js';

export interface HelperOptions {
  keepStdio: boolean;
  /**
   * Without keepStdio: a file the helper's stdout and stderr go to (its stdin is /dev/null),
   * as a caller that lives on apart from the helper keeps a helper's output (`hull serve`).
   */
  outputFd?: number;
  /** Variables set in the helper's environment on top of this process's. */
  env?: Record<string, string>;
  /** What the helper is, for the line said when it dies before it is ready ("the monitor of …"). */
  name?: string;
  cwd?: string;
  timeoutMs?: number;
  /** A program the helper runs under, which execs it (`unshare --net --`): its pid stays the helper's. */
  wrapper?: string[];
  /** Node's own options (V8 flags) for the helper, given before its script. */
  nodeOptions?: readonly string[];
  /**
   * Answers a question the helper asks before it is ready ("ask …" lines): what it needs done
   * by its parent, in the parent's context. The answer goes back as one line; a throw ends
   * the helper with "stop MESSAGE" and fails the spawn with the error.
   */
  onAsk?: (question: string) => Promise<string>;
}

/**
 * Starts a long-lived helper (this same program with `args`: a container monitor, an exec's
 * waiter, the containerd shim's server) as a detached child. It talks on fd 3 in lines: any
 * number of "ask QUESTION" (answered by onAsk), then one "ready DETAIL" or "error MESSAGE";
 * this returns once it is ready, and the helper then lives on alone. With `keepStdio` it keeps
 * this process's stdin, stdout and stderr; otherwise none.
 */
export async function spawnDetachedHelper(
  args: string[],
  options: HelperOptions,
): Promise<{ pid: number; detail: string }> {
  const [program, ...wrapperArgs] = [...(options.wrapper ?? []), process.execPath];
  const child = spawn(program!, [...wrapperArgs, ...(options.nodeOptions ?? []), process.argv[1]!, ...args], {
    stdio: options.keepStdio
      ? ['inherit', 'inherit', 'inherit', 'pipe']
      : options.outputFd !== undefined
        ? ['ignore', options.outputFd, options.outputFd, 'pipe']
        : ['ignore', 'ignore', 'ignore', 'pipe'],
    cwd: options.cwd,
    env: { ...process.env, ...options.env, [HELPER_CHANNEL_ENV]: '3' },
    detached: true,
  });
  const channel = child.stdio[3] as Socket;
  const exited = new Promise<string>((resolve) =>
    child.on('exit', (code, signal) =>
      resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`),
    ),
  );
  let askFailure: unknown;
  const final = await new Promise<string | undefined>((resolve) => {
    const timer = options.timeoutMs ? setTimeout(() => resolve(undefined), options.timeoutMs) : undefined;
    const done = (line: string) => {
      clearTimeout(timer);
      resolve(line);
    };
    onLines(channel, (line) => {
      if (!line.startsWith('ask ')) return done(line);
      const answer = options.onAsk
        ? options.onAsk(line.slice(4))
        : Promise.reject(new HullError('ERR_INTERNAL', `the helper asked what no one answers: ${line}`));
      answer.then(
        (text) => channel.write(`answer ${text}\n`),
        (err: unknown) => {
          askFailure = err;
          channel.write(`stop ${String((err as Error).message ?? err)}\n`);
        },
      );
    });
    channel.on('error', () => done(''));
    channel.on('close', () => done(''));
    child.on('error', () => done(''));
  });
  if (final?.startsWith('ready')) {
    child.unref();
    channel.destroy();
    return { pid: child.pid!, detail: final.slice('ready'.length).trim() };
  }
  if (final === undefined) {
    child.kill('SIGKILL');
    throw new HullError('ERR_INTERNAL', `the helper did not report within ${options.timeoutMs! / 1000}s`);
  }
  const how = await exited;
  if (askFailure) throw askFailure;
  if (!final.startsWith('error ')) {
    throw new HullError(
      'ERR_PROCESS_LOST',
      `${options.name ?? 'the helper'} (pid ${child.pid}) ${how} before it was ready`,
    );
  }
  // "error CODE message" keeps the helper's error code (see reportFailure).
  const coded = /^error (ERR_[A-Z_]+) (.*)$/s.exec(final);
  if (coded) throw new HullError(coded[1] as ErrorCode, coded[2]!);
  throw new HullError('ERR_INTERNAL', final.slice('error '.length));
}

let parentChannel: Socket | undefined;
let parentLines: AsyncIterator<string> | undefined;

/** fd 3, both ways: lines to the parent, and its answers read line by line. */
function channelToParent(): Socket {
  if (!parentChannel) {
    parentChannel = new Socket({ fd: 3, readable: true, writable: true });
    parentChannel.on('error', () => {});
    parentLines = createInterface({ input: parentChannel })[Symbol.asyncIterator]();
  }
  return parentChannel;
}

/**
 * The helper's side of a question (see HelperOptions.onAsk): the parent's answer, or an error
 * with the parent's reason when it said stop (or went away).
 */
export async function askParent(question: string): Promise<string> {
  const channel = channelToParent();
  channel.write(`ask ${question}\n`);
  const reply = await parentLines!.next();
  if (!reply.done && reply.value.startsWith('answer ')) return reply.value.slice(7);
  throw new HullError('ERR_ABORTED', reply.done ? 'the parent went away' : reply.value.replace(/^stop /, ''));
}

/** The helper's side of a failure: its message, and its code for the parent to keep. */
export function reportFailure(err: unknown): Promise<void> {
  const code = err instanceof HullError ? err.code : 'ERR_INTERNAL';
  return reportToParent(`error ${code} ${messageOf(err)}`);
}

/** The helper's side: say "ready …" or "error …" once on fd 3, then close it. */
export async function reportToParent(line: string): Promise<void> {
  await new Promise<void>((resolve) => {
    try {
      const channel = channelToParent();
      channel.end(`${line}\n`, () => {
        channel.destroy();
        resolve();
      });
    } catch {
      resolve();
    }
  });
}

/**
 * The helper's side, before it ends: waits (bounded) until the process that started it has
 * exited and this one has a new parent. A caller such as conmon reads the helper's pid from
 * the pid file and waits for it as a subreaper; a helper that ended while its starter still
 * ran would be reaped by the starter's own child handling, and its exit never seen by the
 * caller (conmon then records -1, which podman reports as exit status 255).
 */
export async function waitUntilReparented(starterPid: number, signal: AbortSignal): Promise<void> {
  while (process.ppid === starterPid && !signal.aborted) {
    await new Promise((resolve) => setTimeout(resolve, REPARENT_POLL_MS));
  }
}

const REPARENT_POLL_MS = 5;
