import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { installRoot } from '../paths.js';
import { bundleDirOf, CONTAINER_BLOB, SNAPSHOT_STAMP } from './snapshot-files.js';

const repo = installRoot();
const dir = mkdtempSync(join(tmpdir(), 'hull-snapshot-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * What a program printed: how it was loaded, the script Node was given (its file name), its
 * arguments, and NODE_EXTRA_CA_CERTS.
 */
const REPORT = (how: string) =>
  `process.stdout.write(JSON.stringify({ how: '${how}', script: require('node:path').basename(process.argv[1]), args: process.argv.slice(2), ca: process.env.NODE_EXTRA_CA_CERTS ?? null }));`;

/** Stamps `stamp` with the mtime of the node running the tests, as the build does. */
function stampFor(stamp: string, node = process.execPath): void {
  writeFileSync(stamp, 'stamp\n', { mode: 0o644 });
  assert.equal(spawnSync('touch', ['-r', node, stamp]).status, 0);
}

/**
 * A copy of bin/hull beside a dist/bundle of its own: hull.cjs reports it was loaded from its
 * source, and the container blob (a snapshot of a program that reports it started from it).
 */
function install(name: string): { hull: string; bundle: string } {
  const root = join(dir, name);
  const bundle = join(root, 'dist', 'bundle');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(bundle, { recursive: true });
  copyFileSync(join(repo, 'bin', 'hull'), join(root, 'bin', 'hull'));
  chmodSync(join(root, 'bin', 'hull'), 0o755);
  copyFileSync(join(repo, 'bin', 'package.json'), join(root, 'bin', 'package.json'));
  writeFileSync(join(bundle, 'hull.cjs'), REPORT('source'));
  const entry = join(bundle, 'snapshot-entry.cjs');
  writeFileSync(
    entry,
    `require('node:v8').startupSnapshot.setDeserializeMainFunction(() => { ${REPORT('snapshot')} });`,
  );
  const made = spawnSync(process.execPath, [
    '--snapshot-blob',
    join(bundle, CONTAINER_BLOB),
    '--build-snapshot',
    entry,
  ]);
  assert.equal(made.status, 0, String(made.stderr));
  chmodSync(join(bundle, CONTAINER_BLOB), 0o644);
  stampFor(join(bundle, SNAPSHOT_STAMP));
  return { hull: join(root, 'bin', 'hull'), bundle };
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const base: NodeJS.ProcessEnv = { ...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent/ca.pem' };
  delete base.NODE_OPTIONS;
  const child = spawnSync(file, args, { env: { ...base, ...env }, encoding: 'utf8' });
  return {
    status: child.status,
    stderr: child.stderr,
    report: child.stdout ? JSON.parse(child.stdout) : undefined,
  };
}

describe('bin/hull', () => {
  let installed: { hull: string; bundle: string };
  before(() => {
    installed = install('usable');
  });

  test('starts the words that start a container from the snapshot, others from the source', () => {
    const cases: [string[], string][] = [
      [['run', '-b', 'b', 'x'], 'snapshot'],
      [['create', 'x'], 'snapshot'],
      // The monitor lives as long as its container: it loads from the source (startup-snapshot.ts).
      [['_monitor', 'x'], 'source'],
      [
        ['--root', '/r', '--config', 'c', '--log', 'l', '--log-format', 'json', '--debug', 'run', 'x'],
        'snapshot',
      ],
      [['--root=/r', 'run', 'x'], 'snapshot'],
      [['list'], 'source'],
      [['exec', 'run'], 'source'],
      // --root takes "run" as its value: the verb is list.
      [['--root', 'run', 'list'], 'source'],
      [['--version', 'run'], 'source'],
      [['--help', 'run'], 'source'],
      [[], 'source'],
    ];
    for (const [args, how] of cases) {
      const r = run(installed.hull, args);
      assert.equal(r.status, 0, r.stderr);
      // From the source, Node is given the bundle's hull.cjs itself, not bin/hull to load it.
      const script = how === 'source' ? 'hull.cjs' : 'hull';
      assert.deepEqual(r.report, { how, script, args, ca: null }, args.join(' '));
    }
  });

  test('Node running it as a script loads the program from its source', () => {
    const r = run(process.execPath, [installed.hull, 'run', 'x']);
    assert.deepEqual(r.report, {
      how: 'source',
      script: 'hull',
      args: ['run', 'x'],
      ca: '/nonexistent/ca.pem',
    });
  });

  test('reached by a symbolic link, to it or to its directory, it runs its own install', () => {
    // Another install's program where each link's own path leads: never the one run.
    const other = install('other');
    writeFileSync(join(other.bundle, 'hull.cjs'), REPORT('the other install'));
    const fileLink = join(other.bundle, '..', '..', 'bin', 'hull-link');
    symlinkSync(installed.hull, fileLink);
    const linked = join(dir, 'linked');
    mkdirSync(join(linked, 'dist', 'bundle'), { recursive: true });
    writeFileSync(join(linked, 'dist', 'bundle', 'hull.cjs'), REPORT('the other install'));
    symlinkSync(join(installed.hull, '..'), join(linked, 'bin'));
    for (const [hull, script] of [
      [fileLink, 'hull-link'],
      [join(linked, 'bin', 'hull'), 'hull'],
    ] as const) {
      const r = run(hull, ['list']);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(r.report, { how: 'source', script, args: ['list'], ca: null }, hull);
    }
  });

  test('found by PATH, or by sh with none', () => {
    assert.equal(
      run('sh', ['-c', 'PATH=/nonexistent:$PATH exec "$0" run x', installed.hull]).report.how,
      'snapshot',
    );
    const bare = spawnSync('env', ['-i', installed.hull, 'run', 'x'], { encoding: 'utf8' });
    // sh's default path finds node in /usr/bin or /usr/local/bin, where a test machine has it.
    assert.equal(JSON.parse(bare.stdout).how, 'snapshot', bare.stderr);
  });

  test('a blob that may not be used is not given to Node: the program loads from its source', () => {
    const stale = install('stale');
    writeFileSync(join(stale.bundle, SNAPSHOT_STAMP), 'made by another node\n');
    assert.equal(run(stale.hull, ['run', 'x']).report.how, 'source', 'a stamp of another mtime');
    assert.equal(
      run(installed.hull, ['run', 'x'], { NODE_OPTIONS: '--max-old-space-size=100' }).report.how,
      'source',
    );
    const foreign = install('foreign');
    if (process.geteuid?.() === 0) {
      chownSync(join(foreign.bundle, CONTAINER_BLOB), 65534, 65534);
      assert.equal(run(foreign.hull, ['run', 'x']).report.how, 'source', 'a blob of another owner');
    }
    rmSync(join(foreign.bundle, CONTAINER_BLOB));
    assert.equal(run(foreign.hull, ['run', 'x']).report.how, 'source', 'no blob');
  });
});

describe("the container program's snapshot", () => {
  const blob = join(repo, 'dist', 'bundle', CONTAINER_BLOB);

  test('the build made it, 0644, stamped with the mtime of the node that made it', () => {
    const made = statSync(blob);
    assert.ok(made.isFile());
    assert.equal(made.mode & 0o777, 0o644);
    const stamp = statSync(join(repo, 'dist', 'bundle', SNAPSHOT_STAMP), { bigint: true });
    assert.equal(stamp.mtimeNs, statSync(process.execPath, { bigint: true }).mtimeNs);
  });

  test('runs the program for bin/hull and dist/bundle/hull.cjs of its own location', () => {
    for (const script of [join(repo, 'bin', 'hull'), join(repo, 'dist', 'bundle', 'hull.cjs')]) {
      const r = spawnSync(
        process.execPath,
        ['--snapshot-blob', blob, script, 'run', '-b', '/nonexistent', 'x'],
        {
          encoding: 'utf8',
        },
      );
      assert.equal(r.status, 1);
      assert.equal(
        r.stderr,
        'hull: bundle /nonexistent does not exist: pass an OCI bundle directory with --bundle\n',
      );
    }
  });

  test('started for a script elsewhere, runs that script as Node would', () => {
    const elsewhere = install('elsewhere');
    const r = spawnSync(process.execPath, ['--snapshot-blob', blob, elsewhere.hull, 'run', 'x'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).how, 'source');
    assert.equal(r.stderr, '');
  });
});

describe('bundleDirOf', () => {
  test('bundleDirOf: dist/bundle for bin/hull and for hull.cjs; none for a missing script', () => {
    const bundle = join(repo, 'dist', 'bundle');
    assert.equal(bundleDirOf(join(repo, 'bin', 'hull')), bundle);
    assert.equal(bundleDirOf(join(bundle, 'hull.cjs')), bundle);
    assert.equal(bundleDirOf(join(dir, 'none')), undefined);
    assert.equal(bundleDirOf(undefined), undefined);
  });
});
