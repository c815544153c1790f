import { spawn } from 'node:child_process';
import { closeSync, constants, createWriteStream, open, openSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { Socket } from 'node:net';
import { dirname } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { HullError } from '../errors.js';
import type { HostStdio } from '../sandbox/attached-process.js';
import { raceSignal } from '../util/deadline.js';
import { fifosDrained } from './fifo-drain.js';

/** How long input may still arrive after CloseIO before the process's stdin is closed. */
const INPUT_GRACE_MS = 1000;

/** A task's stdio as containerd names it (Create and Exec requests). */
export interface TaskIo {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export type IoTarget =
  | { kind: 'none' }
  | { kind: 'fifo'; path: string }
  | { kind: 'file'; path: string }
  | { kind: 'binary'; path: string; args: string[] };

/**
 * Reads one of containerd's stdio strings: empty is none, a plain path or `fifo://` a FIFO
 * the client made, `file:///p` a file to append to, `binary:///p?k=v` a logging program.
 */
export function parseIoTarget(value: string): IoTarget {
  if (!value) return { kind: 'none' };
  if (value.startsWith('/')) return { kind: 'fifo', path: value };
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new HullError(
      'ERR_CONFIG',
      `stdio ${value} is neither a path nor a URI: pass a FIFO path or a file:// URI`,
    );
  }
  const path = decodeURIComponent(url.pathname);
  switch (url.protocol) {
    case 'fifo:':
      return { kind: 'fifo', path };
    case 'file:':
      return { kind: 'file', path };
    case 'binary:': {
      const args: string[] = [];
      for (const [key, val] of url.searchParams) {
        args.push(key);
        if (val) args.push(val);
      }
      return { kind: 'binary', path, args };
    }
    default:
      throw new HullError(
        'ERR_CONFIG',
        `stdio scheme ${url.protocol} is not supported: use a FIFO path, file:// or binary://`,
      );
  }
}

/** A task's stdio opened on the host, for AttachedProcess; `close` releases it all. */
export interface OpenedIo {
  stdio: HostStdio;
  /**
   * For a stdin FIFO: CloseIO, the client's input is complete. What it wrote is still passed
   * on, then the stream ends and the process's stdin is closed.
   */
  endInput?: () => void;
  /**
   * Resolves once the client has read all that is still in the output FIFOs (bounded, see
   * fifosDrained), or the IO is closed: a process's exit is reported after it.
   */
  outputRead(): Promise<void>;
  close(): void;
}

/**
 * Opens a task's stdio. Output FIFOs are opened read-write, which never blocks and never
 * fails with EPIPE while the client is away (containerd restarting). The stdin FIFO ends when
 * the client closes it or sends CloseIO. With a terminal there is one output stream: stdout.
 */
export async function openTaskIo(
  io: TaskIo,
  context: { containerId: string; namespace: string },
  signal: AbortSignal,
): Promise<OpenedIo> {
  const opened: (Readable | Writable)[] = [];
  const fifos: OutputFifo[] = [];
  const closing = new AbortController();
  const stdio: HostStdio = {};
  let endInput: (() => void) | undefined;
  let closeInput: (() => void) | undefined;
  const close = () => {
    closing.abort();
    closeInput?.();
    for (const stream of opened) stream.destroy();
  };
  const outputRead = () =>
    fifosDrained(
      fifos.filter((f) => !f.socket.destroyed && f.socket.bytesWritten > 0).map((f) => f.fd),
      closing.signal,
    );
  const openOutput = async (target: { kind: 'fifo' | 'file'; path: string }): Promise<Writable> => {
    if (target.kind === 'file') return openOutputFile(target.path);
    const fifo = openOutputFifo(target.path);
    fifos.push(fifo);
    return fifo.socket;
  };
  try {
    const stdin = parseIoTarget(io.stdin);
    if (stdin.kind === 'fifo') {
      const input = openInputFifo(stdin.path);
      stdio.stdin = track(opened, input.stream);
      endInput = input.end;
      closeInput = input.close;
    } else if (stdin.kind !== 'none') throw new HullError('ERR_CONFIG', `stdin ${io.stdin} must be a FIFO`);
    const stdout = parseIoTarget(io.stdout);
    const stderr = io.terminal ? ({ kind: 'none' } as const) : parseIoTarget(io.stderr);
    if (stdout.kind === 'binary' || stderr.kind === 'binary') {
      const logger = stdout.kind === 'binary' ? stdout : (stderr as Extract<IoTarget, { kind: 'binary' }>);
      const pipes = await startLogger(logger, context, signal);
      opened.push(pipes.stdout, pipes.stderr);
      if (stdout.kind === 'binary') stdio.stdout = pipes.stdout;
      if (stderr.kind === 'binary') stdio.stderr = pipes.stderr;
    }
    if (stdout.kind === 'fifo' || stdout.kind === 'file')
      stdio.stdout = track(opened, await openOutput(stdout));
    if (stderr.kind === 'fifo' || stderr.kind === 'file') {
      stdio.stderr =
        stderr.kind === 'file' && stdout.kind === 'file' && stderr.path === stdout.path
          ? stdio.stdout
          : track(opened, await openOutput(stderr));
    }
    return { stdio, endInput, outputRead, close };
  } catch (err) {
    close();
    throw err;
  }
}

function track<T extends Readable | Writable>(list: (Readable | Writable)[], stream: T): T {
  list.push(stream);
  stream.on('error', () => {});
  return stream;
}

/** An output FIFO's write end: the stream, and its fd for asking how much is unread. */
interface OutputFifo {
  socket: Socket;
  fd: number;
}

function openOutputFifo(path: string): OutputFifo {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  } catch (err) {
    throw new HullError('ERR_CONFIG', `cannot open the stdio FIFO ${path}: ${(err as Error).message}`);
  }
  return { socket: new Socket({ fd, readable: false, writable: true }), fd };
}

