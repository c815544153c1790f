import { closeSync, constants, fstatSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { Script } from 'node:vm';
import { HELPER_NODE_OPTIONS } from './helper-node-options.js';

/**
 * A CommonJS program compiled from a V8 code cache kept beside it (`<file>.v8cache`), made by
 * the build. V8 trusts a code cache whose header fits: it checks its own version, its flags
 * and the source's length, not the source's bytes nor the bytecode. So the cache carries a
 * header of hull's own, checked before V8 sees it: a magic, the size and the modification
 * time (to the nanosecond) of the source it was made from, as Python's bytecode caches do, and
 * the length of the V8 data. A cache that does not fit, is not owned by the script's owner
 * (root, or the user running hull), or is writable by group or others is not used: the script
 * is compiled from its source, which costs time, never behaviour.
 *
 * The cache is written whole or not at all (a rename), by its owner only. Its bytes are not
 * summed: a checksum needs node:zlib or node:crypto, and loading either cost 1.2-2.8 ms of
 * every hull command's start (about 23 ms for `node -e 0` here), for a file that, like the
 * programs and Node beside it, changes only by its build.
 */
const MAGIC = Buffer.from('hull-v8d');
const SIZE_AT = MAGIC.length;
const MTIME_AT = SIZE_AT + 8;
const LENGTH_AT = MTIME_AT + 8;
const HEADER_BYTES = LENGTH_AT + 4;

/**
 * The cache beside `file` for a Node started with `execArgv`: hull's helpers, which run with
 * V8 flags of their own (HELPER_NODE_OPTIONS), have a cache of their own, as V8 refuses one
 * made under other flags. Without it a container's monitor compiled its program from source,
 * 27 ms more of every `hull create` (measured side by side, 20 runs).
 */
export function codeCacheFile(file: string, execArgv: readonly string[] = process.execArgv): string {
  const helper =
    execArgv.length === HELPER_NODE_OPTIONS.length &&
    HELPER_NODE_OPTIONS.every((flag, i) => execArgv[i] === flag);
  return helper ? `${file}.helper.v8cache` : `${file}.v8cache`;
}

export interface CachedProgram {
  /** Whether V8 was given a cache and took it. */
  cacheUsed: boolean;
  /** Runs the program as Node runs a CommonJS module. */
  run(require: NodeJS.Require): void;
  /** Writes the cache of what has been compiled so far (the build calls it at exit). */
  writeCache(): void;
}

export function compileCached(file: string, options: { readCache: boolean }): CachedProgram {
  // The source's bytes and its size and time from one open file, so the cache is checked
  // against the source that is compiled.
  const fd = openSync(file, constants.O_RDONLY);
  let sourceBytes: Buffer;
  let source: SourceStamp;
  try {
    const info = fstatSync(fd, { bigint: true });
    source = { size: info.size, mtimeNs: info.mtimeNs, owner: Number(info.uid) };
    sourceBytes = readFileSync(fd);
  } finally {
    closeSync(fd);
  }
  const cacheFile = codeCacheFile(file);
  const cachedData = options.readCache ? trustedCache(cacheFile, source) : undefined;
  // esbuild writes ASCII only, so latin1 reads the source as it is, and faster than UTF-8.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${sourceBytes.toString('latin1')}\n})`,
    { filename: file, cachedData },
  );
  return {
    cacheUsed: cachedData !== undefined && !script.cachedDataRejected,
    run(require) {
      const module = { exports: {} };
      script.runInThisContext()(module.exports, require, module, file, file.replace(/\/[^/]*$/, ''));
    },
    writeCache() {
      const payload = script.createCachedData();
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header);
      header.writeBigUInt64LE(source.size, SIZE_AT);
      header.writeBigUInt64LE(source.mtimeNs, MTIME_AT);
      header.writeUInt32LE(payload.length, LENGTH_AT);
      // Renamed into place: a program starting meanwhile reads the old cache or the new one.
      const partial = `${cacheFile}.${process.pid}.partial`;
      writeFileSync(partial, Buffer.concat([header, payload]), { mode: 0o644 });
      renameSync(partial, cacheFile);
    },
  };
}

/** What the cache records of the source it was made from, and the source's owner. */
interface SourceStamp {
  size: bigint;
  mtimeNs: bigint;
  owner: number;
}

/** The cache's V8 data, if it is whole, made from this source, and trusted; else undefined. */
function trustedCache(cacheFile: string, source: SourceStamp): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const info = fstatSync(fd);
    const ownerTrusted = info.uid === source.owner && (info.uid === 0 || info.uid === process.geteuid?.());
    if (!info.isFile() || !ownerTrusted || (info.mode & 0o022) !== 0) return undefined;
    const data = readFileSync(fd);
    if (data.length <= HEADER_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    if (data.readBigUInt64LE(SIZE_AT) !== source.size || data.readBigUInt64LE(MTIME_AT) !== source.mtimeNs)
      return undefined;
    const payload = data.subarray(HEADER_BYTES);
    return data.readUInt32LE(LENGTH_AT) === payload.length ? payload : undefined;
  } finally {
    closeSync(fd);
  }
}
