import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileCached } from './code-cache.js';
import { CONTAINER_WORDS, LIGHT_WORDS, verbWord } from './verb-word.js';

/**
 * hull's command (dist/bundle/hull.cjs, which bin/hull runs). A CommonJS script, so Node starts
 * it without its ES module loader, and it loads one of three programs:
 *  - the light one (light-main.ts, hull-light.cjs) for `list`, `state` and the like, so that
 *    these verbs, which podman and containerd-style callers run for every container, cost
 *    about what Node's own start does;
 *  - the container one (container-main.ts, hull-container.cjs) for `run`, `create` and the
 *    monitor, whose modules would otherwise be resolved and compiled one by one before the
 *    container's VM can start;
 *  - the full one (main.ts, hull.mjs, every verb) for every other word.
 * The first two are compiled from a V8 code cache (code-cache.ts) that the build makes by
 * running them (scripts/bundle.mjs, with HULL_WRITE_CODE_CACHE=1). They read the same argv and
 * build the same command line as the full program for the verbs they share.
 */
const here = dirname(__filename);

function runCachedProgram(name: string): void {
  const file = join(here, name);
  const writeCache = process.env.HULL_WRITE_CODE_CACHE === '1';
  delete process.env.HULL_WRITE_CODE_CACHE;
  const program = compileCached(file, { readCache: !writeCache });
  if (writeCache) process.once('exit', () => program.writeCache());
  program.run(createRequire(file));
}

const word = verbWord(process.argv);
if (word !== undefined && LIGHT_WORDS.includes(word)) runCachedProgram('hull-light.cjs');
else if (word !== undefined && CONTAINER_WORDS.includes(word)) runCachedProgram('hull-container.cjs');
else {
  import(pathToFileURL(join(here, 'hull.mjs')).href).catch((err: unknown) => {
    process.stderr.write(`hull: cannot load ${join(here, 'hull.mjs')}: ${(err as Error).message}\n`);
    process.exitCode = 1;
  });
}
