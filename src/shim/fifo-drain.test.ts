import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { FIFO_DRAIN_BOUND_MS, FIFO_DRAIN_STALL_MS, fifosDrained } from './fifo-drain.js';

/** A FIFO holding `bytes` unread: the shim's write end (as the shim opens it) and a client's read end. */
function fifoHolding(bytes: number): { writer: number; reader: number; close: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'hull-fifo-drain-'));
  const path = join(dir, 'stdout');
  execFileSync('mkfifo', [path]);
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const writer = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  if (bytes > 0) writeSync(writer, Buffer.alloc(bytes, 'x'));
  return {
    writer,
    reader,
    close: () => {
      closeSync(writer);
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Reads `chunk` bytes from `fd` every `everyMs` until stopped; the count read so far. */
function readSlowly(fd: number, chunk: number, everyMs: number): { read: () => number; stop: () => void } {
  let read = 0;
  const buffer = Buffer.alloc(chunk);
  const timer = setInterval(() => {
    try {
      read += readSync(fd, buffer, 0, chunk, null);
    } catch {}
  }, everyMs);
  return { read: () => read, stop: () => clearInterval(timer) };
}

async function timed(wait: Promise<void>): Promise<number> {
  const began = Date.now();
  await wait;
  return Date.now() - began;
}

describe('the wait for a client to read the output FIFOs before an exit is reported', () => {
  test('FIFOs already read cost no wait beyond one run of the helper', async () => {
    const a = fifoHolding(0);
    const b = fifoHolding(0);
    try {
      const ms = await timed(fifosDrained([a.writer, b.writer], new AbortController().signal));
      assert.ok(ms < 500, `resolved after ${ms} ms`);
    } finally {
      a.close();
      b.close();
    }
  });

  test('a slow reader that keeps reading is waited for until it has read everything', async () => {
    const fifo = fifoHolding(40_000);
    const reader = readSlowly(fifo.reader, 8000, 300);
    try {
      const ms = await timed(fifosDrained([fifo.writer], new AbortController().signal));
      assert.equal(reader.read(), 40_000, `all was read when the wait ended (${ms} ms)`);
      assert.ok(ms < FIFO_DRAIN_BOUND_MS, `resolved after ${ms} ms`);
    } finally {
      reader.stop();
      fifo.close();
    }
  });

  test(`a reader that never reads holds the exit ${FIFO_DRAIN_STALL_MS} ms, no longer`, async () => {
    const fifo = fifoHolding(1000);
    try {
      const ms = await timed(fifosDrained([fifo.writer], new AbortController().signal));
      assert.ok(ms >= FIFO_DRAIN_STALL_MS - 50 && ms < FIFO_DRAIN_STALL_MS + 1500, `resolved after ${ms} ms`);
    } finally {
      fifo.close();
    }
  });

  test(`a reader that takes a byte now and then holds the exit ${FIFO_DRAIN_BOUND_MS} ms at most`, async () => {
    const fifo = fifoHolding(1000);
    const reader = readSlowly(fifo.reader, 1, FIFO_DRAIN_STALL_MS / 2);
    try {
      const ms = await timed(fifosDrained([fifo.writer], new AbortController().signal));
      assert.ok(ms >= FIFO_DRAIN_BOUND_MS - 50 && ms < FIFO_DRAIN_BOUND_MS + 1500, `resolved after ${ms} ms`);
    } finally {
      reader.stop();
      fifo.close();
    }
  });

  test('closing the IO ends the wait at once', async () => {
    const fifo = fifoHolding(1000);
    const closing = new AbortController();
    setTimeout(() => closing.abort(), 200);
    try {
      const ms = await timed(fifosDrained([fifo.writer], closing.signal));
      assert.ok(ms < 1000, `resolved after ${ms} ms`);
    } finally {
      fifo.close();
    }
  });
});
