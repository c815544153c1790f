import { StringDecoder } from 'node:string_decoder';
import type { WebSocket } from 'ws';
import type { CommandInfo, CommandList } from '../serve/api-session-types.js';
import {
  type CommandExitMessage,
  STREAM_STDERR,
  STREAM_STDOUT,
  type StartCommandRequest,
  type StartCommandResponse,
} from '../serve/api-types.js';
import { type Connection, HullApiError } from './connection.js';

export interface CommandOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** `root`, `uid` or `uid:gid`; the image's user by default. */
  user?: string;
  /** Sent to the command's stdin, which is then closed; without it the command reads /dev/null. */
  stdin?: string | Uint8Array;
  /** Killed (exit 137, `timedOut`) after this long. */
  timeoutMs?: number;
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** Return a handle at once instead of waiting for the exit. */
  background?: boolean;
}

export interface CommandResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The command's timeoutMs ran out and it was killed. */
  timedOut?: boolean;
  /**
   * The server was restarted while the command ran (see CommandInfo): what the guest held is
   * all here, but output the old server had read and not yet sent may be missing.
   */
  outputMayBeIncomplete?: boolean;
}

/** Callbacks for a command's output when connecting to it again. */
export type OutputCallbacks = Pick<CommandOptions, 'onStdout' | 'onStderr'>;

/** A running command: its output arrives as written; `wait()` gives the result. */
export class CommandHandle {
  private readonly result: Promise<CommandResult>;

  constructor(
    readonly commandId: string,
    readonly pid: number,
    private readonly ws: WebSocket,
    options: CommandOptions,
  ) {
    this.result = follow(ws, options);
    this.result.catch(() => {});
  }

  wait(): Promise<CommandResult> {
    return this.result;
  }

  /** Sends more input (the command must have been started with `stdin`). */
  sendStdin(data: string | Uint8Array): void {
    this.ws.send(typeof data === 'string' ? Buffer.from(data) : data, { binary: true });
  }

  closeStdin(): void {
    this.ws.send(JSON.stringify({ type: 'stdin-end' }));
  }

  async kill(): Promise<void> {
    this.ws.send(JSON.stringify({ type: 'kill' }));
    await this.result.catch(() => {});
  }

  /**
   * Stops following the command without ending it (a background one runs on): `wait()` then
   * fails with ERR_STATE, and `commands.connect(commandId)` follows it again from here.
   */
  disconnect(): void {
    this.ws.close(1000, 'disconnect');
  }
}

function follow(ws: WebSocket, options: CommandOptions): Promise<CommandResult> {
  const decoders = { [STREAM_STDOUT]: new StringDecoder('utf8'), [STREAM_STDERR]: new StringDecoder('utf8') };
  const text = { [STREAM_STDOUT]: '', [STREAM_STDERR]: '' };
  const callbacks = { [STREAM_STDOUT]: options.onStdout, [STREAM_STDERR]: options.onStderr };
  return new Promise((resolve, reject) => {
    let exit: CommandExitMessage | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        const message = JSON.parse(data.toString('utf8')) as CommandExitMessage & {
          outputMayBeIncomplete?: boolean;
        };
        if (message.type === 'exit') exit = message;
        return;
      }
      const stream = data[0] as typeof STREAM_STDOUT | typeof STREAM_STDERR;
      if (stream !== STREAM_STDOUT && stream !== STREAM_STDERR) return;
      const piece = decoders[stream].write(data.subarray(1));
      if (!piece) return;
      text[stream] += piece;
      callbacks[stream]?.(piece);
    });
    ws.on('error', (err) => reject(err));
    ws.on('close', (code, reason) => {
      for (const stream of [STREAM_STDOUT, STREAM_STDERR] as const) {
        const rest = decoders[stream].end();
        if (rest) {
          text[stream] += rest;
          callbacks[stream]?.(rest);
        }
      }
      if (!exit) {
        reject(
          new HullApiError(
            code === 4404 ? 'ERR_NOT_FOUND' : 'ERR_STATE',
            `the command's stream ended without its exit (${code} ${reason.toString()})`,
            0,
          ),
        );
        return;
      }
      resolve({
        exitCode: exit.exitCode,
        stdout: text[STREAM_STDOUT],
        stderr: text[STREAM_STDERR],
        ...(exit.timedOut ? { timedOut: true } : {}),
        ...((exit as { outputMayBeIncomplete?: boolean }).outputMayBeIncomplete
          ? { outputMayBeIncomplete: true }
          : {}),
      });
    });
  });
}

