import type { Readable } from 'node:stream';
import type { ExistsResponse, FileEntry, FileList } from '../serve/api-types.js';
import type { Connection } from './connection.js';

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

  async makeDir(path: string): Promise<void> {
    await this.connection.json('POST', `/v1/sandboxes/${this.sandboxId}/files/dirs`, { path });
  }

  private url(suffix: string, path: string): string {
    return `/v1/sandboxes/${this.sandboxId}/files${suffix}?path=${encodeURIComponent(path)}`;
  }
}
