import { constants, type FileHandle, lstat, open } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { run } from '../sys/exec.js';
import { stateFilePath } from './state-file.js';

/**
 * A snapshot that is never a file: a fork of one copy, whose parent's VM migrates straight
 * into the copy's VMM. `vm.state` in the snapshot's directory (root's, 0700) is then a FIFO:
 * the parent's monitor writes the migration stream into it, the copy's monitor hands its read
 * end to its VMM as the state to load. Nothing is written to disk, hashed or read back, and
 * the copy's VMM loads while the parent saves. The parent copies its disk while stopped,
 * before it opens the FIFO: the copy, which waits for the writer before starting its VMM, finds
 * its disk complete (see fork-source.ts).
 *
 * Both ends are opened without O_CREAT (a FIFO gone is ENOENT, never a new file) and block until
 * the other end is open; a side that fails before opening its end must not leave the other
 * waiting: see releaseStateStream.
 */
export async function makeStateStream(dir: string, signal: AbortSignal): Promise<void> {
  await run('mkfifo', ['-m', '600', '--', stateFilePath(dir)], {
    signal,
    purpose: 'making the state stream',
  });
}

/** Whether the snapshot in `dir` is a stream (a FIFO), not a saved file. */
export async function isStateStream(dir: string): Promise<boolean> {
  const info = await lstat(stateFilePath(dir)).catch(() => undefined);
  return info?.isFIFO() === true;
}

/** The read end, once a writer has opened the other (blocks until then). */
export function openStateStreamForReading(dir: string) {
  return open(stateFilePath(dir), constants.O_RDONLY);
}

/**
 * The write end as a stream, opened at its first write (so after whatever runs before the
 * VMM's first byte: the disk copy), never created; `opened()` opens it sooner (it resolves
 * once the reader has opened its end too).
 */
export function stateStreamSink(
  dir: string,
  written: (bytes: number) => void,
): Writable & { opened(): Promise<void> } {
  let file: Promise<FileHandle> | undefined;
  const opened = () => {
    file ??= open(stateFilePath(dir), constants.O_WRONLY);
    return file;
  };
  const writeChunk = (chunk: Buffer, done: (err?: Error | null) => void) => {
    opened()
      .then(async (f) => {
        for (let at = 0; at < chunk.length; ) at += (await f.write(chunk, at)).bytesWritten;
      })
      .then(
        () => {
          written(chunk.length);
          done();
        },
        (err: Error) => done(err),
      );
  };
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writeChunk(chunk, done);
    },
    // Chunks that queued while a write was under way go in one write.
    writev(chunks, done) {
      writeChunk(Buffer.concat(chunks.map((c) => c.chunk as Buffer)), done);
    },
    final(done) {
      if (!file) {
        done();
        return;
      }
      file.then((f) => f.close()).then(() => done(), done);
    },
    destroy(err, done) {
      if (!file) {
        done(err);
        return;
      }
      file
        .then((f) => f.close())
        .catch(() => {})
        .then(() => done(err));
    },
  });
  return Object.assign(sink, { opened: () => opened().then(() => {}) });
}

/**
 * Wakes whichever side still waits on the stream of `dir` (its peer failed): opens and closes
 * both ends, so a waiting writer then writes into a closed pipe (EPIPE) and a waiting reader
 * reads its end (EOF). Repeated until `settled` says both sides are done, since a side may
 * reach its open only later.
 */
export async function releaseStateStream(
  dir: string,
  settled: () => boolean,
  signal: AbortSignal,
): Promise<void> {
  const path = stateFilePath(dir);
  while (!settled() && !signal.aborted) {
    const reader = await open(path, constants.O_RDONLY | constants.O_NONBLOCK).catch(() => undefined);
    const writer = await open(path, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
    await writer?.close();
    await reader?.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
