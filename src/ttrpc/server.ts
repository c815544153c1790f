import type { Duplex } from 'node:stream';
import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from '@bufbuild/protobuf';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { type Request, RequestSchema, ResponseSchema } from '../gen/ttrpc/ttrpc_pb.js';
import { encodeFrame, FrameDecoder, FrameType } from './frame.js';
import { Code, TtrpcError } from './status.js';

/** The longest delay a Node timer keeps (2^31-1 ms). */
const MAX_TIMER_MS = 2n ** 31n - 1n;

export interface CallContext {
  service: string;
  method: string;
  metadata: Map<string, string>;
  /** Aborted when the request's timeout passes or the connection closes. */
  signal: AbortSignal;
  /** The request's own timeout, if it gave one: a proxy passes it on to the next server. */
  timeoutMs?: number;
}

type RawHandler = (payload: Uint8Array, ctx: CallContext) => Promise<Uint8Array>;

/** Where forwarded calls go: method name and encoded request in, encoded response out. */
export type ForwardTarget = (
  method: string,
  payload: Uint8Array,
  signal: AbortSignal,
  /** The request's timeout, for the next server to end the call as this one would. */
  timeoutMs?: number,
) => Promise<Uint8Array>;

/** The handlers of one service: one async function per unary method, typed from its descriptor. */
export type ServiceImpl<S extends GenServiceMethods> = {
  [K in keyof S]: S[K] extends { input: infer I extends DescMessage; output: infer O extends DescMessage }
    ? (request: MessageShape<I>, ctx: CallContext) => Promise<MessageInitShape<O>>
    : never;
};

/** Maps any error a handler throws to a wire status; the one place that decides codes. */
export type ErrorMapper = (err: unknown) => TtrpcError;

const defaultMapper: ErrorMapper = (err) =>
  err instanceof TtrpcError
    ? err
    : new TtrpcError(Code.UNKNOWN, err instanceof Error ? err.message : String(err));

/**
 * What a server lets its clients make it hold. A frame may be 4 MiB, so without a total a few
 * dozen connections each sending most of one would hold hundreds of MiB; past the total, the
 * connection whose bytes would cross it is closed.
 */
export interface ServerLimits {
  maxConnections: number;
  /** Bytes of unfinished frames held across all connections. */
  maxPendingBytes: number;
}

export const DEFAULT_SERVER_LIMITS: ServerLimits = { maxConnections: 64, maxPendingBytes: 16 << 20 };

/**
 * A ttRPC server. Each connection is served independently; requests on one connection run
 * concurrently (long-poll reads must not block other calls). Client stream ids must be odd
 * and strictly increasing; anything else is answered with INVALID_ARGUMENT where possible.
 */
export class TtrpcServer {
  private readonly handlers = new Map<string, RawHandler>();
  private readonly forwards = new Map<string, ForwardTarget>();

  private connections = 0;
  private pendingBytes = 0;
  private onDropped: (bytes: number) => void = () => {};

  constructor(
    private readonly mapError: ErrorMapper = defaultMapper,
    private readonly limits: ServerLimits = DEFAULT_SERVER_LIMITS,
  ) {}

  /** Connections open now, and bytes of unfinished frames they hold (for tests and metrics). */
  get load(): { connections: number; pendingBytes: number } {
    return { connections: this.connections, pendingBytes: this.pendingBytes };
  }

  register<S extends GenServiceMethods>(service: GenService<S>, impl: ServiceImpl<S>): this {
    const desc = service as unknown as DescService;
    for (const method of desc.methods) {
      if (method.methodKind !== 'unary') continue;
      const handler = (impl as Record<string, unknown>)[method.localName] as
        | ((req: unknown, ctx: CallContext) => Promise<unknown>)
        | undefined;
      if (!handler) continue;
      this.handlers.set(`${desc.typeName}/${method.name}`, async (payload, ctx) => {
        const request = fromBinary(method.input, payload);
        const output = await handler.call(impl, request, ctx);
        return toBinary(method.output, create(method.output, output as MessageInitShape<DescMessage>));
      });
    }
    return this;
  }

  /** Hands every call to `service` to `target` unchanged: this server proxies that service. */
  forward(service: string, target: ForwardTarget): this {
    this.forwards.set(service, target);
    return this;
  }

  /**
   * Called with the bytes of unfinished frames a connection held when it closed (or was cut
   * for holding too many). They are garbage from then on, but until the process collects it,
   * a flood of such connections keeps its memory: the owner can ask for it back at once.
   */
  whenUnfinishedFramesDropped(listener: (bytes: number) => void): this {
    this.onDropped = listener;
    return this;
  }