/**
 * The stdin FIFO, read as the client writes it. The open blocks (on a libuv worker) until the
 * client opens its end: a non-blocking read before that would see end of file at once. The
 * stream ends when the client closes its end, or a moment after CloseIO (endInput).
 */
function openInputFifo(path: string): { stream: PassThrough; end: () => void; close: () => void } {
  const stream = new PassThrough();
  let socket: Socket | undefined;
  let closed = false;
  open(path, constants.O_RDONLY, (err, fd) => {
    if (err || closed) {
      if (!err) closeSync(fd);
      stream.end();
      return;
    }
    socket = new Socket({ fd, readable: true, writable: false });
    socket.on('error', () => stream.end());
    socket.pipe(stream);
  });
  return {
    stream,
    end: () => {
      // What the client wrote before CloseIO may still be in the pipe: let it through first.
      setTimeout(() => {
        socket?.unpipe(stream);
        if (!stream.writableEnded) stream.end();
      }, INPUT_GRACE_MS).unref();
    },
    close: () => {
      closed = true;
      if (!socket) {
        // The open still waits for a client that never came: a writer of our own releases it.
        try {
          closeSync(openSync(path, constants.O_WRONLY | constants.O_NONBLOCK));
        } catch {}
      }
      socket?.destroy();
      stream.destroy();
    },
  };
}

async function openOutputFile(path: string): Promise<Writable> {
  await mkdir(dirname(path), { recursive: true });
  const file = createWriteStream(path, { flags: 'a' });
  await new Promise<void>((resolve, reject) => {
    file.once('open', () => resolve());
    file.once('error', (err) =>
      reject(new HullError('ERR_CONFIG', `cannot open the log file ${path}: ${err.message}`)),
    );
  });
  return file;
}

/**
 * Starts a logging program the way containerd's shims do: the container's stdout on its fd 3,
 * stderr on fd 4, and fd 5 a pipe it closes (or writes to) once it is ready to read.
 */
async function startLogger(
  target: { path: string; args: string[] },
  context: { containerId: string; namespace: string },
  signal: AbortSignal,
): Promise<{ stdout: Writable; stderr: Writable }> {
  const child = spawn(target.path, target.args, {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe', 'pipe', 'pipe'],
    env: { CONTAINER_ID: context.containerId, CONTAINER_NAMESPACE: context.namespace },
    detached: true,
  });
  child.unref();
  const pipes = child.stdio as unknown as (Readable & Writable)[];
  const [stdout, stderr, ready] = [pipes[3]!, pipes[4]!, pipes[5]!];
  const failed = new Promise<never>((_, reject) => {
    child.once('error', (err) =>
      reject(new HullError('ERR_CONFIG', `cannot start the logging program ${target.path}: ${err.message}`)),
    );
    child.once('exit', (code) =>
      reject(
        new HullError(
          'ERR_CONFIG',
          `the logging program ${target.path} exited (${code}) before it was ready`,
        ),
      ),
    );
  });
  failed.catch(() => {});
  const isReady = new Promise<void>((resolve) => {
    ready.once('data', () => resolve());
    ready.once('end', () => resolve());
    ready.once('close', () => resolve());
    ready.resume();
  });
  try {
    await raceSignal(Promise.race([isReady, failed]), signal);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  ready.destroy();
  return { stdout, stderr };
}
