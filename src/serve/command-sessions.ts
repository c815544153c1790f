import { randomUUID } from 'node:crypto';
import { constants } from 'node:os';
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { HullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import {
  type CommandClientMessage,
  type CommandExitMessage,
  STREAM_STDERR,
  STREAM_STDOUT,
  type StartCommandRequest,
} from './api-types.js';
import { execInSandbox, type GuestProcess } from './guest-process.js';
import type { SandboxRecord } from './sandbox-records.js';
import { mergeEnv, sandboxProcess } from './sandbox-spec.js';

/** Output held for a stream not (yet) attached; past this the guest process waits. */
const MAX_QUEUED_BYTES = 8 * 1024 * 1024;
/** How long a finished command's output waits for a stream to come and read it. */
const UNCLAIMED_MS = 10 * 60_000;
/** How long a foreground command waits for its stream before it is killed (its client is gone). */
const ATTACH_WAIT_MS = 60_000;

const log = logger('serve');

type Frame = Buffer;

/**
 * One command: its output, in the order written, framed for the stream (first byte the stream
 * number), queued until a stream is attached and then sent as it comes, so that nothing
 * written between the start and the stream, or just before the exit, is lost. The guest
 * process waits when the queue is full or the stream is slow.
 */
class CommandSession {
  readonly id = randomUUID();
  process?: GuestProcess;
  stdin?: PassThrough;
  private readonly queue: Frame[] = [];
  private queuedBytes = 0;
  private readonly waiting: (() => void)[] = [];
  private consumer?: WebSocket;
  attachedOnce = false;
  private flushing = false;
  private exitMessage?: CommandExitMessage;
  timedOut = false;

  constructor(
    readonly sandboxId: string,
    readonly background: boolean,
    private readonly forget: () => void,
  ) {}

  output(stream: typeof STREAM_STDOUT | typeof STREAM_STDERR): Writable {
    return new Writable({
      highWaterMark: 256 * 1024,
      write: (chunk: Buffer, _encoding, callback) =>
        this.push(Buffer.concat([Buffer.of(stream), chunk]), callback),
    });
  }

  finish(exitCode: number): void {
    this.exitMessage = { type: 'exit', exitCode, ...(this.timedOut ? { timedOut: true } : {}) };
    this.pump();
    setTimeout(() => {
      if (!this.consumer) this.forget();
    }, UNCLAIMED_MS).unref();
  }

  attach(ws: WebSocket): void {
    if (this.consumer) {
      ws.close(4409, 'another stream is attached to this command');
      return;
    }
    this.consumer = ws;
    this.attachedOnce = true;
    ws.on('message', (data: Buffer, isBinary: boolean) => this.fromClient(data, isBinary));
    ws.on('close', () => {
      if (this.consumer !== ws) return;
      this.consumer = undefined;
      // A foreground command lives as long as its stream.
      if (!this.exitMessage && !this.background) void this.process?.kill(constants.signals.SIGKILL);
    });
    this.pump();
  }

  private push(frame: Frame, callback: () => void): void {
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (this.queuedBytes < MAX_QUEUED_BYTES) callback();
    else this.waiting.push(callback);
    this.pump();
  }

  /** Sends what is queued, in order, each frame once the last has been written; then the exit. */
  private pump(): void {
    if (this.flushing || !this.consumer) return;
    const ws = this.consumer;
    const frame = this.queue.shift();
    if (frame) {
      this.flushing = true;
      ws.send(frame, { binary: true }, (err) => {
        this.flushing = false;
        this.queuedBytes -= frame.length;
        if (this.queuedBytes < MAX_QUEUED_BYTES) for (const release of this.waiting.splice(0)) release();
        if (err) return;
        this.pump();
      });
      return;
    }
    if (this.exitMessage) {
      this.flushing = true;
      ws.send(JSON.stringify(this.exitMessage), () => {
        ws.close(1000, 'exited');
        this.forget();
      });
    }
  }

  private fromClient(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.stdin?.write(data);
      return;
    }
    let message: CommandClientMessage;
    try {
      message = JSON.parse(data.toString('utf8')) as CommandClientMessage;
    } catch {
      return;
    }
    if (message.type === 'stdin-end') this.stdin?.end();
    else if (message.type === 'kill') void this.process?.kill(constants.signals.SIGKILL);
  }
}

function userOf(user: string | undefined, base: SandboxRecord['process']['user']) {
  if (!user) return base;
  if (user === 'root') return { uid: 0, gid: 0 };
  const [uid, gid] = user.split(':').map(Number);
  return { uid: uid!, gid: gid ?? uid! };
}

/** The commands running (or finished and not yet read) in the server's sandboxes. */
export class CommandSessions {
  private readonly sessions = new Map<string, CommandSession>();

  constructor(private readonly settings: RuntimeSettings) {}

  async start(
    record: SandboxRecord,
    request: StartCommandRequest,
  ): Promise<{ commandId: string; pid: number }> {
    const session = new CommandSession(record.sandboxId, Boolean(request.background), () =>
      this.sessions.delete(session.id),
    );
    const base = sandboxProcess(
      record,
      typeof request.cmd === 'string' ? ['/bin/sh', '-c', request.cmd] : request.cmd,
    );
    const spec = {
      ...base,
      env: mergeEnv(base.env, request.env),
      cwd: request.cwd ?? base.cwd,
      user: userOf(request.user, base.user),
    };
    if (request.stdin) session.stdin = new PassThrough();
    const stdio = {
      stdin: session.stdin,
      stdout: session.output(STREAM_STDOUT),
      stderr: session.output(STREAM_STDERR),
    };
    const process = await execInSandbox(
      this.settings,
      record.sandboxId,
      spec,
      stdio,
      AbortSignal.timeout(60_000),
    );
    session.process = process;
    this.sessions.set(session.id, session);
    const timer = request.timeoutMs
      ? setTimeout(() => {
          session.timedOut = true;
          void process.kill(constants.signals.SIGKILL);
        }, request.timeoutMs)
      : undefined;
    if (!session.background) {
      setTimeout(() => {
        if (!session.attachedOnce) void process.kill(constants.signals.SIGKILL);
      }, ATTACH_WAIT_MS).unref();
    }
    process.exit.then(
      (exit) => {
        clearTimeout(timer);
        session.stdin?.destroy();
        session.finish(exit.status);
      },
      (err: unknown) => {
        log.error({ err: messageOf(err) }, 'following a command failed');
        session.finish(128 + constants.signals.SIGKILL);
      },
    );
    return { commandId: session.id, pid: process.pid };
  }

  attach(sandboxId: string, commandId: string, ws: WebSocket): void {
    const session = this.sessions.get(commandId);
    if (!session || session.sandboxId !== sandboxId) {
      const error = new HullError(
        'ERR_NOT_FOUND',
        `command ${commandId} does not exist in sandbox ${sandboxId}`,
      );
      ws.close(4404, error.message.slice(0, 120));
      return;
    }
    session.attach(ws);
  }

  /** The commands of a sandbox that is going away: their streams end with the VM. */
  forgetSandbox(sandboxId: string): void {
    for (const [id, session] of this.sessions) if (session.sandboxId === sandboxId) this.sessions.delete(id);
  }
}
