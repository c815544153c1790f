import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { build, type Plugin } from 'esbuild';

// The build's plugin (scripts/node-modules-on-use.mjs), from dist/src/cli/.
const { onUse } = (await import(
  new URL('../../../scripts/node-modules-on-use.mjs', import.meta.url).href
)) as {
  onUse: Plugin;
};

const dir = mkdtempSync(join(tmpdir(), 'hull-on-use-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A program importing the two modules every way hull's code and its dependencies do. */
const PROGRAM = `
import { readFile, constants } from 'node:fs/promises';
import * as fsPromises from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
const loaded = () =>
  process.moduleLoadList.filter((m) => m === 'NativeModule fs/promises' || m === 'NativeModule child_process');
const report = { atStart: loaded() };
(async () => {
  report.named = await readFile(process.argv[2], 'utf8');
  report.namespace = typeof fsPromises.stat;
  report.constant = constants.R_OK;
  report.dynamic = typeof (await import('node:fs/promises')).access;
  report.required = typeof require('node:child_process').spawn;
  report.spawned = spawnSync('true').status;
  report.atEnd = loaded().sort();
  console.log(JSON.stringify(report));
})();
`;

test('node:fs/promises and node:child_process load when first used, in both kinds of bundle', async () => {
  const entry = join(dir, 'program.mjs');
  writeFileSync(entry, PROGRAM);
  const text = join(dir, 'text');
  writeFileSync(text, 'read\n');
  const outputs = {
    // As the light and container programs are bundled.
    cjs: { format: 'cjs' as const, outfile: join(dir, 'cjs', 'program.cjs') },
    // As the full program is: split into chunks, with a require() for CommonJS dependencies.
    esm: {
      format: 'esm' as const,
      splitting: true,
      outdir: join(dir, 'esm'),
      outExtension: { '.js': '.mjs' },
      banner: {
        js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
      },
    },
  };
  for (const [kind, options] of Object.entries(outputs)) {
    await build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      logLevel: 'error',
      plugins: [onUse],
      ...options,
    });
    const program = kind === 'cjs' ? outputs.cjs.outfile : join(dir, 'esm', 'program.mjs');
    const child = spawnSync(process.execPath, [program, text], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    assert.deepEqual(
      JSON.parse(child.stdout),
      {
        atStart: [],
        named: 'read\n',
        namespace: 'function',
        constant: 4,
        dynamic: 'function',
        required: 'function',
        spawned: 0,
        atEnd: ['NativeModule child_process', 'NativeModule fs/promises'],
      },
      kind,
    );
  }
});
