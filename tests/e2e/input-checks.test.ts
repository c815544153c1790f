import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import {
  assertNothingLeft,
  type HullResult,
  hull,
  hullDetached,
  privateDirs,
  qemuProcessesUsing,
  startHull,
} from './harness.js';

/**
 * Issue 24, item 6: values of the wrong type or range, an unreadable config.json and bad
 * settings are refused before any VM starts. Every run here has an empty state directory (no
 * guest image), so a refusal that names the field, and not the missing image, came before the
 * image was looked up; a watcher also checks that no QEMU process ever mentions the root.
 * Nothing here boots a VM.
 */

const DEADLINE_MS = 20_000;

/** A configuration as a hostile or careless writer sees it: any field, any value. */
// biome-ignore lint/suspicious/noExplicitAny: the tests write values of every wrong type
type AnyJson = any;

/** hull, killed (by its own pid) if it has not ended by the deadline: a hang fails the test. */
async function hullWithin(args: string[], env: NodeJS.ProcessEnv): Promise<HullResult & { ms: number }> {
  const started = Date.now();
  const run = startHull(args, { env, input: null });
  const timer = setTimeout(() => run.child.kill('SIGKILL'), DEADLINE_MS);
  try {
    const result = await run.result;
    assert.notEqual(result.signal, 'SIGKILL', `hull did not end within ${DEADLINE_MS / 1000}s`);
    return { ...result, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** Polls for QEMU processes mentioning `root` until stopped; returns every one seen. */
function watchForQemu(root: string): () => Promise<number[]> {
  const seen = new Set<number>();
  let stopped = false;
  const polling = (async () => {
    while (!stopped) {
      for (const pid of await qemuProcessesUsing(root)) seen.add(pid);
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return async () => {
    stopped = true;
    await polling;
    return [...seen];
  };
}

describe('hull run and create: bad input is refused before any VM', { timeout: 300_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let emptyState: string;
  let n = 0;
  before(async () => {
    dirs = await privateDirs('input-checks');
    emptyState = join(dirs.scratch, 'empty-state');
    await mkdir(emptyState);
  });
  after(() => dirs.cleanup());

  /** Runs `verb` on the bundle and checks the failure as a user meets it. */
  async function refused(
    verb: 'run' | 'create',
    bundle: string,
    pattern: RegExp,
    env: NodeJS.ProcessEnv = {},
  ): Promise<void> {
    const stop = watchForQemu(dirs.root);
    const r = await hullWithin(['--root', dirs.root, verb, '--bundle', bundle, `bad-${++n}`], {
      HULL_STATE_DIR: emptyState,
      ...env,
    });
    assert.deepEqual(await stop(), [], 'no QEMU process was started');
    assert.notEqual(r.code, 0, 'hull exits non-zero');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr.slice(0, 500)}`);
    assert.ok(lines[0]!.length < 400, `a short line, not ${lines[0]!.length} characters`);
    assert.match(lines[0]!, /^hull: /);
    assert.doesNotMatch(lines[0]!, /guest image/, 'refused before the image lookup');
    assert.match(lines[0]!, pattern);
    assert.deepEqual(await readdir(dirs.root).catch(() => []), [], 'no state directory is left');
    await assertNothingLeft(dirs.root);
  }

  async function bundleWith(edit: (spec: AnyJson) => void): Promise<string> {
    const dir = join(dirs.scratch, `bundle-${++n}`);
    await mkdir(dir);
    await makeBusyboxBundle(dir, ['true'], edit);
    return dir;
  }

  const big = 'a'.repeat(2 ** 20);
  const CASES: ['run' | 'create', string, (s: AnyJson) => void, RegExp][] = [
    [
      'run',
      'memory limit -5',
      (s) => (s.linux.resources = { memory: { limit: -5 } }),
      /config\.json: linux\.resources\.memory\.limit -5 is out of range/,
    ],
    [
      'run',
      'memory limit "512M"',
      (s) => (s.linux.resources = { memory: { limit: '512M' } }),
      /linux\.resources\.memory\.limit "512M" must be a number/,
    ],
    [
      'create',
      'cpu period 10',
      (s) => (s.linux.resources = { cpu: { quota: 50_000, period: 10 } }),
      /linux\.resources\.cpu\.period 10 is out of range/,
    ],
    [
      'run',
      'cpus "a-b,,-"',
      (s) => (s.linux.resources = { cpu: { cpus: 'a-b,,-' } }),
      /linux\.resources\.cpu\.cpus "a-b,,-" is not a CPU list/,
    ],
    [
      'create',
      'pids -2',
      (s) => (s.linux.resources = { pids: { limit: -2 } }),
      /linux\.resources\.pids\.limit -2 is out of range/,
    ],
    ['run', 'uid "0"', (s) => (s.process.user.uid = '0'), /process\.user\.uid "0" must be a number/],
    [
      'create',
      'uid 2^32',
      (s) => (s.process.user.uid = 2 ** 32),
      /process\.user\.uid 4294967296 is out of range/,
    ],
    [
      'run',
      'args as a string',
      (s) => (s.process.args = 'sh -c true'),
      /process\.args "sh -c true" must be a list/,
    ],
    [
      'create',
      'capabilities as a number',
      (s) => (s.process.capabilities = 5),
      /process\.capabilities 5 must be an object/,
    ],
    [
      'run',
      'a relative mount destination',
      (s) => s.mounts.push({ destination: 'data', type: 'tmpfs', source: 'tmpfs' }),
      /mounts\[\d+\]\.destination "data" must be an absolute path/,
    ],
    [
      'run',
      '10,000 sysctls',
      (s) =>
        (s.linux.sysctl = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`net.x${i}`, '1']))),
      /linux\.sysctl has 10000 entries/,
    ],
    ['create', 'a 1 MB hostname', (s) => (s.hostname = big), /hostname "a+…" is 1048576 characters long/],
    [
      'run',
      'a 1 MB environment value',
      (s) => s.process.env.push(`A=${big}`),
      /process\.env\[\d+\] "A=a+…" is 1048578 characters long/,
    ],
    ['run', 'root.path 42', (s) => (s.root.path = 42), /root\.path 42 must be a string, not a number/],
    [
      'run',
      'a 1 MB mount source',
      (s) => s.mounts.push({ destination: '/d', type: 'bind', source: `/${big}`, options: ['rbind'] }),
      /mounts\[\d+\]\.source "\/a+…" is 1048577 characters long/,
    ],
  ];
  for (const [verb, what, edit, pattern] of CASES) {
    test(`hull ${verb} with ${what}`, async () => refused(verb, await bundleWith(edit), pattern));
  }

  for (const [what, make, pattern] of [
    [
      'a symlink to /dev/zero',
      (path: string) => symlink('/dev/zero', path),
      /config\.json is a device, not a regular file/,
    ],
    ['a directory', (path: string) => mkdir(path), /config\.json is a directory, not a regular file/],
    [
      'a FIFO (which must not hang hull)',
      async (path: string) => execFileSync('mkfifo', [path]),
      /config\.json is a FIFO, not a regular file/,
    ],
  ] as const) {
    test(`config.json as ${what}`, async () => {
      const dir = join(dirs.scratch, `bundle-${++n}`);
      await mkdir(join(dir, 'rootfs'), { recursive: true });
      await make(join(dir, 'config.json'));
      await refused('run', dir, pattern);
      await refused('create', dir, pattern);
    });
  }

  test('a config.json of 5 MiB is refused, saying why', async () => {
    const dir = await bundleWith((s) => {
      s.annotations = { padding: 'x'.repeat(5 * 2 ** 20) };
    });
    await refused('run', dir, /config\.json is larger than 4194304 bytes/);
  });

  for (const [env, pattern] of [
    [{ HULL_MEMORY_MIB: '-1' }, /^hull: HULL_MEMORY_MIB=-1 is not valid: give MiB from 128 to 262144$/],
    [{ HULL_ACCEL: 'bogus' }, /^hull: HULL_ACCEL=bogus is not valid: use one of auto, kvm, tcg$/],
  ] as const) {
    test(`${Object.keys(env)[0]}=${Object.values(env)[0]} is refused before the image lookup`, async () => {
      const good = await bundleWith(() => {});
      await refused('run', good, pattern, env);
      await refused('create', good, pattern, env);
    });
  }
});

describe("a running container's exec and update take the same checks", { timeout: 300_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  const id = 'checked-exec';
  before(async () => {
    dirs = await privateDirs('input-exec');
    const bundle = join(dirs.scratch, 'bundle');
    await mkdir(bundle);
    await makeBusyboxBundle(bundle, ['sleep', '1000']);
    const r = await hullDetached(dirs.root, ['--bundle', bundle, id]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await hull(['--root', dirs.root, 'delete', '--force', id]);
    await assertNothingLeft(dirs.root);
    await dirs.cleanup();
  });

  /** One line, non-zero, within the deadline; the container keeps running. */
  async function refusedVerb(args: string[], pattern: RegExp): Promise<void> {
    const r = await hullWithin(['--root', dirs.root, ...args], {});
    assert.notEqual(r.code, 0, 'hull exits non-zero');
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line on stderr, got: ${r.stderr.slice(0, 500)}`);
    assert.match(r.stderr, pattern);
    const state = await hull(['--root', dirs.root, 'state', id]);
    assert.equal(JSON.parse(state.stdout).status, 'running');
  }

  test('exec --process: a FIFO, /dev/zero, and a process of the wrong shape', async () => {
    const fifo = join(dirs.scratch, 'process.fifo');
    execFileSync('mkfifo', [fifo]);
    await refusedVerb(['exec', '--process', fifo, id], /process\.fifo is a FIFO, not a regular file/);
    await refusedVerb(['exec', '--process', '/dev/zero', id], /\/dev\/zero is a device, not a regular file/);
    const wrong = join(dirs.scratch, 'process.json');
    await writeFile(wrong, JSON.stringify({ args: 'sh -c true', cwd: '/', user: { uid: 0, gid: 0 } }));
    await refusedVerb(
      ['exec', '--process', wrong, id],
      /process\.json: process\.args "sh -c true" must be a list/,
    );
  });

  test('exec --user that is not a number', async () => {
    await refusedVerb(['exec', '--user', 'nobody', id, 'true'], /--user nobody: give a numeric uid\[:gid\]/);
  });

  test('update with a memory limit of -5', async () => {
    const resources = join(dirs.scratch, 'resources.json');
    await writeFile(resources, JSON.stringify({ memory: { limit: -5 } }));
    await refusedVerb(
      ['update', '--resources', resources, id],
      /linux\.resources\.memory\.limit -5 is out of range/,
    );
  });
});