  /** Serves one connection until it closes. */
  serve(stream: Duplex): void {
    if (this.connections >= this.limits.maxConnections) {
      stream.destroy();
      return;
    }
    this.connections += 1;
    let lastStreamId = 0;
    const connection = new AbortController();
    const respond = (streamId: number, code: Code, message: string, payload?: Uint8Array) => {
      if (stream.destroyed || !stream.writable) return;
      const response = create(ResponseSchema, {
        status: code === Code.OK ? undefined : { code, message },
        payload: payload ?? new Uint8Array(),
      });
      stream.write(encodeFrame(streamId, FrameType.RESPONSE, toBinary(ResponseSchema, response)));
    };
    const decoder = new FrameDecoder(
      (frame) => {
        if (frame.type !== FrameType.REQUEST) return;
        if (frame.streamId % 2 === 0 || frame.streamId <= lastStreamId) {
          respond(
            frame.streamId,
            Code.INVALID_ARGUMENT,
            `ttrpc: stream id ${frame.streamId} is even or reused`,
          );
          return;
        }
        lastStreamId = frame.streamId;
        let request: Request;
        try {
          request = fromBinary(RequestSchema, frame.payload);
        } catch {
          respond(frame.streamId, Code.INVALID_ARGUMENT, 'ttrpc: malformed request');
          return;
        }
        void this.dispatch(request, connection.signal).then(
          (payload) => respond(frame.streamId, Code.OK, '', payload),
          (err: unknown) => {
            const status = this.mapError(err);
            respond(frame.streamId, status.code, status.message);
          },
        );
      },
      (frame) => {
        if (frame.streamId > lastStreamId) lastStreamId = frame.streamId;
        respond(
          frame.streamId,
          Code.RESOURCE_EXHAUSTED,
          `ttrpc: request of ${frame.length} bytes exceeds 4 MiB`,
        );
      },
    );
    let held = 0;
    stream.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      this.pendingBytes += decoder.pending - held;
      held = decoder.pending;
      if (this.pendingBytes > this.limits.maxPendingBytes) stream.destroy();
    });
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.connections -= 1;
      this.pendingBytes -= held;
      const dropped = held;
      held = 0;
      stream.removeAllListeners('data');
      if (dropped > 0) this.onDropped(dropped);
      connection.abort(new TtrpcError(Code.CANCELLED, 'connection closed'));
    };
    stream.on('close', close);
    stream.on('end', close);
    stream.on('error', close);
  }

  private async dispatch(request: Request, connectionSignal: AbortSignal): Promise<Uint8Array> {
    const forward = this.forwards.get(request.service);
    const handler: RawHandler | undefined =
      this.handlers.get(`${request.service}/${request.method}`) ??
      // A proxy hands the request's timeout on and waits for the answer, rather than ending
      // the call itself: the next server's answer (what it read for this call) is never dropped.
      (forward && ((payload, ctx) => forward(request.method, payload, connectionSignal, ctx.timeoutMs)));
    if (!handler) {
      throw new TtrpcError(Code.UNIMPLEMENTED, `${request.service}/${request.method} is not implemented`);
    }
    // A timer holds at most 2^31-1 ms (about 24 days; Node fires a longer one at once): a
    // longer timeout is as good as none.
    const timeoutMs =
      request.timeoutNano > 0n && request.timeoutNano / 1_000_000n <= MAX_TIMER_MS
        ? Number(request.timeoutNano / 1_000_000n)
        : undefined;
    const call = callSignal(connectionSignal, timeoutMs);
    const ctx: CallContext = {
      service: request.service,
      method: request.method,
      metadata: new Map(request.metadata.map((kv) => [kv.key, kv.value])),
      signal: call.signal,
      timeoutMs,
    };
    try {
      return await handler(request.payload, ctx);
    } finally {
      call.dispose();
    }
  }
}

/**
 * A call's signal: aborted when its connection closes or its timeout passes. Not
 * AbortSignal.any([connection, AbortSignal.timeout(ms)]): in Node 20 the joined signal holds
 * its sources only weakly and the timeout's timer holds its signal weakly too, so a garbage
 * collection before the timeout dropped it and the call never ended. A guest agent's
 * long-poll read of a process's output then waited for ever once the process had exited but
 * left its output open (the host's copy never saw the read come back empty and never ended).
 * Here the timer holds the call's controller until the call is over. Each call has a signal
 * of its own, so what its handler hangs on it goes with the call, not with the connection.
 */
function callSignal(
  connection: AbortSignal,
  timeoutMs: number | undefined,
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const onClose = () => controller.abort(connection.reason);
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            controller.abort(
              new TtrpcError(Code.DEADLINE_EXCEEDED, `ttrpc: the call's timeout of ${timeoutMs} ms passed`),
            ),
          timeoutMs,
        );
  // The timeout alone does not keep a process alive (a host process serving calls may end).
  timer?.unref();
  if (connection.aborted) onClose();
  else connection.addEventListener('abort', onClose, { once: true });
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      connection.removeEventListener('abort', onClose);
    },
  };
}

/** The handler object type for a generated service descriptor: `ImplOf<typeof AgentService>`. */
export type ImplOf<T> = T extends GenService<infer S> ? ServiceImpl<S> : never;
