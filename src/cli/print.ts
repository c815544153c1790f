import { writeSync } from 'node:fs';
import { HullError } from '../errors.js';

const OUTPUT_GONE = "the reader of hull's output has gone (EPIPE): nothing more is printed";

/**
 * What a verb prints, written straight to descriptor 1 (or 2). A short-lived command that
 * prints a line need not make process.stdout: Node builds it on first use, a stream over a
 * file, a pipe or a terminal, and loading the stream modules for it cost about 2.3 ms of
 * `hull list`'s start (`node -e 0` takes about 23 ms here), which podman pays for every
 * `state`. The write is whole before this returns, as process.stdout's is for files and pipes.
 * A descriptor that is non-blocking (EAGAIN, a full pipe: Node makes a pipe's so once
 * process.stdout exists) gets the rest, and all later text, through Node's stream, which
 * waits for it and keeps the order. A reader that has gone (EPIPE, `hull list | head -0`) ends
 * the verb with a one-line error; other failures are thrown as they are.
 */
export function printOut(text: string): void {
  try {
    print(1, text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPIPE') throw err;
    throw new HullError('ERR_OUTPUT', OUTPUT_GONE);
  }
}

/** As printOut, on descriptor 2: hull's one-line errors. A stderr that fails is not told so. */
export function printErr(text: string): void {
  try {
    print(2, text);
  } catch {}
}

/** The descriptors whose text now goes through Node's stream, after an EAGAIN. */
const streamed = new Set<1 | 2>();

function print(fd: 1 | 2, text: string): void {
  const bytes = Buffer.from(text);
  let written = 0;
  if (!streamed.has(fd)) {
    try {
      while (written < bytes.length) written += writeSync(fd, bytes, written);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      streamed.add(fd);
      // Its failures come later, as events: a reader gone is said as a synchronous one is.
      streamOf(fd).on('error', (streamErr: NodeJS.ErrnoException) => {
        if (fd === 1 && streamErr.code === 'EPIPE') printErr(`hull: ${OUTPUT_GONE}\n`);
        process.exitCode ||= 1;
      });
    }
  }
  streamOf(fd).write(bytes.subarray(written));
}

/** Node's stream for `fd`, made by Node on this first read of it. */
function streamOf(fd: 1 | 2): NodeJS.WriteStream {
  return fd === 1 ? process.stdout : process.stderr;
}
