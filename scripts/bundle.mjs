// Bundles hull's two programs into one file each: the host CLI (fast start: one file to
// load, not hundreds of modules) and the guest agent (copied into the guest image).
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
  // CommonJS dependencies (pino) call require(); give the ESM bundle one.
  banner: { js: "import { createRequire as __hullRequire } from 'node:module'; const require = __hullRequire(import.meta.url);" },
};

await build({ ...common, entryPoints: ['src/cli/main.ts'], outfile: 'dist/bundle/hull.mjs' });
await build({ ...common, entryPoints: ['guest/agent/main.ts'], outfile: 'dist/bundle/agent.mjs', minify: true });
