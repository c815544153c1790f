import {
  closeSync,
  constants,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';

/**
 * A CommonJS program compiled from a V8 code cache kept beside it (`<file>.v8cache`), made by
 * the build. V8 trusts a code cache whose header fits: it checks its own version, its flags
 * and the source's length, not the bytecode, and a cache damaged inside crashes Node. So the
 * cache carries a header of hull's own, checked before V8 sees it: a magic, the CRC-32 of the
 * source it was made from and of the cache itself. A cache that does not fit, is not owned by
 * the script's owner (root, or the user running hull), or is writable by group or others is
 * not used: the script is compiled from its source, which costs time, never behaviour.
 */
const MAGIC = Buffer.from('hull-v8c');
const HEADER_BYTES = MAGIC.length + 8;

export function codeCacheFile(file: string): string {
  return `${file}.v8cache`;
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
  const sourceBytes = readFileSync(file);
  const sourceCrc = crc32(sourceBytes);
  const cacheFile = codeCacheFile(file);
  const cachedData = options.readCache ? trustedCache(cacheFile, sourceCrc, statSync(file).uid) : undefined;
  // esbuild writes ASCII only, so latin1 reads the source as it is, and faster than UTF-8.
  const source = sourceBytes.toString('latin1');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
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
      header.writeUInt32LE(sourceCrc, MAGIC.length);
      header.writeUInt32LE(crc32(payload), MAGIC.length + 4);
      // Renamed into place: a program starting meanwhile reads the old cache or the new one.
      const partial = `${cacheFile}.${process.pid}.partial`;
      writeFileSync(partial, Buffer.concat([header, payload]), { mode: 0o644 });
      renameSync(partial, cacheFile);
    },
  };
}

/** The cache's V8 data, if it is whole, made from this source, and trusted; else undefined. */
function trustedCache(cacheFile: string, sourceCrc: number, scriptOwner: number): Buffer | undefined {
  let fd: number;
  try {
    fd = openSync(cacheFile, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const info = fstatSync(fd);
    const ownerTrusted = info.uid === scriptOwner && (info.uid === 0 || info.uid === process.geteuid?.());
    if (!info.isFile() || !ownerTrusted || (info.mode & 0o022) !== 0) return undefined;
    const data = readFileSync(fd);
    if (data.length <= HEADER_BYTES || !data.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    if (data.readUInt32LE(MAGIC.length) !== sourceCrc) return undefined;
    const payload = data.subarray(HEADER_BYTES);
    return data.readUInt32LE(MAGIC.length + 4) === crc32(payload) ? payload : undefined;
  } finally {
    closeSync(fd);
  }
}
