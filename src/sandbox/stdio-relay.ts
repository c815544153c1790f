import type { Readable, Writable } from 'node:stream';
import type { AgentClient, ProcessRef } from '../agent/client.js';
import { logger } from '../log.js';
import { settledWithin } from '../util/deadline.js';

/** After a process exits, how long its output may still drain (a daemon may hold it open). */
export const OUTPUT_DRAIN_MS = 3000;

/**
 * Copies a guest process's stdout or stderr to a host stream until end of stream. Each read
 * is a long-poll call; the next is only sent once the host stream has taken the last chunk,
 * so a slow consumer slows the guest process rather than filling memory.
 */
export async function relayOutput(
  agent: AgentClient,
  ref: ProcessRef,
  stream: 'stdout' | 'stderr',
  sink: Writable,
  signal: AbortSignal,
): Promise<void> {
  for (;;) {
    const data = await agent.readOutput(ref, stream, signal);
    if (data.length === 0) return;
    if (!sink.write(data)) {
      await new Promise<void>((resolve) => {
        const done = () => {
          sink.off('drain', done);
          sink.off('close', done);
          resolve();
        };
        sink.on('drain', done);
        sink.on('close', done);
      });
    }
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

/** Waits for the output relays to reach end of stream, but no longer than `ms`. */
export async function drainOutputs(outputs: Promise<void>[], ms = OUTPUT_DRAIN_MS): Promise<void> {
  await settledWithin(Promise.allSettled(outputs), ms);
}
