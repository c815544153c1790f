import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeBusyboxBundle } from '../fixtures/bundle.js';

const SUBREAPER = resolve(fileURLToPath(import.meta.url), '../../../../tests/fixtures/subreaper-run.py');
const RECEIVER = resolve(fileURLToPath(import.meta.url), '../../../../tests/fixtures/console-receiver.py');

import {
  assertNothingLeft,
  HULL,
  hull,
  privateDirs,
  processExit,
  qemuProcessesUsing,
  runCommand,
  startHull,
} from './harness.js';

/** The OCI command line as podman's conmon and containerd's runc shim drive it. */
describe('the OCI command line', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let n = 0;
  before(async () => {
    dirs = await privateDirs('cli');
  });
  after(() => dirs.cleanup());
  afterEach(() => assertNothingLeft(dirs.root));

  const h = (...args: string[]) => hull(['--root', dirs.root, ...args]);
  const startHullWithRoot = (args: string[]) => startHull(['--root', dirs.root, ...args], { input: null });
  const state = async (id: string) =>
    JSON.parse((await h('state', id)).stdout) as { status: string; pid: number };

  /** A bundle whose process prints a line, then waits for signals and reports them. */
  async function serviceBundle(): Promise<{ dir: string; id: string }> {
    n += 1;
    const dir = join(dirs.scratch, `bundle-${n}`);
    await mkdir(dir);
    await makeBusyboxBundle(dir, [
      'sh',
      '-c',
      'trap "echo got HUP" HUP; trap "echo got TERM; exit 143" TERM; echo started; while true; do sleep 0.1; done',
    ]);
    return { dir, id: `svc-${n}` };
  }

  /**
   * `create` as conmon runs it: its stdout is a file the container writes to for its whole
   * life, and the pid in the pid file is a process to wait for.
   */
  async function create(b: { dir: string; id: string }) {
    const out = join(b.dir, 'container.out');
    const pidFile = join(b.dir, 'container.pid');
    const { openSync, closeSync } = await import('node:fs');
    const fd = openSync(out, 'w');
    const child = spawn(
      process.execPath,
      [HULL, '--root', dirs.root, 'create', '--bundle', b.dir, '--pid-file', pidFile, b.id],
      {
        stdio: ['ignore', fd, fd],
      },
    );
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    closeSync(fd);
    assert.equal(code, 0, await readFile(out, 'utf8'));
    const pid = Number(await readFile(pidFile, 'utf8'));
    const exited = processExit(pid);
    exited.catch(() => {});
    return { pid, exited, output: () => readFile(out, 'utf8') };
  }

  test('create, state, start, ps, pause, resume, kill by name and number, then delete', async () => {
    const b = await serviceBundle();
    const c = await create(b);
    let s = await state(b.id);
    assert.equal(s.status, 'created');
    assert.equal(s.pid, c.pid, 'state names the pid in the pid file');
    assert.equal((await h('start', b.id)).code, 0);
    assert.equal((await state(b.id)).status, 'running');
    const list = JSON.parse((await h('list', '--format', 'json')).stdout) as { id: string; status: string }[];
    assert.deepEqual(
      list.map((x) => [x.id, x.status]),
      [[b.id, 'running']],
    );
    const pids = JSON.parse((await h('ps', '--format', 'json', b.id)).stdout) as number[];
    assert.ok(pids.length >= 1, 'ps lists the container process');
    assert.equal((await h('pause', b.id)).code, 0);
    assert.equal((await state(b.id)).status, 'paused');
    assert.equal((await h('resume', b.id)).code, 0);
    assert.equal((await state(b.id)).status, 'running');
    assert.equal((await h('kill', b.id, 'HUP')).code, 0);
    assert.equal((await h('kill', b.id, '15')).code, 0);
    await c.exited;
    s = await state(b.id);
    assert.equal(s.status, 'stopped');
    const output = await c.output();
    assert.match(output, /started\n(.|\n)*got HUP\n(.|\n)*got TERM\n/);
    assert.equal((await h('delete', b.id)).code, 0);
    assert.equal((await h('state', b.id)).code, 1, 'a deleted container is gone');
  });

  test('two concurrent execs into one container, each with its own stdio and exit code; update', async () => {
    const b = await serviceBundle();
    const c = await create(b);
    await h('start', b.id);
    const [one, two] = await Promise.all([
      hull(['--root', dirs.root, 'exec', b.id, 'sh', '-c', 'read x; echo "one:$x"; exit 3'], {
        input: 'first\n',
      }),
      hull(['--root', dirs.root, 'exec', b.id, 'sh', '-c', 'read x; echo "two:$x"; exit 4'], {
        input: 'second\n',
      }),
    ]);
    assert.deepEqual([one.code, one.stdout], [3, 'one:first\n']);
    assert.deepEqual([two.code, two.stdout], [4, 'two:second\n']);
    // update: new limits reach the container's cgroup in the guest.
    const cgroup = `/sys/fs/cgroup/hull/${b.id}`;
    const limits = await hull(['--root', dirs.root, 'update', '--resources', '-', b.id], {
      input: JSON.stringify({ memory: { limit: 64 << 20 }, pids: { limit: 50 } }),
    });
    assert.equal(limits.code, 0, limits.stderr);
    const read = await h('exec', b.id, 'cat', `${cgroup}/memory.max`, `${cgroup}/pids.max`);
    assert.equal(read.stdout, `${64 << 20}\n50\n`);
    assert.equal((await h('delete', '--force', b.id)).code, 0, 'delete --force stops a running container');
    await c.exited;
  });

  // conmon waits, as a subreaper, for the pid `exec --detach` writes: an exec that ends at
  // once must still end as conmon's child, or podman reports exit status 255.
  test("a detached exec's pid is its caller's to wait for, however fast the process ends", async () => {
    const b = await serviceBundle();
    const c = await create(b);
    await h('start', b.id);
    // The second exec's starter is held while it writes the pid file, as a loaded host may:
    // the process has ended by the time it goes on.
    for (const [i, hold] of [0, 2, 0].entries()) {
      const pidFile = join(b.dir, `exec-${i}.pid`);
      const waited = await runCommand('python3', [
        SUBREAPER,
        pidFile,
        String(hold),
        process.execPath,
        HULL,
        '--root',
        dirs.root,
        'exec',
        '--detach',
        '--pid-file',
        pidFile,
        b.id,
        'sh',
        '-c',
        `echo exec ${i}; exit 7`,
      ]);
      assert.equal(waited.code, 0, waited.stderr);
      assert.equal(waited.stdout, `exec ${i}\nstatus 7\n`);
    }
    assert.equal((await h('delete', '--force', b.id)).code, 0);
    await c.exited;
  });

  test('state reports stopped once the VM is killed under the container', async () => {
    const b = await serviceBundle();
    const c = await create(b);
    await h('start', b.id);
    const [qemu] = await qemuProcessesUsing(dirs.root);
    assert.ok(qemu, 'the container has a QEMU process');
    process.kill(qemu, 'SIGKILL');
    await c.exited;
    assert.equal((await state(b.id)).status, 'stopped');
    assert.equal((await h('delete', b.id)).code, 0);
  });

  test('delete after the monitor was SIGKILLed removes the VM it left and its cgroup', async () => {
    const b = await serviceBundle();
    const c = await create(b);
    await h('start', b.id);
    const [qemu] = await qemuProcessesUsing(dirs.root);
    assert.ok(qemu, 'the container has a QEMU process');
    const cgroupOf = async () =>
      (await readFile(`/proc/${qemu}/cgroup`, 'utf8'))
        .split('\n')
        .find((l) => /:memory:|^0::/.test(l))!
        .split(':')[2]!;
    const cgroup = await cgroupOf();
    assert.match(cgroup, new RegExp(`/hull/${b.id}$`));
    process.kill(c.pid, 'SIGKILL');
    await c.exited;
    assert.equal((await state(b.id)).status, 'stopped');
    assert.equal((await h('delete', b.id)).code, 0);
    await processExit(qemu, 10_000);
    const v2 = await readFile('/sys/fs/cgroup/cgroup.controllers').then(
      () => true,
      () => false,
    );
    const dir = v2 ? `/sys/fs/cgroup${cgroup}` : `/sys/fs/cgroup/memory${cgroup}`;
    await assert.rejects(readFile(join(dir, 'cgroup.procs')), 'the VM cgroup is gone');
  });

  // Issue 13: runc's events verb, which stats tools call.
  test("events --stats prints runc's stats of the container; events ends when it stops", async () => {
    n += 1;
    const dir = join(dirs.scratch, `bundle-${n}`);
    await mkdir(dir);
    await makeBusyboxBundle(
      dir,
      ['sh', '-c', 'head -c 16000000 /dev/zero > /dev/shm/fill; sleep 1000'],
      (spec) => {
        spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 100 * 2 ** 20 } };
      },
    );
    const b = { dir, id: `events-${n}` };
    const c = await create(b);
    assert.equal((await h('start', b.id)).code, 0);
    // What runc's stats event holds that a stats tool reads (numbers, as JSON gives them).
    let event:
      | {
          type: string;
          id: string;
          data: {
            memory: { usage: { limit: number; usage: number } };
            cpu: { usage: { total: number } };
            pids: { current: number };
          };
        }
      | undefined;
    for (let i = 0; i < 50; i++) {
      const r = await h('events', '--stats', b.id);
      assert.equal(r.code, 0, r.stderr);
      event = JSON.parse(r.stdout);
      if (event!.data.memory.usage.usage > 16_000_000) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(event?.type, 'stats');
    assert.equal(event?.id, b.id);
    assert.equal(event?.data.memory.usage.limit, 100 * 2 ** 20, "the container's own limit, in the guest");
    assert.ok(event!.data.memory.usage.usage > 16_000_000, 'its 16 MB in /dev/shm are counted');
    assert.ok(event!.data.cpu.usage.total > 0);
    assert.ok(event!.data.pids.current >= 1, "the container's process");
    const following = startHullWithRoot(['events', '--interval', '200ms', b.id]);
    await following.waitForOutput('"type":"stats"');
    assert.equal((await h('kill', b.id, 'KILL')).code, 0);
    const ended = await following.result;
    assert.equal(ended.code, 0, ended.stderr);
    await c.exited;
    assert.equal((await h('delete', b.id)).code, 0);
  });

  test('illegal transitions fail with a clear error and leave the state unchanged', async () => {
    const b = await serviceBundle();
    const c = await create(b);
    const refused = async (args: string[], pattern: RegExp, status: string) => {
      const r = await h(...args);
      assert.equal(r.code, 1, `${args.join(' ')} should fail`);
      assert.match(r.stderr, pattern);
      assert.equal((await state(b.id)).status, status, `state stays ${status} after ${args[0]}`);
    };
    await refused(
      ['delete', b.id],
      /cannot delete container .*: it is created, and delete needs it stopped/,
      'created',
    );
    await refused(['pause', b.id], /cannot pause .*it is created/, 'created');
    await refused(['resume', b.id], /cannot resume .*it is created/, 'created');
    await refused(['exec', b.id, 'true'], /cannot exec .*it is created/, 'created');
    await h('start', b.id);
    await refused(['start', b.id], /cannot start .*it is running, and start needs it created/, 'running');
    await refused(['resume', b.id], /cannot resume .*it is running/, 'running');
    await refused(['kill', b.id, 'NOSUCHSIG'], /unknown signal/, 'running');
    await h('kill', b.id, 'KILL');
    await c.exited;
    await refused(['start', b.id], /cannot start .*it is stopped/, 'stopped');
    await refused(['kill', b.id], /cannot kill .*it is stopped/, 'stopped');
    await refused(['pause', b.id], /cannot pause .*it is stopped/, 'stopped');
    assert.equal((await h('delete', b.id)).code, 0);
    const missing = await h('start', 'no-such-container');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /container no-such-container does not exist/);
  });

  test('the container exit code is recorded when it stops', async () => {
    n += 1;
    const dir = join(dirs.scratch, `bundle-${n}`);
    await mkdir(dir);
    await makeBusyboxBundle(dir, ['sh', '-c', 'exit 42']);
    const id = `exit-${n}`;
    // The monitor is a child of `create`; as conmon does, wait for it through its parent.
    const child = spawn(process.execPath, [HULL, '--root', dirs.root, 'create', '--bundle', dir, id], {
      stdio: 'ignore',
    });
    assert.equal(await new Promise((r) => child.on('exit', r)), 0);
    await h('start', id);
    for (let i = 0; i < 200 && (await state(id)).status !== 'stopped'; i++)
      await new Promise((r) => setTimeout(r, 100));
    const file = JSON.parse(await readFile(join(dirs.root, id, 'state.json'), 'utf8')) as {
      exitStatus: number;
    };
    assert.equal(file.exitStatus, 42);
    await h('delete', id);
  });

  test('a terminal through a console socket, with the size set and changed by the caller', async () => {
    n += 1;
    const dir = join(dirs.scratch, `bundle-${n}`);
    await mkdir(dir);
    await makeBusyboxBundle(
      dir,
      ['sh', '-c', 'stty size; tty; echo ready; read line; echo "got $line"; stty size'],
      (spec) => {
        spec.process!.terminal = true;
      },
    );
    const id = `tty-${n}`;
    const socket = join(dirs.scratch, `console-${n}.sock`);
    const receiver = spawn('python3', [RECEIVER, socket, '24x80', '--on-ready', '40x120'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let shown = '';
    receiver.stdout.on('data', (c: Buffer) => {
      shown += c.toString();
    });
    for (let i = 0; i < 250 && !shown.includes('listening'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(shown, /listening/, 'the console receiver is listening');
    const created = await h('create', '--bundle', dir, '--console-socket', socket, id);
    assert.equal(created.code, 0, created.stderr);
    // As conmon does, the caller has sized the terminal before the container starts.
    for (let i = 0; i < 250 && !shown.includes('sized'); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal((await h('start', id)).code, 0);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`the terminal did not close; it showed: ${shown}`)),
        60_000,
      );
      receiver.on('exit', () => resolve(clearTimeout(timer)));
    });
    const lines = shown.replace(/\r/g, '').split('\n');
    assert.deepEqual(lines.slice(2, 8), ['24 80', '/dev/pts/0', 'ready', 'go', 'got go', '40 120']);
    await h('delete', '--force', id);
  });

  test('features, spec and --version answer without a container', async () => {
    const features = JSON.parse((await h('features')).stdout) as {
      hooks: string[];
      linux: { namespaces: string[] };
    };
    assert.ok(features.hooks.includes('poststop'));
    assert.ok(features.linux.namespaces.includes('pid'));
    const dir = join(dirs.scratch, 'spec');
    await mkdir(dir);
    assert.equal((await h('spec', '--bundle', dir)).code, 0);
    const spec = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as {
      process: { args: string[] };
    };
    assert.deepEqual(spec.process.args, ['sh']);
    assert.match((await h('--version')).stdout, /^\d+\.\d+\.\d+/);
  });

  test('delete --force of a container that does not exist succeeds silently, as runc', async () => {
    const forced = await h('delete', '--force', 'no-such-container');
    assert.deepEqual([forced.code, forced.stdout, forced.stderr], [0, '', '']);
    const plain = await h('delete', 'no-such-container');
    assert.equal(plain.code, 1, 'without --force a missing container is still an error');
    assert.match(plain.stderr, /container no-such-container does not exist/);
  });
});
