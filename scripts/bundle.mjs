// Bundles hull's programs: the host CLI and the containerd shim (fast start: a few files to
// load, not hundreds of modules), and the guest agent in one file, as CommonJS because
// that is what `node --build-snapshot` takes (the image builder snapshots it; see
// guest/agent/entry.ts).
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
// Compiled by tsc, which the build runs first.
import { HELPER_NODE_OPTIONS } from '../dist/src/cli/helper-node-options.js';
import { onUse } from './node-modules-on-use.mjs';

const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' };
// The host programs without their whitespace and with shorter syntax, names kept (stack traces
// still name functions): less source for Node to read and to keep in every long-lived process
// (a container's monitor held 1.4 MiB less resident memory in a measured run).
const host = { ...common, minifyWhitespace: true, minifySyntax: true };

// The host programs, each split into chunks: a verb's modules are chunks that only that verb
// loads (src/cli/verbs.ts). Each program has its chunks apart: shared ones would be split finer,
// and every chunk is one more module to load at start. The chunks of an earlier build go first.
for (const [name, entry] of [
  ['hull', 'src/cli/main.ts'],
  ['containerd-shim-hull-v2', 'src/shim/main.ts'],
]) {
  rmSync(`dist/bundle/${name}-chunks`, { recursive: true, force: true });
  await build({
    ...host,
    entryPoints: { [name]: entry },
    outdir: 'dist/bundle',
    outExtension: { '.js': '.mjs' },
    chunkNames: `${name}-chunks/[name]-[hash]`,
    format: 'esm',
    splitting: true,
    plugins: [onUse],
    // CommonJS dependencies (pino) call require(); give the ESM bundle one.
    banner: {
      js: "import { createRequire as __hullRequire } from 'node:module'; const require = __hullRequire(import.meta.url);",
    },
  });
}
// The container program's startup snapshot goes before the program it was made of is rewritten
// (bin/hull uses none that is missing).
for (const old of ['hull-snapshot.node', 'hull-container.blob'])
  rmSync(`dist/bundle/${old}`, { force: true });
// hull's command (src/cli/entry.ts) and its light and container programs, CommonJS so that Node loads
// them without its ES module loader; the light and container programs start from a V8 code cache made
// here, by a run of each (see entry.ts and src/cli/code-cache.ts).
for (const [name, entry] of [
  ['hull', 'src/cli/entry.ts'],
  ['hull-light', 'src/cli/light-main.ts'],
  ['hull-container', 'src/cli/container-main.ts'],
]) {
  await build({
    ...host,
    entryPoints: [entry],
    outfile: `dist/bundle/${name}.cjs`,
    format: 'cjs',
    plugins: [onUse],
    // import.meta.url (paths.ts) in a CommonJS file, made only when read.
    define: { 'import.meta': '__hullImportMeta' },
    // The first line names this build of the program: its code cache is used only with the
    // source of the same build (src/cli/code-cache.ts).
    banner: {
      js: `// hull-build ${randomBytes(16).toString('hex')}\nvar __hullImportMeta = { get url() { return require('node:url').pathToFileURL(__filename).href; } };`,
    },
  });
}
for (const old of readdirSync('dist/bundle').filter((f) => f.endsWith('.v8cache') || f.endsWith('.partial')))
  rmSync(`dist/bundle/${old}`);
{
  // `list` on an empty root; `run` of a bundle that is not there, which compiles its command
  // line and the modules it loads, then ends with its one-line error before anything is made;
  // the monitor likewise, under the V8 flags hull's helpers run with, for the cache of their
  // own (src/cli/code-cache.ts). Each writes its program's cache as it exits.
  const root = mkdtempSync(join(tmpdir(), 'hull-code-cache-'));
  const noBundle = join(root, 'no-bundle');
  try {
    for (const [cache, nodeFlags, words] of [
      ['hull-light.cjs.v8cache', [], ['list']],
      ['hull-container.cjs.v8cache', [], ['run', '--bundle', noBundle, 'code-cache']],
      [
        'hull-container.cjs.helper.v8cache',
        HELPER_NODE_OPTIONS,
        ['_monitor', '--bundle', noBundle, 'code-cache'],
      ],
    ]) {
      spawnSync(process.execPath, [...nodeFlags, 'dist/bundle/hull.cjs', '--root', root, ...words], {
        env: { ...process.env, HULL_WRITE_CODE_CACHE: '1' },
        stdio: 'ignore',
      });
      if (!existsSync(`dist/bundle/${cache}`)) throw new Error(`no code cache ${cache}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
{
  // The container program's startup snapshot (src/cli/startup-snapshot.ts), made by this node in
  // this directory, the one it is used from, for bin/hull's `run` and `create`. The stamp, made
  // last, carries this node's mtime: bin/hull gives the blob only to that node.
  const partial = 'dist/bundle/hull-container.blob.partial';
  const made = spawnSync(
    process.execPath,
    ['--snapshot-blob', partial, '--build-snapshot', 'dist/bundle/hull-container.cjs'],
    {
      encoding: 'utf8',
      env: { ...process.env, NODE_OPTIONS: '' },
    },
  );
  if (made.status !== 0) throw new Error(`cannot make hull-container.blob: ${made.stderr || made.signal}`);
  chmodSync(partial, 0o644);
  renameSync(partial, 'dist/bundle/hull-container.blob');
  const stamp = 'dist/bundle/hull-snapshot.node';
  writeFileSync(
    stamp,
    `the startup snapshot here is ${process.execPath}'s (${process.version}), whose mtime this has\n`,
    {
      mode: 0o644,
    },
  );
  const touched = spawnSync('touch', ['-r', process.execPath, stamp]);
  if (touched.status !== 0) throw new Error(`cannot stamp the startup snapshot: ${touched.stderr}`);
}
await build({
  ...common,
  entryPoints: ['guest/agent/entry.ts'],
  outfile: 'dist/bundle/agent.cjs',
  format: 'cjs',
  minify: true,
});

// hull's C programs for the host (src/sys/host-programs.ts says what each does that Node cannot).
mkdirSync('dist/native', { recursive: true });
const { compileHostPrograms } = await import('../dist/src/sys/host-programs.js');
await compileHostPrograms({ compiler: 'cc', repository: '.', outDir: 'dist/native' });
