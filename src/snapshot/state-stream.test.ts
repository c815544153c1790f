import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import { stateFilePath } from './state-file.js';
import {
  isStateStream,
  makeStateStream,
  openStateStreamForReading,
  releaseStateStream,
  stateStreamSink,
} from './state-stream.js';

async function withDir(act: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hull-state-stream-'));
  try {
    await act(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('what the sink writes, the reader reads, counted', () =>
  withDir(async (dir) => {
    await makeStateStream(dir, AbortSignal.timeout(5000));
    assert.equal(await isStateStream(dir), true);
    const data = Buffer.alloc(3 * 2 ** 20 + 5, 7);
    let counted = 0;
    const sink = stateStreamSink(dir, (n) => {
      counted += n;
    });
    const writing = pipeline(Readable.from([data.subarray(0, 100), data.subarray(100)]), sink);
    const file = await openStateStreamForReading(dir);
    const read = await file.readFile();
    await file.close();
    await writing;
    assert.equal(read.length, data.length);
    assert.equal(counted, data.length);
  }));

test('a regular file is not a stream, and a stream gone is never made a file', () =>
  withDir(async (dir) => {
    await writeFile(stateFilePath(dir), 'QEVM');
    assert.equal(await isStateStream(dir), false);
    await rm(stateFilePath(dir));
    const sink = stateStreamSink(dir, () => {});
    await assert.rejects(pipeline(Readable.from([Buffer.from('x')]), sink), /ENOENT/);
    assert.equal(await isStateStream(dir), false);
  }));

test('a reader whose writer failed is woken, and reads the end', () =>
  withDir(async (dir) => {
    await makeStateStream(dir, AbortSignal.timeout(5000));
    let settled = false;
    const reading = openStateStreamForReading(dir).then(async (file) => {
      const read = await file.readFile();
      await file.close();
      settled = true;
      return read;
    });
    await releaseStateStream(dir, () => settled, AbortSignal.timeout(10_000));
    assert.equal((await reading).length, 0);
  }));

test('a writer whose reader failed is woken, and fails', () =>
  withDir(async (dir) => {
    await makeStateStream(dir, AbortSignal.timeout(5000));
    let settled = false;
    const writing = pipeline(
      Readable.from([Buffer.alloc(2 ** 20)]),
      stateStreamSink(dir, () => {}),
    ).finally(() => {
      settled = true;
    });
    writing.catch(() => {});
    await releaseStateStream(dir, () => settled, AbortSignal.timeout(10_000));
    await assert.rejects(writing, /EPIPE/);
  }));
