import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { installRoot } from '../paths.js';
import { identityOf } from '../sys/process-identity.js';

const dir = mkdtempSync(join(tmpdir(), 'hull-light-start-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Node's own modules that `hull list` and `hull state` must not load: each costs 1-3 ms of a
 * command podman runs for every container (scripts/bundle.mjs, code-cache.ts, print.ts).
 */
const HEAVY = /^NativeModule (stream|net|crypto|zlib|fs\/promises|child_process|readline|worker_threads)$/;

/** The modules of Node's that `args` loaded beyond those loaded before hull's command ran. */
function loadedBy(name: string, args: string[]): { status: number | null; stdout: string; loaded: string[] } {
  const report = join(dir, `loaded-${name}`);
  const preload = join(dir, 'preload.cjs');
  writeFileSync(
    preload,
    `const before = new Set(process.moduleLoadList);
     process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(report)},
       process.moduleLoadList.filter((m) => !before.has(m)).join('\\n')));`,
  );
  const hull = join(installRoot(), 'dist', 'bundle', 'hull.cjs');
  const child = spawnSync(process.execPath, ['-r', preload, hull, ...args], { encoding: 'utf8' });
  return { status: child.status, stdout: child.stdout, loaded: readFileSync(report, 'utf8').split('\n') };
}

test('hull list and hull state of a running container load none of the heavy modules of Node', () => {
  const root = join(dir, 'root');
  mkdirSync(join(root, 'c1'), { recursive: true });
  const me = identityOf(process.pid);
  assert.ok(me);
  const state = {
    ociVersion: '1.1.0',
    id: 'c1',
    pid: me.pid,
    pidStartTime: me.startTime,
    status: 'running',
    bundle: '/b',
    rootfs: '/b/rootfs',
    created: '2026-01-01T00:00:00Z',
    owner: '',
    annotations: {},
  };
  writeFileSync(join(root, 'c1', 'state.json'), JSON.stringify(state), { mode: 0o600 });
  const list = loadedBy('list', ['--root', root, 'list', '--format', 'json']);
  assert.equal(list.status, 0);
  assert.equal(JSON.parse(list.stdout)[0].status, 'running');
  const shown = loadedBy('state', ['--root', root, 'state', 'c1']);
  assert.equal(shown.status, 0);
  assert.equal(JSON.parse(shown.stdout).pid, process.pid);
  for (const run of [list, shown]) {
    assert.ok(run.loaded.includes('NativeModule vm'), 'the report lists what was loaded');
    assert.deepEqual(
      run.loaded.filter((m) => HEAVY.test(m)),
      [],
    );
  }
});
