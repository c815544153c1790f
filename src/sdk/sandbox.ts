import type { CreateSandboxRequest, SandboxInfo, SandboxList } from '../serve/api-types.js';
import { Commands } from './commands.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { Files } from './files.js';
import { Ports } from './ports.js';
import { Pty } from './pty.js';

export type { CommandInfo, FileStat, PtySize, WatchEvent } from '../serve/api-session-types.js';
export type { FileEntry, SandboxInfo } from '../serve/api-types.js';
export type { CommandHandle, CommandOptions, CommandResult, OutputCallbacks } from './commands.js';
export { type ConnectionOptions, HullApiError } from './connection.js';
export type { WatchHandle } from './files.js';
export type { PtyHandle, PtyOptions } from './pty.js';

export type SandboxOptions = CreateSandboxRequest & ConnectionOptions;

/**
 * A sandbox of a `hull serve`: a container from an image, in its own VM.
 *
 *   const sandbox = await Sandbox.create({ image: 'docker.io/library/python:3.12-slim' });
 *   const { stdout } = await sandbox.commands.run('python3 -c "print(6*7)"');
 */
export class Sandbox {
  readonly commands: Commands;
  readonly files: Files;
  readonly ports: Ports;
  readonly pty: Pty;

  private constructor(
    private readonly connection: Connection,
    readonly sandboxId: string,
    /** What the server said when this object was made; `getInfo()` asks again. */
    readonly info: SandboxInfo,
  ) {
    this.commands = new Commands(connection, sandboxId);
    this.files = new Files(connection, sandboxId);
    this.ports = new Ports(connection, sandboxId);
    this.pty = new Pty(connection, sandboxId);
  }

  static async create(options: SandboxOptions): Promise<Sandbox> {
    const { api, token, requestTimeoutMs, ...request } = options;
    const connection = new Connection({ api, token, requestTimeoutMs });
    const info = await connection.json<SandboxInfo>('POST', '/v1/sandboxes', request);
    return new Sandbox(connection, info.sandboxId, info);
  }

  /** The sandbox `sandboxId`, resumed first if it is paused. */
  static async connect(sandboxId: string, options: ConnectionOptions = {}): Promise<Sandbox> {
    const connection = new Connection(options);
    const info = await connection.json<SandboxInfo>('GET', `/v1/sandboxes/${encodeURIComponent(sandboxId)}`);
    if (info.status === 'paused') return Sandbox.resume(sandboxId, options);
    return new Sandbox(connection, sandboxId, info);
  }

  /**
   * Resumes a paused sandbox (see pause()): its processes go on where they were, its files as
   * they were, its clock set to now. Open TCP connections may break, as after a laptop sleep.
   * A damaged saved state is refused (HullApiError ERR_SAVED_STATE) and the sandbox stays paused.
   */
  static async resume(sandboxId: string, options: ConnectionOptions = {}): Promise<Sandbox> {
    const connection = new Connection(options);
    const info = await connection.json<SandboxInfo>(
      'POST',
      `/v1/sandboxes/${encodeURIComponent(sandboxId)}/resume`,
    );
    return new Sandbox(connection, sandboxId, info);
  }

  /** Live sandboxes, those whose metadata has every pair given when `metadata` is. */
  static async list(
    options: { metadata?: Record<string, string> } & ConnectionOptions = {},
  ): Promise<SandboxInfo[]> {
    const { metadata, ...connectionOptions } = options;
    const query = Object.entries(metadata ?? {})
      .map(([k, v]) => `metadata=${encodeURIComponent(`${k}=${v}`)}`)
      .join('&');
    const list = await new Connection(connectionOptions).json<SandboxList>(
      'GET',
      `/v1/sandboxes${query ? `?${query}` : ''}`,
    );
    return list.sandboxes;
  }

  getInfo(): Promise<SandboxInfo> {
    return this.connection.json<SandboxInfo>('GET', `/v1/sandboxes/${this.sandboxId}`);
  }

  /** Sets the time to live, from now: the server kills the sandbox when it is over. */
  async setTimeout(timeoutMs: number): Promise<void> {
    await this.connection.json('POST', `/v1/sandboxes/${this.sandboxId}/timeout`, { timeoutMs });
  }

  /**
   * Pauses the sandbox to disk: its VM's memory and devices are saved beside its disk and no VM
   * runs until `Sandbox.resume` (or `connect`). Its time to live does not run while paused; a
   * paused sandbox outlives a restart of the server.
   */
  async pause(): Promise<void> {
    await this.connection.json('POST', `/v1/sandboxes/${this.sandboxId}/pause`);
  }

  /** Kills the sandbox; nothing of it is left. */
  async kill(): Promise<void> {
    await this.connection.json('DELETE', `/v1/sandboxes/${this.sandboxId}`);
  }
}
