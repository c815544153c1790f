import { availableParallelism } from 'node:os';
import { HullError } from '../errors.js';

/**
 * How many sandboxes the server boots at once by default: two per host CPU. A VM's start is
 * CPU-bound (QEMU loading its template, the guest's agent, crun), so a burst of creates all
 * started together only shares the same CPUs among more VMs: measured on 2 CPUs under TCG, 49
 * creates at once each took 81-90 s and 3 passed the 60 s boot deadline (ERR_AGENT_TIMEOUT),
 * while one alone takes about a second.
 */
export function defaultStartSlots(): number {
  return Math.max(2, 2 * availableParallelism());
}

/**
 * A count of slots, taken in arrival order: what is past the count waits for one to be given
 * back, with no deadline of its own running (a VM's boot deadline starts once its turn has
 * come). A waiter whose signal aborts leaves the queue with the signal's reason.
 */
export class StartSlots {
  private taken = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new HullError('ERR_INTERNAL', `bad slot count ${size}`);
  }

  /** Runs `act` once a slot is free, and gives the slot back when it settles. */
  async run<T>(signal: AbortSignal, act: () => Promise<T>): Promise<T> {
    await this.take(signal);
    try {
      return await act();
    } finally {
      this.give();
    }
  }

  /** Creates waiting for a slot now. */
  queued(): number {
    return this.waiting.length;
  }

  private take(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.taken < this.size) {
      this.taken++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const at = this.waiting.indexOf(waiter);
        if (at >= 0) this.waiting.splice(at, 1);
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(waiter);
    });
  }

  private give(): void {
    // The slot passes straight to the next waiter: `taken` stays as it is.
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.taken--;
  }
}
