import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { LIGHT_WORDS, verbWord } from './verb-word.js';

/**
 * hull's command (dist/bundle/hull.cjs, which bin/hull runs). A CommonJS script, so Node starts
 * it without its ES module loader, and it loads one of two programs:
 *  - the light one (light-main.ts, hull-light.cjs) for `list`, `state` and the like, compiled
 *    from the V8 code cache the build made for it, so that these verbs, which podman and
 *    containerd-style callers run for every container, cost about what Node's own start does;
 *  - the full one (main.ts, hull.mjs, every verb) for every other word.
 * Both read the same argv and build the same command line for the verbs they share.
 *
 * The cache is V8's bytecode for the light program after a run of `list`, made by the build
 * (scripts/bundle.mjs runs it with HULL_WRITE_CODE_CACHE=1) and named after the size and modification
 * time of the script it was made from, so a rebuilt script never meets an old cache. V8 itself
 * refuses a cache made by another V8 version or with other flags, and the script is then
 * compiled from its source: a cache that does not fit costs time, never behaviour.
 */
const here = dirname(__filename);

function runLightProgram(): void {
  const file = join(here, 'hull-light.cjs');
  const { size, mtimeMs } = statSync(file);
  const cacheFile = join(here, `hull-light.cjs.${size}-${Math.trunc(mtimeMs)}.v8cache`);
  let cachedData: Buffer | undefined;
  const writeCache = process.env.HULL_WRITE_CODE_CACHE === '1';
  delete process.env.HULL_WRITE_CODE_CACHE;
  if (!writeCache) {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // No cache (a build without one): compiled from the source.
    }
  }
  // esbuild writes ASCII only, so latin1 reads the source as it is, and faster than UTF-8.
  const source = readFileSync(file, 'latin1');
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  if (writeCache) {
    process.once('exit', () => writeFileSync(cacheFile, script.createCachedData()));
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, here);
}

const word = verbWord(process.argv);
if (word !== undefined && LIGHT_WORDS.includes(word)) runLightProgram();
else {
  import(pathToFileURL(join(here, 'hull.mjs')).href).catch((err: unknown) => {
    process.stderr.write(`hull: cannot load ${join(here, 'hull.mjs')}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
