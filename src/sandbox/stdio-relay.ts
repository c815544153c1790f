import type { Readable, Writable } from 'node:stream';
import type { AgentClient, ProcessRef } from '../agent/client.js';
import { logger } from '../log.js';

/**
 * Once a process has exited, how long the guest may have nothing more to give before its
 * output is taken as complete: a process it left behind (a daemon) may hold the stream open
 * for ever. Only time the host spends waiting on the guest counts, never time spent waiting
 * for a slow reader on the host, so a slow reader still gets every byte.
 */
export const OUTPUT_IDLE_AFTER_EXIT_MS = 5000;
/**
 * After the exit, reads ask for this much at most: a small answer crosses the agent's port
 * quickly even on a loaded host, so the time a read waits is the guest's silence, not the
 * transfer of a large answer.
 */
const READ_AFTER_EXIT_BYTES = 64 * 1024;
/** The idle clock's tick: a host that stalls (a blocked event loop) adds at most two ticks. */
const IDLE_TICK_MS = 250;

/** What became of a relayed stream. */
export type RelayEnd = 'eof' | 'idle';

/**
 * Copies a guest process's stdout or stderr to a host stream until end of stream. Each read
 * is a long-poll call; the next is only sent once the host stream has taken the last chunk,
 * so a slow consumer slows the guest process rather than filling memory, and no deadline cuts
 * the copy short. Once `exited` resolves, a guest that has nothing to give for
 * OUTPUT_IDLE_AFTER_EXIT_MS ends the copy ('idle'). A host stream that is gone is no
 * reason to stop reading: the guest process would block on a full pipe.
 */
export async function relayOutput(
  agent: AgentClient,
  ref: ProcessRef,
  stream: 'stdout' | 'stderr',
  sink: Writable,
  options: { signal: AbortSignal; exited: Promise<unknown> },
): Promise<RelayEnd> {
  const idle = new IdleClock(options.exited);
  let flushed: Promise<void> = Promise.resolve();
  try {
    for (;;) {
      const read = idle.watch(options.signal);
      let data: Uint8Array;
      try {
        data = await agent.readOutput(
          ref,
          stream,
          read.signal,
          idle.exited ? READ_AFTER_EXIT_BYTES : undefined,
        );
      } catch (err) {
        if (read.timedOut()) {
          logger('stdio').debug({ ref, stream }, 'no output for a while after the exit');
          return 'idle';
        }
        throw err;
      } finally {
        read.dispose();
      }
      if (data.length === 0) return 'eof';
      if (!sink.writable) continue;
      flushed = new Promise<void>((resolve) => sink.write(data, () => resolve()));
      if (sink.writableNeedDrain) await drained(sink);
    }
  } finally {
    // The host stream's own buffer reaches its file before the caller may close it (a FIFO
    // whose reader is slow holds the last chunks there); a stream closed meanwhile ends it.
    if (sink.writable) await Promise.race([flushed, closed(sink)]);
  }
}

/** Resolves once `sink` has room again, or is gone. */
function drained(sink: Writable): Promise<void> {
  if (!sink.writable || !sink.writableNeedDrain) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      sink.off('drain', done);
      sink.off('close', done);
      sink.off('error', done);
      resolve();
    };
    sink.on('drain', done);
    sink.on('close', done);
    sink.on('error', done);
  });
}

/** Resolves once `sink` is closed or failed. */
function closed(sink: Writable): Promise<void> {
  if (sink.closed || sink.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    sink.once('close', () => resolve());
    sink.once('error', () => resolve());
  });
}

/**
 * Counts the time a read waits on the guest after the process has exited, in ticks, so a
 * host that was itself held up (a synchronous write to a slow pipe blocks the event loop)
 * never reads as a guest with nothing to say.
 */
class IdleClock {
  exited = false;

  constructor(exited: Promise<unknown>) {
    exited.then(
      () => {
        this.exited = true;
      },
      () => {
        this.exited = true;
      },
    );
  }

  watch(signal: AbortSignal): { signal: AbortSignal; timedOut(): boolean; dispose(): void } {
    const controller = new AbortController();
    let waited = 0;
    let last = Date.now();
    let timedOut = false;
    const timer = setInterval(() => {
      const now = Date.now();
      if (this.exited) waited += Math.min(now - last, 2 * IDLE_TICK_MS);
      last = now;
      if (waited >= OUTPUT_IDLE_AFTER_EXIT_MS) {
        timedOut = true;
        controller.abort();
      }
    }, IDLE_TICK_MS);
    return {
      signal: AbortSignal.any([signal, controller.signal]),
      timedOut: () => timedOut,
      dispose: () => clearInterval(timer),
    };
  }
}

/**
 * Copies a host stream into the guest process's stdin, closing it at end of stream. Returns a
 * function that stops relaying (once the process has exited there is nobody to read).
 */
export function relayInput(
  agent: AgentClient,
  ref: ProcessRef,
  source: Readable,
  signal: AbortSignal,
): () => void {
  const log = logger('stdio');
  let stopped = false;
  const onData = (chunk: Buffer) => {
    source.pause();
    agent.writeStdin(ref, chunk, signal).then(
      () => {
        if (!stopped) source.resume();
      },
      (err: unknown) => {
        log.debug({ err: String(err) }, 'stdin write failed; stopping stdin relay');
        stop();
      },
    );
  };
  const onEnd = () => {
    if (stopped) return;
    stopped = true;
    agent.closeStdin(ref, signal).catch(() => {});
  };
  const stop = () => {
    stopped = true;
    source.off('data', onData);
    source.off('end', onEnd);
    source.pause();
  };
  source.on('data', onData);
  source.on('end', onEnd);
  source.on('error', onEnd);
  return stop;
}
