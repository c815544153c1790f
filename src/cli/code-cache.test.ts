import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { installRoot } from '../paths.js';
import { codeCacheFile } from './code-cache.js';
import { HELPER_NODE_OPTIONS } from './helper-node-options.js';

const dir = mkdtempSync(join(tmpdir(), 'hull-code-cache-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const program = join(dir, 'program.cjs');
const cache = codeCacheFile(program);
/** A program as the build writes one: its first line names its build. */
const sourceOfBuild = (id: string, body = "return 'ran ' + sep;") =>
  `// hull-build ${id}\nfunction greet(sep) { ${body} }\nconsole.log(greet(require('node:path').sep));\n`;
const SOURCE = sourceOfBuild('0123456789abcdef0123456789abcdef');

/**
 * Runs `program` as entry.ts does, in a Node of its own (a cache V8 took and then found
 * damaged would crash the process, not fail an assertion), with `nodeFlags`; returns what
 * it printed and whether the cache was used. `write` makes the cache instead.
 */
function start(options: { write?: boolean; nodeFlags?: readonly string[] } = {}) {
  // A script file, not -e: Node's execArgv, which names the cache, is then the flags alone.
  const script = join(dir, 'start.mjs');
  writeFileSync(
    script,
    `import { createRequire } from 'node:module';
    const { compileCached } = await import(${JSON.stringify(new URL('./code-cache.js', import.meta.url).href)});
    const program = compileCached(${JSON.stringify(program)}, { readCache: ${!options.write} });
    program.run(createRequire(${JSON.stringify(program)}));
    if (${options.write === true}) program.writeCache();
    console.log(program.cacheUsed ? 'cache used' : 'compiled from source');`,
  );
  const child = spawnSync(process.execPath, [...(options.nodeFlags ?? []), script], { encoding: 'utf8' });
  return { status: child.status, signal: child.signal, lines: child.stdout.trim().split('\n') };
}

function freshCache(): Buffer {
  writeFileSync(program, SOURCE);
  assert.equal(start({ write: true }).status, 0);
  return readFileSync(cache);
}

test('a program starts from the cache made for it', () => {
  freshCache();
  assert.deepEqual(start(), { status: 0, signal: null, lines: ['ran /', 'cache used'] });
});

test('a cut or foreign cache is not given to V8: the program is compiled and runs', () => {
  const good = freshCache();
  for (const [what, bytes] of [
    ['cut short', good.subarray(0, good.length >> 1)],
    ['one byte short', good.subarray(0, good.length - 1)],
    ['empty', Buffer.alloc(0)],
    ['not a cache', Buffer.alloc(good.length, 7)],
  ] as const) {
    writeFileSync(cache, bytes);
    assert.deepEqual(start(), { status: 0, signal: null, lines: ['ran /', 'compiled from source'] }, what);
  }
});

test('a cache made for another build, or by a Node with other V8 flags, is not used', () => {
  freshCache();
  // Of the same length, which is all V8 compares: the build ID in hull's header tells them apart.
  const rebuilt = sourceOfBuild('fedcba9876543210fedcba9876543210', "return 'RAN ' + sep;");
  assert.equal(rebuilt.length, SOURCE.length);
  writeFileSync(program, rebuilt);
  assert.deepEqual(start().lines, ['RAN /', 'compiled from source']);
  freshCache();
  assert.deepEqual(start({ nodeFlags: ['--no-opt'] }).lines, ['ran /', 'compiled from source']);
});

test('a program that names no build gets no cache', () => {
  const good = freshCache();
  writeFileSync(program, SOURCE.replace('// hull-build', '// hull-built'));
  writeFileSync(cache, good);
  assert.deepEqual(start().lines, ['ran /', 'compiled from source']);
  rmSync(cache);
  assert.notEqual(start({ write: true }).status, 0);
  assert.ok(!existsSync(cache));
});

test('a cache that others could have written is not used', () => {
  freshCache();
  chmodSync(cache, 0o666);
  assert.deepEqual(start().lines, ['ran /', 'compiled from source']);
  chmodSync(cache, 0o644);
  assert.deepEqual(start().lines, ['ran /', 'cache used']);
});

test("hull's helpers, started with V8 flags of their own, have a cache of their own", () => {
  freshCache();
  const helper = { nodeFlags: HELPER_NODE_OPTIONS };
  assert.deepEqual(start(helper).lines, ['ran /', 'compiled from source']);
  assert.equal(start({ ...helper, write: true }).status, 0);
  assert.ok(existsSync(codeCacheFile(program, HELPER_NODE_OPTIONS)));
  assert.deepEqual(start(helper).lines, ['ran /', 'cache used']);
  assert.deepEqual(start().lines, ['ran /', 'cache used']);
});

test("the build's caches are taken by V8 under the flags each was made for", () => {
  const containerProgram = join(installRoot(), 'dist', 'bundle', 'hull-container.cjs');
  const check = join(dir, 'check.mjs');
  writeFileSync(
    check,
    `const { compileCached } = await import(${JSON.stringify(new URL('./code-cache.js', import.meta.url).href)});
    console.log(compileCached(${JSON.stringify(containerProgram)}, { readCache: true }).cacheUsed);`,
  );
  for (const nodeFlags of [[], HELPER_NODE_OPTIONS]) {
    const child = spawnSync(process.execPath, [...nodeFlags, check], { encoding: 'utf8' });
    assert.equal(child.stdout.trim(), 'true', `${nodeFlags.join(' ')}: ${child.stderr}`);
  }
});
