import { randomUUID } from 'node:crypto';
import { constants } from 'node:os';
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { HullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { Process } from '../oci/spec.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import type { CommandInfo, PtySize, StartPtyRequest, StreamClientMessage } from './api-session-types.js';
import {
  type CommandExitMessage,
  STREAM_STDERR,
  STREAM_STDOUT,
  type StartCommandRequest,
} from './api-types.js';
import {
  type CommandRecord,
  readCommandRecords,
  removeCommandRecord,
  writeCommandRecord,
} from './command-records.js';
import { attachInSandbox, execInSandbox, type GuestProcess } from './guest-process.js';
import type { SandboxRecord } from './sandbox-records.js';
import { mergeEnv, sandboxProcess } from './sandbox-spec.js';

/**
 * Output held for a stream not (yet) attached, or not keeping up; past this the relay stops
 * reading and the output waits in the guest (whose agent holds 1 MiB, then the process waits).
 * Kept small so that what a killed server loses with its memory is small too.
 */
const MAX_QUEUED_BYTES = 1024 * 1024;
/** How long a finished command's output waits for a stream to come and read it. */
const UNCLAIMED_MS = 10 * 60_000;
/** How long a foreground command waits for its stream before it is killed (its client is gone). */
const ATTACH_WAIT_MS = 60_000;
/** Commands (running, or finished and unread) one sandbox may have: each holds a guest process. */
export const MAX_COMMANDS_PER_SANDBOX = 256;
/** What a terminal runs unless the request says otherwise. */
const DEFAULT_PTY_COMMAND = ['/bin/sh'];

const log = logger('serve');

type Frame = Buffer;

/**
 * One command: its output, in the order written, framed for the stream (first byte the stream
 * number), queued until a stream is attached and then sent as it comes, so that nothing
 * written between the start and the stream, or just before the exit, is lost. The guest
 * process waits when the queue is full or the stream is slow.
 */
class CommandSession {
  process?: GuestProcess;
  stdin?: PassThrough;
  private readonly queue: Frame[] = [];
  private queuedBytes = 0;
  private readonly waiting: (() => void)[] = [];
  private consumer?: WebSocket;
  attachedOnce = false;
  private flushing = false;
  private exitMessage?: CommandExitMessage & { outputMayBeIncomplete?: boolean };
  timedOut = false;

  constructor(
    readonly id: string,
    readonly sandboxId: string,
    readonly record: Omit<CommandRecord, 'execId' | 'pid'> & Partial<Pick<CommandRecord, 'execId' | 'pid'>>,
    private readonly forget: () => void,
    /** Followed again by a server that started after the one that started it. */
    readonly resumed = false,
  ) {}

  get background(): boolean {
    return this.record.background;
  }

  get exited(): boolean {
    return this.exitMessage !== undefined;
  }

  info(): CommandInfo {
    return {
      commandId: this.id,
      pid: this.process?.pid ?? this.record.pid ?? 0,
      cmd: this.record.cmd,
      background: this.record.background,
      pty: this.record.pty,
      startedAt: this.record.startedAt,
      status: this.exitMessage ? 'exited' : 'running',
      ...(this.exitMessage ? { exitCode: this.exitMessage.exitCode } : {}),
      attached: this.consumer !== undefined,
      ...(this.resumed ? { outputMayBeIncomplete: true } : {}),
    };
  }

  output(stream: typeof STREAM_STDOUT | typeof STREAM_STDERR): Writable {
    return new Writable({
      highWaterMark: 64 * 1024,
      write: (chunk: Buffer, _encoding, callback) =>
        this.push(Buffer.concat([Buffer.of(stream), chunk]), callback),
    });
  }

  finish(exitCode: number): void {
    this.exitMessage = {
      type: 'exit',
      exitCode,
      ...(this.timedOut ? { timedOut: true } : {}),
      ...(this.resumed ? { outputMayBeIncomplete: true } : {}),
    };
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
    ws.on('message', (data: Buffer, isBinary: boolean) => this.fromClient(ws, data, isBinary));
    ws.on('close', () => {
      if (this.consumer !== ws) return;
      this.consumer = undefined;
      // A foreground command lives as long as its stream.
      if (!this.exitMessage && !this.background) void this.process?.kill(constants.signals.SIGKILL);
    });
    this.pump();
  }

  /** Ends the stream attached, if any, without ending the command (its sandbox is paused). */
  closeStream(code: number, reason: string): void {
    const ws = this.consumer;
    this.consumer = undefined;
    ws?.close(code, reason);
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

  private fromClient(ws: WebSocket, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      const stdin = this.stdin;
      // Input waits for the guest to take it: a client sending faster is read no further.
      if (stdin && !stdin.writableEnded && !stdin.write(data)) {
        ws.pause();
        stdin.once('drain', () => ws.resume());
      }
      return;
    }
    let message: StreamClientMessage;
    try {
      message = JSON.parse(data.toString('utf8')) as StreamClientMessage;
    } catch {
      return;
    }
    if (message.type === 'stdin-end') this.stdin?.end();
    else if (message.type === 'kill') void this.process?.kill(constants.signals.SIGKILL);
    else if (message.type === 'resize' && this.record.pty && validSize(message)) {
      void this.process?.resize(message.rows, message.cols);
    }
  }
}

/** A terminal's size as the schema bounds it (a text frame is not checked by fastify). */
function validSize(size: Partial<PtySize>): size is PtySize {
  const ok = (n: unknown) => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 1000;
  return ok(size.cols) && ok(size.rows);
}

function userOf(user: string | undefined, base: SandboxRecord['process']['user']) {
  if (!user) return base;
  if (user === 'root') return { uid: 0, gid: 0 };
  const [uid, gid] = user.split(':').map(Number);
  return { uid: uid!, gid: gid ?? uid! };
}

/**
 * The commands running (or finished and not yet read) in the server's sandboxes, terminals
 * among them. Each is recorded beside its sandbox while it runs, so that a server started
 * after this one was killed follows them again (recover).
 */
export class CommandSessions {
  private readonly sessions = new Map<string, CommandSession>();

  constructor(private readonly settings: RuntimeSettings) {}

  async start(
    record: SandboxRecord,
    request: StartCommandRequest,
  ): Promise<{ commandId: string; pid: number }> {
    const argv = typeof request.cmd === 'string' ? ['/bin/sh', '-c', request.cmd] : request.cmd;
    const base = sandboxProcess(record, argv);
    const spec: Process = {
      ...base,
      env: mergeEnv(base.env, request.env),
      cwd: request.cwd ?? base.cwd,
      user: userOf(request.user, base.user),
    };
    return this.launch(record, spec, {
      background: Boolean(request.background),
      pty: false,
      stdin: Boolean(request.stdin),
      timeoutMs: request.timeoutMs,
    });
  }

  /** A process on a terminal of `cols`×`rows`: input and resizes come over its stream. */
  async startPty(
    record: SandboxRecord,
    request: StartPtyRequest,
  ): Promise<{ commandId: string; pid: number }> {
    const base = sandboxProcess(record, request.cmd ?? DEFAULT_PTY_COMMAND);
    const spec: Process = {
      ...base,
      terminal: true,
      consoleSize: { height: request.rows, width: request.cols },
      env: mergeEnv(base.env, { TERM: 'xterm-256color' }, request.env),
      cwd: request.cwd ?? base.cwd,
      user: userOf(request.user, base.user),
    };
    // A terminal outlives its stream, as a background command does: a client that lost its
    // connection connects again.
    return this.launch(record, spec, { background: true, pty: true, stdin: true });
  }

  private async launch(
    record: SandboxRecord,
    spec: Process,
    options: { background: boolean; pty: boolean; stdin: boolean; timeoutMs?: number },
  ): Promise<{ commandId: string; pid: number }> {
    const count = [...this.sessions.values()].filter((s) => s.sandboxId === record.sandboxId).length;
    if (count >= MAX_COMMANDS_PER_SANDBOX) {
      throw new HullError(
        'ERR_LIMIT',
        `sandbox ${record.sandboxId} has ${count} commands running or unread: wait for some, or kill them`,
      );
    }
    const id = randomUUID();
    const session = new CommandSession(
      id,
      record.sandboxId,
      {
        commandId: id,
        cmd: spec.args ?? [],
        background: options.background,
        pty: options.pty,
        startedAt: new Date().toISOString(),
      },
      () => this.forget(session),
    );
    if (options.stdin) session.stdin = new PassThrough({ highWaterMark: 256 * 1024 });
    const output = session.output(STREAM_STDOUT);
    const stdio = {
      stdin: session.stdin,
      stdout: output,
      // A terminal has one output stream.
      stderr: options.pty ? undefined : session.output(STREAM_STDERR),
    };
    const process = await execInSandbox(
      this.settings,
      record.sandboxId,
      spec,
      stdio,
      AbortSignal.timeout(60_000),
    );
    session.process = process;
    session.record.execId = process.execId;
    session.record.pid = process.pid;
    this.sessions.set(id, session);
    await writeCommandRecord(this.settings.root, record.sandboxId, session.record as CommandRecord).catch(
      (err: unknown) => log.error({ err: messageOf(err) }, 'recording a command failed'),
    );
    const timer = options.timeoutMs
      ? setTimeout(() => {
          session.timedOut = true;
          void process.kill(constants.signals.SIGKILL);
        }, options.timeoutMs)
      : undefined;
    if (!session.background) {
      setTimeout(() => {
        if (!session.attachedOnce) void process.kill(constants.signals.SIGKILL);
      }, ATTACH_WAIT_MS).unref();
    }
    this.followExit(session, timer);
    return { commandId: id, pid: process.pid };
  }

  /**
   * Follows again the commands a killed server left running in `sandboxIds`: background ones
   * and terminals carry on (their unread output waits in the guest); a foreground command,
   * whose client's stream went with the old server, is killed as if that stream had closed.
   */
  async recover(sandboxIds: string[]): Promise<void> {
    for (const sandboxId of sandboxIds) {
      for (const record of await readCommandRecords(this.settings.root, sandboxId)) {
        const session = new CommandSession(
          record.commandId,
          sandboxId,
          record,
          () => this.forget(session),
          true,
        );
        if (record.background) session.stdin = new PassThrough({ highWaterMark: 256 * 1024 });
        const stdio = {
          stdin: session.stdin,
          stdout: session.output(STREAM_STDOUT),
          stderr: record.pty ? undefined : session.output(STREAM_STDERR),
        };
        try {
          session.process = await attachInSandbox(
            this.settings,
            sandboxId,
            record,
            stdio,
            AbortSignal.timeout(30_000),
          );
        } catch (err) {
          log.info({ sandbox: sandboxId, command: record.commandId, err: messageOf(err) }, 'command gone');
          await removeCommandRecord(this.settings.root, sandboxId, record.commandId);
          continue;
        }
        if (!record.background) {
          // Its client's stream went with the old server: it ends as if that stream closed.
          const { exit } = session.process;
          void session.process.kill(constants.signals.SIGKILL);
          void exit.finally(() => removeCommandRecord(this.settings.root, sandboxId, record.commandId));
          continue;
        }
        this.sessions.set(record.commandId, session);
        this.followExit(session, undefined);
      }
    }
  }

  private followExit(session: CommandSession, timer: NodeJS.Timeout | undefined): void {
    session.process!.exit.then(
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
  }

  private forget(session: CommandSession): void {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    void removeCommandRecord(this.settings.root, session.sandboxId, session.id).catch(() => {});
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

  /** A sandbox's commands, oldest first: those running and those whose exit is unread. */
  list(sandboxId: string): CommandInfo[] {
    return [...this.sessions.values()]
      .filter((s) => s.sandboxId === sandboxId)
      .map((s) => s.info())
      .sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  }

  /** Kills a command (SIGKILL); its stream, if one is attached, ends with the exit. */
  async kill(sandboxId: string, commandId: string): Promise<void> {
    const session = this.sessions.get(commandId);
    if (!session || session.sandboxId !== sandboxId) {
      throw new HullError('ERR_NOT_FOUND', `command ${commandId} does not exist in sandbox ${sandboxId}`);
    }
    await session.process?.kill(constants.signals.SIGKILL);
  }

  /**
   * The server is stopping: every command is let go, not ended. Background commands and
   * terminals run on, their unread output kept in the guest for the next server (recover);
   * foreground ones end as their streams close.
   */
  close(): void {
    const sessions = [...this.sessions.values()];
    // Forgotten first, so that their records stay for the next server.
    this.sessions.clear();
    for (const session of sessions) session.process?.detach();
  }

  /**
   * The sandbox is being paused to disk: its commands are let go as by a server that stops
   * (their records stay), their streams closed; `recover` follows them again once it is
   * resumed, as after a restart of the server (a foreground one is then ended).
   */
  letGoOfSandbox(sandboxId: string): void {
    for (const [id, session] of this.sessions) {
      if (session.sandboxId !== sandboxId) continue;
      this.sessions.delete(id);
      session.process?.detach();
      session.closeStream(1001, 'the sandbox was paused: follow the command again once it is resumed');
    }
  }

  /**
   * The records of the commands a sandbox runs now (not those whose exit was read): what a
   * fork of it runs too (followInCopies).
   */
  runningRecords(sandboxId: string): CommandRecord[] {
    return [...this.sessions.values()]
      .filter((s) => s.sandboxId === sandboxId && !s.exited && s.record.execId !== undefined)
      .map((s) => ({ ...s.record }) as CommandRecord);
  }

  /**
   * A fork's copies run their parent's commands too: the processes are in each copy's memory,
   * and so is what output of theirs the guest's agent had not yet given out. Each copy gets a
   * record of each, under a command id of its own, and they are followed as after a resume
   * (`recover`): background commands and terminals carry on, a foreground one, whose client
   * is the parent's, ends.
   */
  async followInCopies(records: CommandRecord[], copyIds: string[]): Promise<void> {
    for (const copyId of copyIds) {
      for (const record of records) {
        await writeCommandRecord(this.settings.root, copyId, { ...record, commandId: randomUUID() });
      }
    }
    await this.recover(copyIds);
  }

  /** The commands of a sandbox that is going away: their streams end with the VM. */
  forgetSandbox(sandboxId: string): void {
    for (const [id, session] of this.sessions) if (session.sandboxId === sandboxId) this.sessions.delete(id);
  }
}
