import type { Readable } from 'node:stream';
import type { FileStat, RenameRequest, WatchEvent, WatchMessage } from '../serve/api-session-types.js';
import type { ExistsResponse, FileEntry, FileList } from '../serve/api-types.js';
import { type Connection, HullApiError } from './connection.js';

export type ReadFormat = 'text' | 'bytes' | 'stream';

/** `sandbox.files`: paths are the container's, resolved inside the guest. */
export class Files {
  constructor(
    private readonly connection: Connection,
    private readonly sandboxId: string,
  ) {}

  read(path: string, options?: { format?: 'text' }): Promise<string>;
  read(path: string, options: { format: 'bytes' }): Promise<Uint8Array>;
  read(path: string, options: { format: 'stream' }): Promise<Readable>;
  async read(path: string, options: { format?: ReadFormat } = {}): Promise<string | Uint8Array | Readable> {
    const response = await this.connection.request('GET', this.url('', path));
    if (options.format === 'stream') return response;
    const chunks: Buffer[] = [];
    for await (const chunk of response) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    return options.format === 'bytes'
      ? new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length)
      : bytes.toString('utf8');
  }

  /** Writes a file (making missing parent directories), streamed: data is never held whole here. */
  async write(
    path: string,
    data: string | Uint8Array | Readable,
    options: { length?: number } = {},
  ): Promise<void> {
    const stream = typeof data === 'string' ? Buffer.from(data) : data;
    const response = await this.connection.request('PUT', this.url('', path), {
      stream,
      length: options.length,
    });
    response.resume();
  }

  async list(path: string): Promise<FileEntry[]> {
    return (await this.connection.json<FileList>('GET', this.url('/list', path))).entries;
  }

  async exists(path: string): Promise<boolean> {
    return (await this.connection.json<ExistsResponse>('GET', this.url('/exists', path))).exists;
  }

  async remove(path: string): Promise<void> {
    await this.connection.json('DELETE', this.url('', path));
  }

  /** Describes a path (a symlink itself, with its target; not what it points to). */
  async stat(path: string): Promise<FileStat> {
    return this.connection.json<FileStat>('GET', this.url('/stat', path));
  }

  /** Renames (moves) `from` to `to`, making `to`'s missing parents. */
  async rename(from: string, to: string): Promise<void> {
    const body: RenameRequest = { from, to };
    await this.connection.json('POST', `/v1/sandboxes/${this.sandboxId}/files/rename`, body);
  }

  /**
   * Watches a directory (inotify in the guest, the path resolved in the container): `onEvent`
   * gets each change in it as it happens, from when this resolves until `stop()`. `onExit` is
   * told when the watch ends by itself: the directory went away (no error), events were lost
   * and the watch goes on (`overflow`, not an end), or it failed (the error).
   */
  async watch(
    dir: string,
    onEvent: (event: WatchEvent) => void,
    options: { onExit?: (error?: HullApiError) => void; onOverflow?: () => void } = {},
  ): Promise<WatchHandle> {
    const ws = this.connection.websocket(this.url('/watch', dir));
    let stopped = false;
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      let failure: HullApiError | undefined;
      ws.on('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => {
          if (body.length < 64 * 1024) body += chunk.toString('utf8');
        });
        response.on('end', () => {
          let error = { code: 'ERR_INTERNAL', message: `HTTP ${response.statusCode}` };
          try {
            error = JSON.parse(body).error ?? error;
          } catch {}
          reject(new HullApiError(error.code, error.message, response.statusCode ?? 0));
        });
      });
      ws.on('error', (err) => {
        if (!ready) reject(err);
      });
      ws.on('message', (data: Buffer) => {
        const message = JSON.parse(data.toString('utf8')) as WatchMessage;
        if (message.type === 'ready') {
          ready = true;
          resolve();
        } else if (message.type === 'event') onEvent(message.event);
        else if (message.type === 'overflow') options.onOverflow?.();
        else if (message.type === 'error') {
          failure = new HullApiError(message.error.code, message.error.message, 0);
          if (!ready) reject(failure);
        }
      });
      ws.on('close', (code, reason) => {
        if (!ready) {
          reject(
            failure ??
              new HullApiError(
                code === 4404 ? 'ERR_NOT_FOUND' : 'ERR_STATE',
                `the watch ended before it began (${code} ${reason.toString()})`,
                code === 4404 ? 404 : 0,
              ),
          );
          return;
        }
        if (!stopped) options.onExit?.(failure);
      });
    });
    return {
      stop: async () => {
        stopped = true;
        if (ws.readyState === ws.CLOSED) return;
        await new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          ws.close(1000, 'stop');
        });
      },
    };
  }

  async makeDir(path: string): Promise<void> {
    await this.connection.json('POST', `/v1/sandboxes/${this.sandboxId}/files/dirs`, { path });
  }

  private url(suffix: string, path: string): string {
    return `/v1/sandboxes/${this.sandboxId}/files${suffix}?path=${encodeURIComponent(path)}`;
  }
}

/** A directory being watched: `stop()` ends the watch (in the guest too). */
export interface WatchHandle {
  stop(): Promise<void>;
}
