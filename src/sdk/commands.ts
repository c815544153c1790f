import { StringDecoder } from 'node:string_decoder';
import type { WebSocket } from 'ws';
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
}

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
}

function follow(ws: WebSocket, options: CommandOptions): Promise<CommandResult> {
  const decoders = { [STREAM_STDOUT]: new StringDecoder('utf8'), [STREAM_STDERR]: new StringDecoder('utf8') };
  const text = { [STREAM_STDOUT]: '', [STREAM_STDERR]: '' };
  const callbacks = { [STREAM_STDOUT]: options.onStdout, [STREAM_STDERR]: options.onStderr };
  return new Promise((resolve, reject) => {
    let exit: CommandExitMessage | undefined;
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) {
        exit = JSON.parse(data.toString('utf8')) as CommandExitMessage;
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
    const ws = this.connection.websocket(
      `/v1/sandboxes/${this.sandboxId}/commands/${started.commandId}/stream`,
    );
    const handle = new CommandHandle(started.commandId, started.pid, ws, options);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (options.stdin !== undefined) {
      handle.sendStdin(options.stdin);
      handle.closeStdin();
    }
    return options.background ? handle : handle.wait();
  }
}