/** `sandbox.commands`: run a command (a string for /bin/sh -c, or an argv array). */
export class Commands {
  constructor(
    private readonly connection: Connection,
    private readonly sandboxId: string,
  ) {}

  run(cmd: string | string[], options: CommandOptions & { background: true }): Promise<CommandHandle>;
  run(cmd: string | string[], options?: CommandOptions): Promise<CommandResult>;
  async run(cmd: string | string[], options: CommandOptions = {}): Promise<CommandResult | CommandHandle> {
    const request: StartCommandRequest = {
      cmd,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      ...(options.env ? { env: options.env } : {}),
      ...(options.user ? { user: options.user } : {}),
      ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}),
      ...(options.background ? { background: true } : {}),
      stdin: options.stdin !== undefined || Boolean(options.background),
    };
    const started = await this.connection.json<StartCommandResponse>(
      'POST',
      `/v1/sandboxes/${this.sandboxId}/commands`,
      request,
    );
    const handle = await this.follow(started.commandId, started.pid, options);
    if (options.stdin !== undefined) {
      handle.sendStdin(options.stdin);
      handle.closeStdin();
    }
    return options.background ? handle : handle.wait();
  }

  /**
   * Follows a command started earlier, by this client or one before it (a process since
   * restarted), known by its commandId or pid: its output from where the last stream left it,
   * its exit, input and kill. A command another stream follows now is refused (ERR_STATE).
   */
  async connect(command: string | number, callbacks: OutputCallbacks = {}): Promise<CommandHandle> {
    const info = await this.find(command);
    return this.follow(info.commandId, info.pid, callbacks);
  }

  /** The sandbox's commands that run, or whose exit is unread, terminals among them. */
  async list(): Promise<CommandInfo[]> {
    return (await this.connection.json<CommandList>('GET', `/v1/sandboxes/${this.sandboxId}/commands`))
      .commands;
  }

  /** Kills a command (SIGKILL) by its commandId or pid, whether or not a stream follows it. */
  async kill(command: string | number): Promise<void> {
    const info = await this.find(command);
    await this.connection.json('DELETE', `/v1/sandboxes/${this.sandboxId}/commands/${info.commandId}`);
  }

  private async find(command: string | number): Promise<CommandInfo> {
    const found = (await this.list()).find((c) =>
      typeof command === 'number' ? c.pid === command : c.commandId === command,
    );
    if (!found) {
      throw new HullApiError(
        'ERR_NOT_FOUND',
        `command ${command} is not running in sandbox ${this.sandboxId}, and has no unread exit`,
        404,
      );
    }
    return found;
  }

  private follow(commandId: string, pid: number, options: OutputCallbacks): Promise<CommandHandle> {
    return openStream(
      this.connection,
      this.sandboxId,
      commandId,
      (ws) => new CommandHandle(commandId, pid, ws, options),
    );
  }
}

/**
 * Opens a command's (or a terminal's) stream, with `follow` listening from before it opens: the
 * first frames can arrive with the upgrade's answer, in the same tick as `open`.
 */
export async function openStream<T>(
  connection: Connection,
  sandboxId: string,
  commandId: string,
  follow: (ws: WebSocket) => T,
): Promise<T> {
  const ws = connection.websocket(`/v1/sandboxes/${sandboxId}/commands/${commandId}/stream`);
  const followed = follow(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return followed;
}
