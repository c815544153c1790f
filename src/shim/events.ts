import { create, type DescMessage, type MessageInitShape, toBinary } from '@bufbuild/protobuf';
import { AnySchema, timestampFromDate } from '@bufbuild/protobuf/wkt';
import { messageOf } from '../errors.js';
import { Events, ForwardRequestSchema } from '../gen/containerd/services/events/ttrpc/v1/events_pb.js';
import { logger } from '../log.js';
import { connectUnix } from '../sys/unix-socket.js';
import { TtrpcClient } from '../ttrpc/client.js';
import { settledWithin, sleep } from '../util/deadline.js';

interface Envelope {
  topic: string;
  payload: Uint8Array;
  typeName: string;
  at: Date;
}

/** How long one Forward may take; containerd answers at once unless it is restarting. */
const FORWARD_TIMEOUT_MS = 10_000;
/** How long an event is retried while containerd is away (restarting) before it is dropped. */
const GIVE_UP_MS = 120_000;

/**
 * Publishes task events to containerd over its ttRPC events service, one at a time and in
 * the order they happened (containerd needs create before start before exit before delete).
 * When containerd is away the queue waits and retries on a new connection.
 */
export class EventPublisher {
  private readonly queue: Envelope[] = [];
  private client: TtrpcClient | undefined;
  private running: Promise<void> | undefined;
  private readonly log = logger('events');

  constructor(
    /** containerd's ttRPC socket (TTRPC_ADDRESS); empty: events are only logged. */
    private readonly address: string,
    private readonly namespace: string,
  ) {}

  publish<D extends DescMessage>(topic: string, schema: D, event: MessageInitShape<D>): void {
    const payload = toBinary(schema, create(schema, event));
    this.queue.push({ topic, payload, typeName: schema.typeName, at: new Date() });
    this.log.debug({ topic }, 'event');
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Waits until every queued event is sent (or given up on), at most `ms`. */
  async flush(ms: number): Promise<void> {
    await settledWithin(this.running ?? Promise.resolve(), ms);
  }

  close(): void {
    this.client?.close();
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const event = this.queue[0]!;
      if (await this.send(event)) this.queue.shift();
      else if (Date.now() - event.at.getTime() > GIVE_UP_MS) {
        this.log.error({ topic: event.topic }, 'containerd did not take the event; dropped');
        this.queue.shift();
      } else await sleep(500);
    }
  }

  private async send(event: Envelope): Promise<boolean> {
    if (!this.address) return true;
    try {
      const client = await this.connection();
      const request = create(ForwardRequestSchema, {
        envelope: {
          timestamp: timestampFromDate(event.at),
          namespace: this.namespace,
          topic: event.topic,
          // containerd finds the event's type by its bare name, not a type.googleapis.com URL.
          event: create(AnySchema, { typeUrl: event.typeName, value: event.payload }),
        },
      });
      await client.call(Events.method.forward, request, {
        signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS),
        timeoutMs: FORWARD_TIMEOUT_MS,
        metadata: { 'containerd-namespace-ttrpc': this.namespace },
      });
      return true;
    } catch (err) {
      this.log.warn({ topic: event.topic, err: messageOf(err) }, 'cannot forward an event; will retry');
      this.client?.close();
      this.client = undefined;
      return false;
    }
  }

  private async connection(): Promise<TtrpcClient> {
    if (this.client && !this.client.closed) return this.client;
    const socket = await connectUnix(
      this.address.replace(/^unix:\/\//, ''),
      AbortSignal.timeout(FORWARD_TIMEOUT_MS),
    );
    socket.on('error', () => {});
    this.client = new TtrpcClient(socket);
    return this.client;
  }
}
