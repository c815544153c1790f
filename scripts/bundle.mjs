// Bundles hull's programs into one file each: the host CLI and the containerd shim (fast
// start: one file to load, not hundreds of modules), and the guest agent, as CommonJS because
// that is what `node --build-snapshot` takes (the image builder snapshots it; see
// guest/agent/entry.ts).
import { execFileSync } from 'node:child_process';
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

// hull-tty passes terminals over unix sockets, which Node cannot do (src/sys/tty/hull-tty.c).
mkdirSync('dist/native', { recursive: true });
execFileSync('cc', ['-Os', '-Wall', '-o', 'dist/native/hull-tty', 'src/sys/tty/hull-tty.c'], {
  stdio: 'inherit',
});
// hull-jail confines QEMU (namespaces, capabilities, seccomp), which Node cannot do
// (src/hypervisor/jail/hull-jail.c).
execFileSync('cc', ['-Os', '-Wall', '-o', 'dist/native/hull-jail', 'src/hypervisor/jail/hull-jail.c'], {
  stdio: 'inherit',
});
// hull-template-memory holds a VM template's memory in a sealed memfd, which Node cannot make
// (src/template/memory/hull-template-memory.c).
execFileSync(
  'cc',
  ['-Os', '-Wall', '-o', 'dist/native/hull-template-memory', 'src/template/memory/hull-template-memory.c'],
  { stdio: 'inherit' },
);
// hull-share-server serves the share to QEMU over FUSE, keeping setuid/setgid bits and device
// nodes off the host while the guest sees them (src/storage/share-server/: the operations in
// hull-share-server.c, the files it knows and their descriptors in nodes.c, xattrs in xattrs.c).
// libfuse3 is the maintained FUSE library; Node has no FUSE binding worth the name.
execFileSync(
  'cc',
  [
    '-O2',
    '-Wall',
    '-I/usr/include/fuse3',
    '-o',
    'dist/native/hull-share-server',
    'src/storage/share-server/hull-share-server.c',
    'src/storage/share-server/nodes.c',
    'src/storage/share-server/xattrs.c',
    '-lfuse3',
  ],
  { stdio: 'inherit' },
);
// hull-share-mount mounts and unmounts inside a share by file descriptor (openat2), following
// no symlink a guest may have made; Node has neither openat2 nor mount(2)
// (src/storage/share-mount/hull-share-mount.c).
execFileSync(
  'cc',
  ['-O2', '-Wall', '-o', 'dist/native/hull-share-mount', 'src/storage/share-mount/hull-share-mount.c'],
  { stdio: 'inherit' },
);
