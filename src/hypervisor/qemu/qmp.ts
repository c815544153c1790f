import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { HullError } from '../../errors.js';
import { raceSignal } from '../../util/deadline.js';

interface Waiter {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * A QMP (QEMU Machine Protocol) client on a connected socket: JSON objects, one per line.
 * After QEMU's greeting the client must send qmp_capabilities before any command. Replies
 * carry the id of their command; events ({"event": …}) arrive at any time and are emitted.
 */
export class QmpClient extends EventEmitter {
  private buffer = '';
  private nextId = 1;
  private readonly waiters = new Map<string, Waiter>();
  private greeting: Promise<void>;
  private closed = false;
  /** Settles once the connection is gone, after every line that came before its end was read. */
  readonly ended: Promise<void>;
  private markEnded!: () => void;

  constructor(private readonly socket: Socket) {
    super();
    this.ended = new Promise<void>((resolve) => {
      this.markEnded = resolve;
    });
    let greeted: () => void;
    let failed: (err: Error) => void;
    this.greeting = new Promise<void>((resolve, reject) => {
      greeted = resolve;
      failed = reject;
    });
    this.greeting.catch(() => {});
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        let message: Record<string, unknown>;
        try {
          message = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        if ('QMP' in message) greeted();
        else if ('event' in message) this.emit('event', message);
        else this.settle(message);
      }
    });
    const onClose = () => {
      this.closed = true;
      const err = new HullError('ERR_VM_EXITED', 'QMP connection closed');
      failed(err);
      for (const waiter of this.waiters.values()) waiter.reject(err);
      this.waiters.clear();
      this.markEnded();
    };
    socket.on('close', onClose);
    socket.on('error', onClose);
  }

  /** Waits for the greeting and negotiates capabilities. */
  async handshake(signal: AbortSignal): Promise<void> {
    await raceSignal(this.greeting, signal);
    await this.execute('qmp_capabilities', undefined, signal);
  }

  execute<T = unknown>(
    command: string,
    args: Record<string, unknown> | undefined,
    signal: AbortSignal,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new HullError('ERR_VM_EXITED', 'QMP connection closed'));
    const id = String(this.nextId++);
    const reply = new Promise<T>((resolve, reject) => {
      this.waiters.set(id, { resolve: resolve as (v: unknown) => void, reject });
    });
    this.socket.write(`${JSON.stringify({ execute: command, arguments: args, id })}\n`);
    return raceSignal(reply, signal).finally(() => this.waiters.delete(id));
  }

  close(): void {
    this.socket.destroy();
  }

  private settle(message: Record<string, unknown>): void {
    const id = String(message.id);
    const waiter = this.waiters.get(id);
    if (!waiter) return;
    this.waiters.delete(id);
    if ('error' in message) {
      const error = message.error as { class?: string; desc?: string };
      waiter.reject(new HullError('ERR_INTERNAL', `QMP: ${error.desc ?? error.class ?? 'error'}`));
    } else {
      waiter.resolve(message.return);
    }
  }
}
