import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HullApiError, Sandbox } from 'hull/sdk';
import { removeBridge } from '../../src/network/serve-bridge.js';
import { flipByte } from '../fixtures/flip-byte.js';
import { pushPython } from '../fixtures/python-image.js';
import { pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import {
  answers,
  answersSoon,
  assertOneRun,
  countsOf,
  killEverySandbox,
  PYTHON_COUNTER,
  serveBridge,
  serveStateDir,
  startServe as startServeOn,
  stopServe as stopServeRun,
  waitForCount,
} from '../fixtures/serve.js';
import { type HullRun, hull, privateDirs, qemuProcessesUsing, runCommand } from './harness.js';

/**
 * Issue 28: a sandbox of `hull serve` paused to disk (its VM's memory and devices saved, no
 * QEMU left) and resumed through the SDK, with a Python process holding a counter in memory that
 * goes on counting, across a server killed and started again; a damaged saved state refused
 * in one line, the sandbox left paused.
 */
describe('hull serve: a sandbox paused to disk and resumed', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let env: NodeJS.ProcessEnv;
  // Sandboxes with network 'internet' go on a bridge of this file's own.
  const bridge = serveBridge('hp', '10.215.0.0/24');
  let server: HullRun | undefined;
  let api: string;
  let sandbox: Sandbox;
  let counterId: string;

  const containerDir = (id: string) => join(dirs.root, id);
  const savedState = (id: string) => join(dirs.root, '@serve', 'sandboxes', id, 'saved', 'vm.state');

  async function startServe(extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    server = await startServeOn(dirs.root, ['--listen', api], { ...env, ...extraEnv });
  }

  async function stopServe(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopServeRun(server, signal);
    server = undefined;
  }

  before(async () => {
    dirs = await privateDirs('serve-saved');
    const state = await serveStateDir(dirs.scratch);
    env = { HULL_STATE_DIR: state, ...bridge.env };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushBusybox(dirs.scratch, registry);
    api = `unix:${join(dirs.scratch, 'api.sock')}`;
    await startServe();
    const python = await pushPython(dirs.scratch, registry);
    sandbox = await Sandbox.create({ api, image: python, network: 'none', timeoutMs: 900_000 });
    // A counter held in a Python process's memory, each value appended to a file of the disk.
    await sandbox.files.write('/counter.py', PYTHON_COUNTER);
    const counter = await sandbox.commands.run('python3 /counter.py', { background: true });
    counterId = counter.commandId;
    await waitForCount(sandbox);
  });

  after(async () => {
    await killEverySandbox(api);
    await stopServe();
    await registry?.stop();
    await removeBridge(bridge.network);
    assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/`), [], 'no QEMU process is left');
    await dirs?.cleanup();
  });

  test('pause → server killed and started again → resume: the counter goes on from where it was', async () => {
    await new Promise((r) => setTimeout(r, 2000));
    const beforePause = await countsOf(sandbox);
    assert.ok(beforePause.length >= 3, `the counter runs: ${beforePause.length}`);
    const bootId = (await sandbox.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    assert.match(bootId, /^[0-9a-f-]{36}$/);
    const pauseStarted = Date.now();
    await sandbox.pause();
    const pauseMs = Date.now() - pauseStarted;
    const paused = await sandbox.getInfo();
    assert.equal(paused.status, 'paused');
    assert.deepEqual(
      await qemuProcessesUsing(containerDir(sandbox.sandboxId)),
      [],
      'a paused sandbox has no QEMU',
    );
    await assert.rejects(sandbox.commands.run('true'), (err: unknown) => {
      assert.ok(err instanceof HullApiError && err.code === 'ERR_STATE' && err.status === 409, String(err));
      assert.match(err.message, /is paused: resume it first/);
      return true;
    });
    // Its time to live does not run while it is paused: the expiry moves on with the clock.
    await new Promise((r) => setTimeout(r, 1500));
    const later = await sandbox.getInfo();
    assert.ok(
      Date.parse(later.expiresAt) - Date.parse(paused.expiresAt) >= 1000,
      `expiry ${paused.expiresAt} then ${later.expiresAt}`,
    );

    await stopServe('SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    await startServe();
    const listed = await Sandbox.list({ api });
    assert.deepEqual(
      listed.map((s) => [s.sandboxId, s.status]),
      [[sandbox.sandboxId, 'paused']],
      'the restarted server keeps the paused sandbox, paused',
    );
    assert.deepEqual(await qemuProcessesUsing(containerDir(sandbox.sandboxId)), []);

    const resumeStarted = Date.now();
    const resumed = await Sandbox.resume(sandbox.sandboxId, { api });
    const resumeMs = Date.now() - resumeStarted;
    console.log(`pause ${pauseMs} ms, resume ${resumeMs} ms`);
    assert.equal(resumed.info.status, 'running');
    const resumedBootId = (await resumed.commands.run('cat /proc/sys/kernel/random/boot_id')).stdout.trim();
    assert.equal(resumedBootId, bootId, 'a resumed sandbox is the same one: its boot id stays');
    await new Promise((r) => setTimeout(r, 2000));
    const afterResume = await countsOf(resumed);
    assertOneRun(afterResume);
    assert.ok(
      afterResume.length >= beforePause.length + 5,
      `it counts on after the resume: ${beforePause.length} before, ${afterResume.length} now`,
    );
    // Its background command is followed again, as after a server restart.
    let followed = '';
    const handle = await resumed.commands.connect(counterId, {
      onStdout: (d) => {
        followed += d;
      },
    });
    const deadline = Date.now() + 30_000;
    while (!/tick \d+\n[\s\S]*tick \d+\n/.test(followed) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    handle.disconnect();
    assert.match(followed, /tick \d+\n/, "the background command's output is followed again");
    sandbox = resumed;
  });

  test('a damaged saved state is refused in one line and the sandbox stays paused; connect resumes it once whole', async () => {
    await sandbox.pause();
    const path = savedState(sandbox.sandboxId);
    await flipByte(path);
    try {
      await assert.rejects(Sandbox.resume(sandbox.sandboxId, { api }), (err: unknown) => {
        assert.ok(err instanceof HullApiError, String(err));
        assert.equal(err.code, 'ERR_SAVED_STATE', err.message);
        assert.match(err.message, /SHA-256 is not the one recorded at save; the sandbox stays paused$/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.equal((await sandbox.getInfo()).status, 'paused');
      assert.deepEqual(await qemuProcessesUsing(containerDir(sandbox.sandboxId)), []);
    } finally {
      await flipByte(path);
    }
    assert.ok((await readdir(join(dirs.root, '@serve', 'sandboxes', sandbox.sandboxId, 'saved'))).length > 0);

    const again = await Sandbox.connect(sandbox.sandboxId, { api });
    assert.equal((await again.getInfo()).status, 'running');
    assertOneRun(await countsOf(again));
    sandbox = again;
  });

  test('a sandbox with a network: its port URL answers again after a resume; one killed while paused leaves nothing', async () => {
    const web = await Sandbox.create({ api, image, timeoutMs: 900_000 });
    await web.commands.run('mkdir -p /www && echo hello-saved > /www/index.html && httpd -p 8080 -h /www');
    const url = await web.ports.url(8080);
    assert.equal(await answersSoon(`${url}/`), 'hello-saved\n');
    await web.pause();
    assert.equal(await answers(`${url}/`), undefined, 'a paused sandbox answers nothing');
    const resumed = await Sandbox.resume(web.sandboxId, { api });
    assert.equal(await answersSoon(`${url}/`), 'hello-saved\n', 'the same URL answers after the resume');
    assert.equal((await resumed.commands.run('cat /www/index.html')).stdout, 'hello-saved\n');

    await resumed.pause();
    await resumed.kill();
    assert.deepEqual(await qemuProcessesUsing(containerDir(web.sandboxId)), []);
    const left = await readdir(join(dirs.root, '@serve', 'sandboxes')).catch(() => [] as string[]);
    assert.ok(!left.includes(web.sandboxId), 'nothing of the killed paused sandbox is left');
    assert.ok(!(await readdir(dirs.root)).includes(web.sandboxId), 'nor its container');
  });

  test('a sandbox whose VM was booted, not cloned, is not paused: one line, and it runs on', async () => {
    await stopServe();
    await startServe({ HULL_TEMPLATE: 'off' });
    try {
      const booted = await Sandbox.create({ api, image, network: 'none', timeoutMs: 900_000 });
      await assert.rejects(booted.pause(), (err: unknown) => {
        assert.ok(err instanceof HullApiError && err.code === 'ERR_UNSUPPORTED', String(err));
        assert.match(err.message, /turn templates on/);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.equal((await booted.getInfo()).status, 'running');
      assert.equal((await booted.commands.run('echo still here')).stdout, 'still here\n');
      await booted.kill();
    } finally {
      await stopServe();
      await startServe();
    }
  });

  // A shell counting in its own memory, and 16 MiB of random bytes in the guest's tmpfs: what
  // a pause must bring back that only the guest's RAM holds. The count is renamed into place:
  // a reader between `>`'s truncation and the write would read nothing (a pause can fall there
  // too, and the first read after the resume then races the shell's write).
  const COUNTING = 'i=0; while true; do i=$((i+1)); echo $i > /c.next; mv /c.next /c; sleep 0.2; done';
  const FILL = 'head -c 16777216 /dev/urandom > /dev/shm/fill && sha256sum /dev/shm/fill';
  const savedDirOf = (id: string) => join(dirs.root, '@serve', 'sandboxes', id, 'saved');
  const stateRecordOf = async (id: string) =>
    JSON.parse(await readFile(join(savedDirOf(id), 'vm-state.json'), 'utf8')) as {
      bytes: number;
      shape: string;
      memoryMiB: number;
      unfilteredBytes?: number;
      ramBase?: { bytes: number };
    };
  const countOf = async (s: Sandbox) => Number((await s.commands.run('cat /c')).stdout);
  const holdersFor = async (dir: string) =>
    (await runCommand('pgrep', ['-f', `hull-template-memory .*${dir}`])).stdout.split('\n').filter(Boolean);
  let small: Sandbox;
  let fillSum: string;

  test("a paused template clone saves only what its guest wrote, beside its template's memory kept as its base", async () => {
    small = await Sandbox.create({ api, image, network: 'none', timeoutMs: 900_000 });
    await small.commands.run(COUNTING, { background: true });
    fillSum = (await small.commands.run(FILL)).stdout;
    await new Promise((r) => setTimeout(r, 1000));
    const before = await countOf(small);
    assert.ok(before >= 1, `the shell counts: ${before}`);
    await small.pause();
    const record = await stateRecordOf(small.sandboxId);
    const state = await stat(join(savedDirOf(small.sandboxId), 'vm.state'));
    const wholeBytes = record.unfilteredBytes ?? 0;
    console.log(`saved ${state.size} bytes of a whole save of ${wholeBytes} (RAM ${record.memoryMiB} MiB)`);
    const budget = (16 + 64) * 2 ** 20;
    assert.ok(state.size < budget, `the state holds what the guest wrote: ${state.size} bytes`);
    // The whole save (what a pause wrote before) would not pass the check above.
    assert.ok(wholeBytes > budget, `a whole save would be ${wholeBytes} bytes`);
    assert.equal(state.size, record.bytes);
    const base = await stat(join(savedDirOf(small.sandboxId), 'ram.base'));
    assert.equal(base.size, record.memoryMiB * 2 ** 20, "the base is the template's whole memory");
    assert.equal(base.mode & 0o777, 0o600);
    assert.equal(base.uid, process.getuid?.());
    const kept = await stat(join(env.HULL_STATE_DIR!, 'templates', record.shape, 'ram.base'));
    assert.equal(base.ino, kept.ino, "it is the template's copy, linked");
    assert.ok(base.blocks * 512 < base.size, 'its zero pages are holes');
    assert.deepEqual(await qemuProcessesUsing(containerDir(small.sandboxId)), []);

    small = await Sandbox.resume(small.sandboxId, { api });
    await assert.rejects(
      stat(join(savedDirOf(small.sandboxId), 'ram.base.json')),
      /ENOENT/,
      "with its template live, it resumed over the template's memory, not a copy of its base",
    );
    const after = await countOf(small);
    assert.ok(after >= before, `the shell counts on from ${before}: ${after}`);
    assert.equal(
      (await small.commands.run('sha256sum /dev/shm/fill')).stdout,
      fillSum,
      'its tmpfs is intact',
    );
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok((await countOf(small)) > after, 'and it still counts');
  });

  test('with its template removed, it resumes from its base; a changed base is refused in one line, nothing left', async () => {
    const before = await countOf(small);
    await small.pause();
    const dir = savedDirOf(small.sandboxId);
    const record = await stateRecordOf(small.sandboxId);
    assert.ok(record.ramBase, 'paused again over the same template memory, the base is used again');
    const links = (await stat(join(dir, 'ram.base'))).nlink;
    const removed = await hull(['template', 'rm', record.shape], { env });
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal(
      (await stat(join(dir, 'ram.base'))).nlink,
      links - 1,
      "the template's copy went, the link keeps it",
    );

    const at = Math.floor(record.memoryMiB * 2 ** 19) + 123;
    await flipByte(join(dir, 'ram.base'), at);
    try {
      await assert.rejects(Sandbox.resume(small.sandboxId, { api }), (err: unknown) => {
        assert.ok(err instanceof HullApiError, String(err));
        assert.equal(err.code, 'ERR_SAVED_STATE', err.message);
        assert.match(
          err.message,
          /its RAM base is not the one recorded at save \(SHA-256\); the sandbox stays paused$/,
        );
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
      assert.equal((await small.getInfo()).status, 'paused');
      assert.deepEqual(await qemuProcessesUsing(containerDir(small.sandboxId)), [], 'no QEMU started');
      assert.deepEqual(await holdersFor(dir), [], 'no memory holder left');
    } finally {
      await flipByte(join(dir, 'ram.base'), at);
    }

    small = await Sandbox.resume(small.sandboxId, { api });
    await stat(join(dir, 'ram.base.json')); // over its base made memory again
    assert.equal(
      (await small.commands.run('sha256sum /dev/shm/fill')).stdout,
      fillSum,
      'its tmpfs is intact',
    );
    const counted = await countOf(small);
    assert.ok(counted >= before, `the shell counts on: ${before} then ${counted}`);
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok((await countOf(small)) > counted, 'and it still counts');
    assert.deepEqual(await holdersFor(dir), [], "the base's memory is the VMM's alone");

    // Resumed over its base, it is a clone of that base: paused again, it saves only its writes.
    await small.pause();
    const again = await stateRecordOf(small.sandboxId);
    assert.ok(again.ramBase, 'the base is kept');
    assert.ok(
      again.bytes < (16 + 64) * 2 ** 20,
      `the state holds what the guest wrote: ${again.bytes} bytes`,
    );
    small = await Sandbox.resume(small.sandboxId, { api });
    assert.equal(
      (await small.commands.run('sha256sum /dev/shm/fill')).stdout,
      fillSum,
      'its tmpfs is intact',
    );
    await small.kill();
  });
});
