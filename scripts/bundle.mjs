// Bundles hull's programs into one file each: the host CLI and the containerd shim (fast
// start: one file to load, not hundreds of modules), and the guest agent, as CommonJS because
// that is what `node --build-snapshot` takes (the image builder snapshots it; see
// guest/agent/entry.ts).
import { mkdirSync } from 'node:fs';
import { build } from 'esbuild';

const common = { bundle: true, platform: 'node', target: 'node20', sourcemap: 'linked', logLevel: 'warning' };

await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/bundle/hull.mjs',
  format: 'esm',
  // CommonJS dependencies (pino) call require(); give the ESM bundle one.
  banner: {
    js: "import { createRequire as __hullRequire } from 'node:module'; const require = __hullRequire(import.meta.url);",
  },
});
await build({
  ...common,
  entryPoints: ['src/shim/main.ts'],
  outfile: 'dist/bundle/containerd-shim-hull-v2.mjs',
  format: 'esm',
  banner: {
    js: "import { createRequire as __hullRequire } from 'node:module'; const require = __hullRequire(import.meta.url);",
  },
});
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
