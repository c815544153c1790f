import type { WebSocket } from 'ws';
import type { CommandList, PtySize, StartPtyRequest } from '../serve/api-session-types.js';
import type { CommandExitMessage, StartCommandResponse } from '../serve/api-types.js';
import { openStream } from './commands.js';
import { type Connection, HullApiError } from './connection.js';

export interface PtyOptions extends PtySize {
  /** Called with the terminal's output as it is written (bytes: a terminal speaks escapes). */
  onData: (data: Uint8Array) => void;
  /** What runs on the terminal; `/bin/sh` by default. */
  cmd?: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** `root`, `uid` or `uid:gid`; the image's user by default. */
  user?: string;
}

/**
 * A process on a terminal in the sandbox: its output as it comes, input, resizes. It lives
 * on if this client goes away; `sandbox.pty.connect(commandId)` follows it again.
 */
export class PtyHandle {
  private readonly result: Promise<{ exitCode: number }>;

  constructor(
    readonly commandId: string,
    readonly pid: number,
    private readonly ws: WebSocket,
    onData: (data: Uint8Array) => void,
  ) {
    this.result = new Promise((resolve, reject) => {
      let exit: CommandExitMessage | undefined;
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (!isBinary) {
          const message = JSON.parse(data.toString('utf8')) as CommandExitMessage;
          if (message.type === 'exit') exit = message;
          return;
        }
        // Frames carry the stream number first, as a command's do: a terminal has one.
        onData(new Uint8Array(data.buffer, data.byteOffset + 1, data.length - 1));
      });
      ws.on('error', reject);
      ws.on('close', (code, reason) => {
        if (exit) resolve({ exitCode: exit.exitCode });
        else
          reject(
            new HullApiError(
              code === 4404 ? 'ERR_NOT_FOUND' : 'ERR_STATE',
              `the terminal's stream ended without its exit (${code} ${reason.toString()})`,
              0,
            ),
          );
      });
    });
    this.result.catch(() => {});
  }

  /** Types into the terminal. */
  sendInput(data: string | Uint8Array): void {
    this.ws.send(typeof data === 'string' ? Buffer.from(data) : data, { binary: true });
  }

  resize(size: PtySize): void {
    this.ws.send(JSON.stringify({ type: 'resize', cols: size.cols, rows: size.rows }));
  }

  /** Resolves when the process on the terminal exits. */
  wait(): Promise<{ exitCode: number }> {
    return this.result;
  }

  async kill(): Promise<void> {
    this.ws.send(JSON.stringify({ type: 'kill' }));
    await this.result.catch(() => {});
  }

  /** Stops following the terminal; its process runs on. */
  disconnect(): void {
    this.ws.close(1000, 'disconnect');
  }
}

/** `sandbox.pty`: terminals in the sandbox. */
export class Pty {
  constructor(
    private readonly connection: Connection,
    private readonly sandboxId: string,
  ) {}

  async create(options: PtyOptions): Promise<PtyHandle> {
    const { onData, ...rest } = options;
    const request: StartPtyRequest = rest;
    const started = await this.connection.json<StartCommandResponse>(
      'POST',
      `/v1/sandboxes/${this.sandboxId}/ptys`,
      request,
    );
    return openStream(
      this.connection,
      this.sandboxId,
      started.commandId,
      (ws) => new PtyHandle(started.commandId, started.pid, ws, onData),
    );
  }

  /** Follows a terminal started earlier (by this client or one before it). */
  async connect(commandId: string, onData: (data: Uint8Array) => void): Promise<PtyHandle> {
    const { commands } = await this.connection.json<CommandList>(
      'GET',
      `/v1/sandboxes/${this.sandboxId}/commands`,
    );
    const found = commands.find((c) => c.commandId === commandId && c.pty);
    if (!found) {
      throw new HullApiError(
        'ERR_NOT_FOUND',
        `terminal ${commandId} is not in sandbox ${this.sandboxId}`,
        404,
      );
    }
    return openStream(
      this.connection,
      this.sandboxId,
      commandId,
      (ws) => new PtyHandle(commandId, found.pid, ws, onData),
    );
  }
}
