import type { Readable, Writable } from 'node:stream';
import type { AgentClient, ProcessRef } from '../agent/client.js';
import { logger } from '../log.js';

/**
 * How long one read may wait in the guest for output before the guest answers that it had
 * none: while the process runs, a long poll (a read then costs the guest one request per
 * period); once it has exited, short, so a process it left holding the stream (a daemon) is
 * noticed soon.
 */
const GUEST_WAIT_MS = 10_000;
const GUEST_WAIT_AFTER_EXIT_MS = 1000;
/**
 * Once the process has exited, this many reads in a row that found nothing end the copy: the
 * guest itself had nothing to give for that long (its own clock, so a host or guest starved
 * of CPU never reads as silent), and nothing is ever taken from it and dropped.
 */
export const SILENT_READS_AFTER_EXIT = 5;
/**
 * After the exit, reads ask for this much at most: a small answer crosses the agent's port
 * quickly even on a loaded host.
 */
const READ_AFTER_EXIT_BYTES = 64 * 1024;

/** What became of a relayed stream. */
export type RelayEnd = 'eof' | 'idle';

/**
 * Copies a guest process's stdout or stderr to a host stream until end of stream. Each read
 * is a long-poll call; the next is only sent once the host stream has taken the last chunk,
 * so a slow consumer slows the guest process rather than filling memory, and no deadline cuts
 * the copy short. Once `exited` resolves, a guest that has nothing to give for
 * SILENT_READS_AFTER_EXIT reads in a row ends the copy ('idle'). A host stream that is gone (or
 * failed) is no reason to stop reading: the guest process would block on a full pipe.
 */
export async function relayOutput(
  agent: AgentClient,
  ref: ProcessRef,
  stream: 'stdout' | 'stderr',
  sink: Writable,
  options: { signal: AbortSignal; exited: Promise<unknown> },
): Promise<RelayEnd> {
  let exited = false;
  const markExited = () => {
    exited = true;
  };
  options.exited.then(markExited, markExited);
  let silentReads = 0;
  let flushed: Promise<void> = Promise.resolve();
  // A host stream whose reader has gone (`hull run … | head -1`: EPIPE) fails with an 'error'
  // event, which unheard would end hull and leave its VM running. Its failure ends the copy to
  // it, not the reading: what the process writes after is read and dropped (see above).
  const dropOutput = (err: Error) =>
    logger('stdio').debug({ ref, stream, err: err.message }, 'the host stream failed; the rest is dropped');
  sink.on('error', dropOutput);
  try {
    for (;;) {
      const afterExit = exited;
      const data = await agent.readOutput(ref, stream, options.signal, {
        guestWaitMs: afterExit ? GUEST_WAIT_AFTER_EXIT_MS : GUEST_WAIT_MS,
        maxLength: afterExit ? READ_AFTER_EXIT_BYTES : undefined,
      });
      if (data === undefined) {
        silentReads = afterExit ? silentReads + 1 : 0;
        if (silentReads < SILENT_READS_AFTER_EXIT) continue;
        logger('stdio').debug({ ref, stream }, 'no output for a while after the exit');
        return 'idle';
      }
      silentReads = 0;
      if (data.length === 0) return 'eof';
      if (!sink.writable) continue;
      flushed = new Promise<void>((resolve) => sink.write(data, () => resolve()));
      if (sink.writableNeedDrain) await drained(sink);
    }
  } finally {
    // The host stream's own buffer reaches its file before the caller may close it (a FIFO
    // whose reader is slow holds the last chunks there); a stream closed meanwhile ends it.
    if (sink.writable) await Promise.race([flushed, closed(sink)]);
    // A stream that failed has its 'error' event still to come (it is emitted on a later
    // tick): the listener stays with it, as the stream is dead.
    if (!sink.errored && !sink.destroyed) sink.off('error', dropOutput);
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
