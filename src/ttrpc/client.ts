import type { Duplex } from 'node:stream';
import type { DescMethodUnary } from '@bufbuild/protobuf';
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from '@bufbuild/protobuf';
import { RequestSchema, ResponseSchema } from '../gen/ttrpc/ttrpc_pb.js';
import { abortReason } from '../util/deadline.js';
import { encodeFrame, FrameDecoder, FrameType, MAX_PAYLOAD } from './frame.js';
import { Code, TtrpcError } from './status.js';

export interface CallOptions {
  signal?: AbortSignal;
  /** Sent as timeout_nano so the server can give up too; the local wait uses `signal`. */
  timeoutMs?: number;
  metadata?: Record<string, string>;
}

interface Pending {
  resolve: (payload: Uint8Array) => void;
  reject: (err: Error) => void;
}

/**
 * A ttRPC client over any byte stream. Calls are multiplexed by stream id (odd, strictly
 * increasing); a response for an id nobody waits for any more (the caller gave up) is dropped.
 */
export class TtrpcClient {
  private nextStreamId: number;
  private readonly pending = new Map<number, Pending>();
  private closedError: Error | undefined;

  /**
   * `firstStreamId` (odd): where this client's ids start. A server counts ids per connection,
   * so a client taking over a connection another client used (a VM cloned from a template, whose
   * agent saw the template host's requests) starts above every id that one sent.
   */
  constructor(
    private readonly stream: Duplex,
    firstStreamId = 1,
  ) {
    if (firstStreamId % 2 === 0 || firstStreamId < 1)
      throw new RangeError('ttrpc: a client stream id is odd');
    this.nextStreamId = firstStreamId;
    const decoder = new FrameDecoder(
      (frame) => {
        if (frame.type !== FrameType.RESPONSE) return;
        const call = this.pending.get(frame.streamId);
        if (!call) return;
        this.pending.delete(frame.streamId);
        call.resolve(frame.payload);
      },
      (frame) => {
        const call = this.pending.get(frame.streamId);
        this.pending.delete(frame.streamId);
        call?.reject(
          new TtrpcError(
            Code.RESOURCE_EXHAUSTED,
            `response of ${frame.length} bytes exceeds the 4 MiB limit`,
          ),
        );
      },
    );
    stream.on('data', (chunk: Buffer) => decoder.push(chunk));
    stream.on('error', (err) => this.fail(err));
    stream.on('close', () => this.fail(new Error('connection closed')));
    stream.on('end', () => this.fail(new Error('connection closed by peer')));
  }

  get closed(): boolean {
    return this.closedError !== undefined;
  }

  async call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageShape<I>,
    options: CallOptions = {},
  ): Promise<MessageShape<O>> {
    const payload = await this.callRaw(
      method.parent.typeName,
      method.name,
      toBinary(method.input, input),
      options,
    );
    return fromBinary(method.output, payload);
  }

  /**
   * The id this client's next call takes: a client that later takes over the same connection
   * (a VM saved and resumed, or forked) starts here, above every id this one sent.
   */
  get streamIdsFrom(): number {
    return this.nextStreamId;
  }

  /** One unary call with an already-encoded payload; resolves with the response payload. */
  callRaw(
    service: string,
    method: string,
    payload: Uint8Array,
    options: CallOptions = {},
  ): Promise<Uint8Array> {
    const { signal } = options;
    if (this.closedError) {
      return Promise.reject(new TtrpcError(Code.UNAVAILABLE, `ttrpc: ${this.closedError.message}`));
    }
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    const streamId = this.nextStreamId;
    this.nextStreamId += 2;
    const request = create(RequestSchema, {
      service,
      method,
      payload,
      timeoutNano: BigInt(options.timeoutMs ?? 0) * 1_000_000n,
      metadata: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    const body = toBinary(RequestSchema, request);
    if (body.length > MAX_PAYLOAD) {
      return Promise.reject(
        new TtrpcError(Code.RESOURCE_EXHAUSTED, `${service}/${method} request exceeds the 4 MiB limit`),
      );
    }
    return new Promise<Uint8Array>((resolve, reject) => {
      const onAbort = () => {
        this.pending.delete(streamId);
        reject(abortReason(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const settle = () => signal?.removeEventListener('abort', onAbort);
      this.pending.set(streamId, {
        resolve: (raw) => {
          settle();
          try {
            const response = fromBinary(ResponseSchema, raw);
            const status = response.status;
            if (status && status.code !== Code.OK) {
              reject(new TtrpcError(status.code as Code, status.message));
            } else {
              resolve(response.payload);
            }
          } catch (err) {
            reject(new TtrpcError(Code.INTERNAL, 'ttrpc: malformed response', { cause: err }));
          }
        },
        reject: (err) => {
          settle();
          reject(err);
        },
      });
      this.stream.write(encodeFrame(streamId, FrameType.REQUEST, body));
    });
  }

  /** Fails every pending call and closes the stream. Safe to call twice. */
  close(): void {
    this.fail(new Error('client closed'));
    this.stream.destroy();
  }

  private fail(err: Error): void {
    if (!this.closedError) this.closedError = err;
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const call of pending) call.reject(new TtrpcError(Code.UNAVAILABLE, `ttrpc: ${err.message}`));
  }
}
