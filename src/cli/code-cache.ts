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
import { HELPER_NODE_OPTIONS } from './helper-node-options.js';

/**
 * A CommonJS program compiled from a V8 code cache kept beside it (`<file>.v8cache`), made by
 * the build. V8 trusts a code cache whose header fits: it checks its own version, its flags
 * and the source's length, not the source's bytes nor the bytecode. So the cache carries a
 * header of hull's own, checked before V8 sees it: a magic, the build ID the source it was
 * made from names on its first line (`// hull-build <32 hex digits>`, new at each build,
 * scripts/bundle.mjs), and the length of the V8 data. A source without an ID gets no cache.
 * A cache that does not fit, is not owned by the script's owner (root, or the user running
 * hull), or is writable by group or others is not used: the script is compiled from its
 * source, which costs time, never behaviour.
 *
 * The cache is written whole or not at all (a rename), by its owner only. Its bytes are not
 * summed: a checksum needs node:zlib or node:crypto, and loading either cost 1.2-2.8 ms of
 * every hull command's start (about 23 ms for `node -e 0` here), and a CRC-32 in JavaScript
 * took 8.6 ms; the file changes, like the programs and Node beside it, only by its build.
 */
const MAGIC = Buffer.from('hull-v8e');
const BUILD_LINE = Buffer.from('// hull-build ');
const BUILD_ID_BYTES = 32;
const ID_AT = MAGIC.length;
const LENGTH_AT = ID_AT + BUILD_ID_BYTES;
const HEADER_BYTES = LENGTH_AT + 4;

/** The build ID a program's first line names, if it names one. */
function buildIdOf(source: Buffer): Buffer | undefined {
  if (!source.subarray(0, BUILD_LINE.length).equals(BUILD_LINE)) return undefined;
  const id = source.subarray(BUILD_LINE.length, BUILD_LINE.length + BUILD_ID_BYTES);
  return id.length === BUILD_ID_BYTES && /^[0-9a-f]+$/.test(id.toString('latin1')) ? id : undefined;
}

/**
 * The cache beside `file` for a Node started with `execArgv`: hull's helpers, which run with
 * V8 flags of their own (HELPER_NODE_OPTIONS), have a cache of their own, as V8 refuses one
 * made under other flags. Without it a container's monitor compiled its program from source,
 * 19 ms more of every `hull create` (a monitor started for a missing bundle: 62.7 against
 * 82.1 ms, measured side by side, 20 runs).
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
  const sourceBytes = readFileSync(file);
  const buildId = buildIdOf(sourceBytes);
  const cacheFile = codeCacheFile(file);
  const cachedData =
    options.readCache && buildId ? trustedCache(cacheFile, buildId, statSync(file).uid) : undefined;
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
      if (!buildId) throw new Error(`${file} names no build ID: no code cache is made for it`);
      const payload = script.createCachedData();
      const header = Buffer.alloc(HEADER_BYTES);
      MAGIC.copy(header);
      buildId.copy(header, ID_AT);
      header.writeUInt32LE(payload.length, LENGTH_AT);
      // Renamed into place: a program starting meanwhile reads the old cache or the new one.
      const partial = `${cacheFile}.${process.pid}.partial`;
      writeFileSync(partial, Buffer.concat([header, payload]), { mode: 0o644 });
      renameSync(partial, cacheFile);
    },
  };
}

/** The cache's V8 data, if it is whole, made from this build, and trusted; else undefined. */
function trustedCache(cacheFile: string, buildId: Buffer, scriptOwner: number): Buffer | undefined {
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
    if (!data.subarray(ID_AT, ID_AT + BUILD_ID_BYTES).equals(buildId)) return undefined;
    const payload = data.subarray(HEADER_BYTES);
    return data.readUInt32LE(LENGTH_AT) === payload.length ? payload : undefined;
  } finally {
    closeSync(fd);
  }
}
