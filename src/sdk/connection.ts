import { type ClientRequest, request as httpRequest, type IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { WebSocket } from 'ws';
import type { ApiError } from '../serve/api-types.js';

/** Where the API is and how to be let in; both default from the environment. */
export interface ConnectionOptions {
  /** `unix:/path/to/api.sock` or `http://host:port`; else $HULL_API, else unix:/run/hull/api.sock. */
  api?: string;
  /** The bearer token (needed on TCP); else $HULL_TOKEN. */
  token?: string;
  /** How long a request may take before it fails (ms); 10 minutes by default. */
  requestTimeoutMs?: number;
}

export const DEFAULT_API = 'unix:/run/hull/api.sock';

/** A refusal or failure of the API, with its stable code (`ERR_NOT_FOUND`, `ERR_VALIDATION`, …). */
export class HullApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'HullApiError';
  }
}

type Body = { json: unknown } | { stream: Readable | Uint8Array; length?: number } | undefined;

/** The SDK's one connection to a `hull serve`: HTTP over a unix socket or TCP, and WebSockets. */
export class Connection {
  readonly api: string;
  private readonly token: string | undefined;
  private readonly timeoutMs: number;

  constructor(options: ConnectionOptions = {}) {
    this.api = options.api ?? process.env.HULL_API ?? DEFAULT_API;
    this.token = options.token ?? process.env.HULL_TOKEN ?? undefined;
    this.timeoutMs = options.requestTimeoutMs ?? 10 * 60_000;
    if (!this.api.startsWith('unix:/') && !/^http:\/\/[^/]+\/?$/.test(this.api)) {
      throw new HullApiError(
        'ERR_CONFIG',
        `api ${this.api}: write unix:/path/to/api.sock or http://host:port`,
        0,
      );
    }
  }

  get options(): ConnectionOptions {
    return { api: this.api, token: this.token, requestTimeoutMs: this.timeoutMs };
  }

  /** A JSON request; the answer's JSON, or undefined for 204. Non-2xx throws HullApiError. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.request(method, path, body === undefined ? undefined : { json: body });
    const text = await readAll(response);
    return (text.length ? JSON.parse(text.toString('utf8')) : undefined) as T;
  }

  /** A request whose answer is read as a stream (files); non-2xx throws HullApiError. */
  async request(method: string, path: string, body?: Body): Promise<IncomingMessage> {
    const headers: Record<string, string> = {};
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: Readable | Uint8Array | undefined;
    if (body && 'json' in body) {
      payload = Buffer.from(JSON.stringify(body.json));
      headers['content-type'] = 'application/json';
    } else if (body) {
      payload = body.stream;
      headers['content-type'] = 'application/octet-stream';
      const length = body.stream instanceof Uint8Array ? body.stream.length : body.length;
      if (length !== undefined) headers['content-length'] = String(length);
    }
    if (payload instanceof Uint8Array) headers['content-length'] = String(payload.length);
    let req: ClientRequest | undefined;
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      req = httpRequest(
        { ...this.target(path), method, headers, signal: AbortSignal.timeout(this.timeoutMs) },
        resolve,
      );
      const sent = req;
      sent.on('error', reject);
      if (payload instanceof Uint8Array) sent.end(payload);
      else if (payload) {
        payload.on('error', (err) => sent.destroy(err));
        payload.pipe(sent);
      } else sent.end();
    });
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const text = (await readAll(response)).toString('utf8');
    // Refused part-way through an upload: send no more of it.
    req?.destroy();
    let error: ApiError['error'] = { code: 'ERR_INTERNAL', message: `HTTP ${status}: ${text.slice(0, 200)}` };
    try {
      error = (JSON.parse(text) as ApiError).error ?? error;
    } catch {}
    throw new HullApiError(error.code, error.message, status);
  }

  /** A WebSocket to `path` (a command's stream), authenticated as requests are. */
  websocket(path: string): WebSocket {
    const headers = this.token ? { authorization: `Bearer ${this.token}` } : undefined;
    const url = this.api.startsWith('unix:')
      ? `ws+unix://${this.api.slice('unix:'.length)}:${path}`
      : `${this.api.replace(/\/$/, '').replace(/^http/, 'ws')}${path}`;
    return new WebSocket(url, { headers, maxPayload: 16 * 1024 * 1024 });
  }

  private target(path: string) {
    if (this.api.startsWith('unix:')) return { socketPath: this.api.slice('unix:'.length), path };
    const url = new URL(this.api);
    return { host: url.hostname, port: Number(url.port || 80), path };
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
