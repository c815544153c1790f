import type { Readable } from 'node:stream';

const HIGH_WATER = 1 << 20;

/**
 * A process's stdout or stderr, read by the host through long-poll ReadStdout/ReadStderr
 * calls. Data waits here until asked for; past 1 MiB the pipe is paused, so a slow reader
 * slows the writer instead of filling guest memory. An empty answer means end of stream.
 */
export class OutputPipe {
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private wake: (() => void) | undefined;

  constructor(private readonly source: Readable | null) {
    if (!source || source.readableEnded || source.destroyed) {
      this.ended = true;
      return;
    }
    source.on('data', (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.size += chunk.length;
      if (this.size >= HIGH_WATER) source.pause();
      this.notify();
    });
    const end = () => {
      this.ended = true;
      this.notify();
    };
    source.on('end', end);
    source.on('error', end);
    source.on('close', end);
  }

  async read(maxLength: number, signal: AbortSignal): Promise<Buffer> {
    while (this.size === 0 && !this.ended) {
      // An abort listener added to a signal already aborted never runs: the read would wait
      // for output that may never come.
      signal.throwIfAborted();
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal.reason);
        this.wake = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        signal.addEventListener('abort', onAbort, { once: true });
      });
    }
    if (this.size === 0) return Buffer.alloc(0);
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, Math.max(1, maxLength || all.length));
    const rest = all.subarray(out.length);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.size = rest.length;
    if (this.size < HIGH_WATER) this.source?.resume();
    return Buffer.from(out);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
