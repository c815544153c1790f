import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { type FileHandle, link, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { hostBootId } from '../sys/host-boot-id.js';
import { readJsonRecordOrNone } from '../sys/regular-file.js';
import { templateDir } from '../template/store.js';
import { TARGET_PAGE_BYTES } from './ram-page-filter.js';
import { type MemoryIdentity, sameMemory } from './template-pages.js';

/**
 * A paused sandbox's RAM base: its template's sealed memory as a file. A sandbox cloned from a
 * template maps that memory private; paused, it saves only the pages it wrote (see
 * ram-page-filter.ts), and the rest is the template's. The memory itself (a memfd held by a
 * process) is gone after `hull template rm` or a host reboot, so the pause keeps it on disk:
 *
 *   <state>/templates/<key>/ram.base        the memory's bytes, sparse (zero pages are holes)
 *   <state>/templates/<key>/ram.base.json   its size, SHA-256 and which memfd it was made from
 *
 * written once per template memory, and hard-linked into the paused sandbox's directory as
 * `ram.base`: the link keeps the bytes when the template goes. All root's and 0600, opened
 * with O_NOFOLLOW; the size and hash the saved-state record keeps are checked by the
 * descriptor the bytes are read through, so a changed or replaced base is refused.
 */
export interface RamBaseRecord {
  bytes: number;
  sha256: string;
  /** The memfd it is a copy of, and the host boot that memfd lived in (inode numbers restart). */
  memory: MemoryIdentity;
  hostBoot: string;
}

const BASE_FILE = 'ram.base';
const BASE_RECORD = 'ram.base.json';
const CHUNK_BYTES = 2 ** 20;
const ZERO_PAGE = Buffer.alloc(TARGET_PAGE_BYTES);

export function ramBasePath(dir: string): string {
  return join(dir, BASE_FILE);
}

/** Whether the memory `record` was made from is `memory`, held in this very boot. */
export async function isBaseOf(record: RamBaseRecord, memory: MemoryIdentity): Promise<boolean> {
  return sameMemory(record.memory, memory) && record.hostBoot === (await hostBootId());
}

/**
 * The base file of the template `key`'s memory, open at `memoryPath` (/proc/<holder>/fd/<n>),
 * whose identity is `memory`: made now unless the template's directory has it already.
 */
export async function templateRamBase(
  key: string,
  memoryPath: string,
  memory: MemoryIdentity,
  signal: AbortSignal,
): Promise<{ path: string; record: RamBaseRecord }> {
  const dir = templateDir(key);
  const path = ramBasePath(dir);
  const known = await readBaseRecord(dir);
  if (known && (await isBaseOf(known, memory)) && (await isBaseFileOf(path, known))) {
    return { path, record: known };
  }
  const record = await writeSparseCopy(memoryPath, path, signal);
  const made = { ...record, memory, hostBoot: await hostBootId() };
  await writeFileAtomic(join(dir, BASE_RECORD), `${JSON.stringify(made)}\n`, { mode: 0o600 });
  return { path, record: made };
}

/** Copies `from` to `to` (via `to`.new), writing only the pages that are not zero. */
async function writeSparseCopy(
  from: string,
  to: string,
  signal: AbortSignal,
): Promise<Pick<RamBaseRecord, 'bytes' | 'sha256'>> {
  const temporary = `${to}.new`;
  await rm(temporary, { force: true });
  const source = await open(from, 'r');
  const target = await open(
    temporary,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    const hash = createHash('sha256');
    const chunk = Buffer.alloc(CHUNK_BYTES);
    let bytes = 0;
    for (;;) {
      signal.throwIfAborted();
      const { bytesRead } = await source.read(chunk, 0, chunk.length, bytes);
      if (bytesRead === 0) break;
      hash.update(chunk.subarray(0, bytesRead));
      await writeNonZeroPages(target, chunk.subarray(0, bytesRead), bytes);
      bytes += bytesRead;
    }
    // The holes at the end are the file's too.
    await target.truncate(bytes);
    await target.sync();
    await target.close();
    await rename(temporary, to);
    return { bytes, sha256: hash.digest('hex') };
  } catch (err) {
    await target.close().catch(() => {});
    await rm(temporary, { force: true });
    throw err;
  } finally {
    await source.close();
  }
}

/** Writes the pages of `data` (at `offset` in `file`) that are not all zero: zero ones stay holes. */
export async function writeNonZeroPages(file: FileHandle, data: Buffer, offset: number): Promise<void> {
  let run = -1;
  for (let at = 0; at <= data.length; at += TARGET_PAGE_BYTES) {
    const zero =
      at === data.length ||
      data
        .subarray(at, at + TARGET_PAGE_BYTES)
        .equals(ZERO_PAGE.subarray(0, Math.min(TARGET_PAGE_BYTES, data.length - at)));
    if (!zero && run < 0) run = at;
    if (zero && run >= 0) {
      await file.write(data, run, at - run, offset + run);
      run = -1;
    }
  }
}

/**
 * Records in the saved directory `dir` that its base was made memory again as the memfd
 * `memory` (a resume whose template's memory was gone, see resume-base.ts): the VM resumed
 * over it, paused again, is still a clone of that base (savedRamBaseOf).
 */
export async function recordLoadedBase(
  dir: string,
  record: RamBaseRecord,
  memory: MemoryIdentity,
): Promise<void> {
  const loaded = { ...record, memory, hostBoot: await hostBootId() };
  await writeFileAtomic(join(dir, BASE_RECORD), `${JSON.stringify(loaded)}\n`, { mode: 0o600 });
}

/** The base already in saved directory `dir`, if the VM's RAM `memory` is it made memory again. */
export async function savedRamBaseOf(
  dir: string,
  memory: MemoryIdentity,
): Promise<RamBaseRecord | undefined> {
  const loaded = await readBaseRecord(dir);
  if (!loaded || !(await isBaseOf(loaded, memory))) return undefined;
  return (await isBaseFileOf(ramBasePath(dir), loaded)) ? loaded : undefined;
}

/** Whether `path` is a regular file of `record`'s size: a base written whole, kept as it was. */
async function isBaseFileOf(path: string, record: RamBaseRecord): Promise<boolean> {
  const file = await openBase(path).catch(() => undefined);
  const info = await file?.stat();
  await file?.close();
  return info?.isFile() === true && info.size === record.bytes;
}

/** The base record of a template's or a saved directory, if it is a whole one. */
async function readBaseRecord(dir: string): Promise<RamBaseRecord | undefined> {
  const record = await readJsonRecordOrNone(join(dir, BASE_RECORD), {
    maxBytes: 4096,
    why: 'it holds a size, a hash and two numbers',
    code: 'ERR_SAVED_STATE',
    missing: 'is missing',
    noFollow: true,
  });
  return isRamBaseRecord(record) ? record : undefined;
}

/** Removes a saved directory's base and its record. */
export async function removeRamBase(dir: string): Promise<void> {
  await rm(ramBasePath(dir), { force: true });
  await rm(join(dir, BASE_RECORD), { force: true });
}

/** Hard-links the base at `from` into the saved directory `dir` (an older link there goes). */
export async function linkRamBase(from: string, dir: string): Promise<void> {
  const to = ramBasePath(dir);
  await removeRamBase(dir);
  await link(from, to);
}

/** Opens a base file never through a symlink, nor waiting on a FIFO. */
function openBase(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
}

/**
 * The paused sandbox's base in `dir`, opened and checked against its record (what the save
 * linked: a regular file of this user's, 0600, of the recorded size); `refuse` makes the error.
 * Its hash is checked as it is read (readCheckedRamBase).
 */
export async function openRamBase(
  dir: string,
  record: RamBaseRecord,
  refuse: (why: string) => Error,
): Promise<FileHandle> {
  const file = await openBase(ramBasePath(dir)).catch((err: NodeJS.ErrnoException) => {
    throw refuse(
      err.code === 'ELOOP' ? 'its RAM base is a symlink' : `cannot open its RAM base (${err.code})`,
    );
  });
  try {
    checkBaseFile(await file.stat(), record, refuse);
    return file;
  } catch (err) {
    await file.close();
    throw err;
  }
}

export function checkBaseFile(info: Stats, record: RamBaseRecord, refuse: (why: string) => Error): void {
  if (!info.isFile()) throw refuse('its RAM base is not a regular file');
  if (info.uid !== process.getuid?.() || (info.mode & 0o077) !== 0)
    throw refuse(
      `its RAM base must be this user's and 0600 (owner ${info.uid}, mode ${(info.mode & 0o777).toString(8)})`,
    );
  if (info.size !== record.bytes)
    throw refuse(`its RAM base is ${info.size} bytes, ${record.bytes} were saved`);
}

/**
 * Reads the whole base through `file`, giving each chunk and its offset to `each`, and checks
 * the SHA-256 of all of it (holes read as zeros) against the record's once read.
 */
export async function readCheckedRamBase(
  file: FileHandle,
  record: RamBaseRecord,
  each: (chunk: Buffer, offset: number) => Promise<void>,
  refuse: (why: string) => Error,
  signal: AbortSignal,
): Promise<void> {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(CHUNK_BYTES);
  let offset = 0;
  while (offset < record.bytes) {
    signal.throwIfAborted();
    const { bytesRead } = await file.read(chunk, 0, Math.min(chunk.length, record.bytes - offset), offset);
    if (bytesRead === 0) throw refuse('its RAM base was cut short');
    hash.update(chunk.subarray(0, bytesRead));
    await each(chunk.subarray(0, bytesRead), offset);
    offset += bytesRead;
  }
  if (hash.digest('hex') !== record.sha256)
    throw refuse('its RAM base is not the one recorded at save (SHA-256)');
}

/** A record read back from JSON is one only with these fields of these kinds. */
export function isRamBaseRecord(value: unknown): value is RamBaseRecord {
  const r = value as Partial<RamBaseRecord> | undefined;
  return (
    typeof r === 'object' &&
    r !== null &&
    Number.isSafeInteger(r.bytes) &&
    (r.bytes ?? 0) > 0 &&
    typeof r.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(r.sha256) &&
    typeof r.memory?.dev === 'string' &&
    typeof r.memory?.ino === 'string' &&
    typeof r.hostBoot === 'string'
  );
}
