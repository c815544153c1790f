import type {
  CreateSandboxRequest,
  SandboxInfo,
  SandboxList,
  SnapshotInfo,
  SnapshotList,
} from '../serve/api-types.js';
import { Commands } from './commands.js';
import { Connection, type ConnectionOptions } from './connection.js';
import { Files } from './files.js';
import { Ports } from './ports.js';
import { Pty } from './pty.js';

export type { CommandInfo, FileStat, PtySize, WatchEvent } from '../serve/api-session-types.js';
export type { FileEntry, SandboxInfo, SnapshotInfo } from '../serve/api-types.js';
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
 *   const copies = await sandbox.fork({ count: 3 });
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

  /**
   * `count` running copies of this sandbox (it runs on): each goes on from its memory, processes
   * and files as they are now, with its own disk, address, MAC, hostname, boot id and fresh
   * entropy; their memory is shared copy-on-write. Open TCP connections may break in the copies.
   * All or none: if one copy cannot start, none is left.
   */
  async fork(options: { count?: number } = {}): Promise<Sandbox[]> {
    const list = await this.connection.json<SandboxList>('POST', `/v1/sandboxes/${this.sandboxId}/fork`, {
      count: options.count ?? 1,
    });
    return list.sandboxes.map((info) => new Sandbox(this.connection, info.sandboxId, info));
  }

  /**
   * Keeps a snapshot of this sandbox (it runs on): `Sandbox.create({ fromSnapshot })` starts any
   * number of sandboxes from it, each going on from where this one is now.
   */
  snapshot(options: { metadata?: Record<string, string> } = {}): Promise<SnapshotInfo> {
    return this.connection.json<SnapshotInfo>('POST', `/v1/sandboxes/${this.sandboxId}/snapshots`, options);
  }

  /** The snapshots the server keeps. */
  static async listSnapshots(options: ConnectionOptions = {}): Promise<SnapshotInfo[]> {
    return (await new Connection(options).json<SnapshotList>('GET', '/v1/snapshots')).snapshots;
  }

  static getSnapshot(snapshotId: string, options: ConnectionOptions = {}): Promise<SnapshotInfo> {
    return new Connection(options).json<SnapshotInfo>(
      'GET',
      `/v1/snapshots/${encodeURIComponent(snapshotId)}`,
    );
  }

  /** Removes a snapshot; the sandboxes started from it live on. */
  static async removeSnapshot(snapshotId: string, options: ConnectionOptions = {}): Promise<void> {
    await new Connection(options).json('DELETE', `/v1/snapshots/${encodeURIComponent(snapshotId)}`);
  }

  /** Kills the sandbox; nothing of it is left. */
  async kill(): Promise<void> {
    await this.connection.json('DELETE', `/v1/sandboxes/${this.sandboxId}`);
  }
}
