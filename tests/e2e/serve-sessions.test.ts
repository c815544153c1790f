import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { HullApiError, Sandbox, type WatchEvent } from 'hull/sdk';
import { WebSocket } from 'ws';
import { removeBridge } from '../../src/network/serve-bridge.js';
import { statusField } from '../../src/sys/processes.js';
import { freePort, pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import {
  killEverySandbox,
  serveBridge,
  serveStateDir,
  startServe as startServeOn,
  stopServe as stopServeRun,
} from '../fixtures/serve.js';
import { type HullRun, privateDirs, qemuProcessesUsing, startHull } from './harness.js';

/** The SDK as a separate client process imports it: the built module itself. */
const SDK_MODULE = resolve(fileURLToPath(import.meta.url), '../../../src/sdk/sandbox.js');

/** Resolves once `read()` holds `text`; fails after `timeoutMs`. */
async function until(read: () => string, text: string | RegExp, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const found = () => (typeof text === 'string' ? read().includes(text) : text.test(read()));
  while (!found()) {
    if (Date.now() > deadline)
      throw new Error(`never saw ${text}; had: ${JSON.stringify(read().slice(-500))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const isApiError = (status: number, code: string) => (err: unknown) =>
  err instanceof HullApiError && err.status === status && err.code === code && !err.message.includes('\n');

/**
 * Issue 27: terminals, background commands followed again after the client and the server
 * restart, file metadata, the server's limits, and attacks on the API, through the SDK
 * against a real `hull serve`. One sandbox serves every check (the server takes only one).
 */
describe('hull serve: terminals, commands found again, limits and attacks', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let env: NodeJS.ProcessEnv;
  // Sandboxes with network 'internet' go on a bridge of this file's own.
  const bridge = serveBridge('hx', '10.214.0.0/24');
  let server: HullRun | undefined;
  let api: string;
  let sandbox: Sandbox;

  function startServe(): Promise<HullRun> {
    const limits = ['--max-upload-mib', '2', '--max-sandboxes', '1', '--max-requests', '64'];
    return startServeOn(dirs.root, ['--listen', api, ...limits], env);
  }

  async function stopServe(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopServeRun(server, signal);
    server = undefined;
  }

  before(async () => {
    dirs = await privateDirs('serve-sessions');
    env = { HULL_STATE_DIR: await serveStateDir(dirs.scratch), ...bridge.env };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushBusybox(dirs.scratch, registry);
    api = `unix:${join(dirs.scratch, 'api.sock')}`;
    server = await startServe();
    sandbox = await Sandbox.create({ api, image, timeoutMs: 900_000, metadata: { suite: 'sessions' } });
  });

  after(async () => {
    await killEverySandbox(api);
    await stopServe();
    await registry?.stop();
    await removeBridge(bridge.network);
    assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/`), [], 'no QEMU process is left');
    await dirs?.cleanup();
  });

  test('a second sandbox past --max-sandboxes is refused with 429 ERR_LIMIT, and nothing is made', async () => {
    await assert.rejects(Sandbox.create({ api, image }), isApiError(429, 'ERR_LIMIT'));
    const listed = await Sandbox.list({ api });
    assert.deepEqual(
      listed.map((s) => s.sandboxId),
      [sandbox.sandboxId],
    );
    const records = await readdir(join(dirs.root, '@serve', 'sandboxes'));
    assert.deepEqual(records, [sandbox.sandboxId]);
  });

  test('a terminal: output as typed, the size it was made with, resize, and its exit', async () => {
    let screen = '';
    const decoder = new TextDecoder();
    const pty = await sandbox.pty.create({
      cols: 80,
      rows: 24,
      onData: (data) => {
        screen += decoder.decode(data, { stream: true });
      },
    });
    assert.ok(pty.pid > 0);
    pty.sendInput('stty size; tty\n');
    await until(() => screen, /24 80\r?\n/);
    await until(() => screen, /\/dev\/pts\/\d+|not a tty/);
    assert.match(screen, /\/dev\/pts\/\d+/, 'the process runs on a terminal');
    pty.resize({ cols: 132, rows: 43 });
    pty.sendInput('stty size\n');
    await until(() => screen, /43 132\r?\n/);
    // Input goes through the terminal's line discipline: ^C interrupts what runs.
    pty.sendInput('sleep 100\n');
    await new Promise((r) => setTimeout(r, 500));
    pty.sendInput('\x03');
    pty.sendInput('echo after-interrupt\n');
    await until(() => screen, /\nafter-interrupt\r?\n/);
    // The client lets go; the shell runs on, and a new handle carries on where it stopped.
    pty.disconnect();
    await assert.rejects(pty.wait(), (err) => err instanceof HullApiError && err.code === 'ERR_STATE');
    const again = await sandbox.pty.connect(pty.commandId, (data) => {
      screen += decoder.decode(data, { stream: true });
    });
    assert.equal(again.pid, pty.pid);
    again.sendInput('echo reconnected\n');
    await until(() => screen, /\nreconnected\r?\n/);
    again.sendInput('exit 3\n');
    assert.deepEqual(await again.wait(), { exitCode: 3 });
    assert.deepEqual(
      (await sandbox.commands.list()).filter((c) => c.pty),
      [],
      'a terminal whose exit was read is gone',
    );
  });

  test('files: stat and rename; path tricks (.., symlinks to /proc/1/root and to host paths) stay in the guest', async () => {
    await sandbox.files.write('/data/a.txt', 'hello');
    const a = await sandbox.files.stat('/data/a.txt');
    assert.equal(a.type, 'file');
    assert.equal(a.size, 5);
    assert.equal(a.name, 'a.txt');
    assert.ok(Math.abs(Date.parse(a.modifiedAt) - Date.now()) < 10 * 60_000, a.modifiedAt);
    assert.equal((await sandbox.files.stat('/data')).type, 'dir');
    await sandbox.files.rename('/data/a.txt', '/data/moved/b.txt');
    assert.equal(await sandbox.files.exists('/data/a.txt'), false);
    assert.equal(await sandbox.files.read('/data/moved/b.txt'), 'hello');
    await assert.rejects(sandbox.files.stat('/data/a.txt'), isApiError(404, 'ERR_NOT_FOUND'));
    await assert.rejects(sandbox.files.rename('/data/none', '/data/x'), isApiError(404, 'ERR_NOT_FOUND'));
    await assert.rejects(sandbox.files.rename('/data/moved/b.txt', '/data'), isApiError(409, 'ERR_EXISTS'));

    // A symlink is described, not followed.
    await sandbox.commands.run(['ln', '-s', '/proc/1/root', '/tmp/init-root']);
    const link = await sandbox.files.stat('/tmp/init-root');
    assert.deepEqual([link.type, link.symlinkTarget], ['symlink', '/proc/1/root']);

    // /proc/1/root from inside the container is the container's own root, never the host's.
    const passwd = 'root:x:0:0:root:/root:/bin/sh\n';
    assert.equal(await sandbox.files.read('/tmp/init-root/etc/passwd'), passwd);
    assert.equal(await sandbox.files.read('/../../../../etc/passwd'), passwd);

    // The host paths of this sandbox's bundle and of the host's files mean nothing in the guest.
    const hostBundle = join(dirs.root, '@serve', 'sandboxes', sandbox.sandboxId, 'bundle');
    const hostConfig = join(hostBundle, 'config.json');
    const configBefore = await readFile(hostConfig);
    await sandbox.commands.run(['ln', '-s', hostBundle, '/tmp/bundle']);
    await assert.rejects(sandbox.files.read('/tmp/bundle/config.json'), isApiError(404, 'ERR_NOT_FOUND'));
    await sandbox.files.write(`/tmp/init-root${hostConfig}`, 'overwritten');
    await sandbox.files.rename('/data/moved/b.txt', `/../..${dirs.scratch}/planted`);
    assert.deepEqual(await readFile(hostConfig), configBefore, "the host's bundle is untouched");
    await assert.rejects(stat(join(dirs.scratch, 'planted')), 'nothing was written on the host');
    // What was written went into the container's own tree.
    assert.equal(await sandbox.files.read('/tmp/bundle/config.json'), 'overwritten');
    assert.equal(await sandbox.files.read(`${dirs.scratch}/planted`), 'hello');
  });

  test('watch: changes in a directory as they happen, its path resolved in the container', async () => {
    // /dev/shm is a tmpfs in every container.
    const dir = '/dev/shm/watched';
    await sandbox.files.makeDir(dir);
    const events: WatchEvent[] = [];
    const seen = () => events.map((e) => `${e.type} ${e.name}${e.isDir ? '/' : ''}`).join('\n');
    let ended: unknown = 'running';
    const watch = await sandbox.files.watch(dir, (e) => events.push(e), {
      onExit: (err) => {
        ended = err;
      },
    });
    await sandbox.commands.run(`echo x > ${dir}/a.txt; mkdir ${dir}/sub; chmod 600 ${dir}/a.txt`);
    await sandbox.files.rename(`${dir}/a.txt`, `${dir}/b.txt`);
    await sandbox.files.remove(`${dir}/b.txt`);
    await until(seen, 'remove b.txt');
    for (const line of [
      'create a.txt',
      'write a.txt',
      'create sub/',
      'chmod a.txt',
      'rename a.txt',
      'create b.txt',
    ])
      assert.ok(seen().includes(line), `${line} in:\n${seen()}`);
    assert.ok(events.every((e) => e.path === `${dir}/${e.name}`));
    // The directory itself going away ends the watch, without an error.
    await sandbox.files.remove(dir);
    await until(() => String(ended), 'undefined');
    await watch.stop();

    // Through a symlink to /proc/1/root: still the container's own directory.
    await sandbox.files.makeDir('/dev/shm/watched2');
    const viaProc: WatchEvent[] = [];
    const second = await sandbox.files.watch('/tmp/init-root/dev/shm/watched2', (e) => viaProc.push(e));
    await sandbox.files.write('/dev/shm/watched2/c', 'y');
    await until(() => viaProc.map((e) => e.name).join(' '), 'c');
    await second.stop();

    // A directory of the root: watched, or (on a 9p root, where inotify sees nothing) refused.
    const onRoot: WatchEvent[] = [];
    const rootWatch = await sandbox.files
      .watch('/data', (e) => onRoot.push(e))
      .catch((err: unknown) => {
        assert.ok(err instanceof HullApiError && err.code === 'ERR_UNSUPPORTED', String(err));
        return undefined;
      });
    if (rootWatch) {
      await sandbox.files.write('/data/seen', 'z');
      await until(() => onRoot.map((e) => e.name).join(' '), 'seen');
      await rootWatch.stop();
    }

    // A missing directory, a file, a relative path: each refused with its code.
    await assert.rejects(
      sandbox.files.watch('/no/such/dir', () => {}),
      isApiError(0, 'ERR_NOT_FOUND'),
    );
    await assert.rejects(
      sandbox.files.watch('/dev/shm/watched2/c', () => {}),
      isApiError(0, 'ERR_CONFIG'),
    );
    await assert.rejects(
      sandbox.files.watch('relative', () => {}),
      isApiError(400, 'ERR_VALIDATION'),
    );
  });

  test('a background command outlives its client: a new client process lists it, connects, types and waits', async () => {
    // A first client, a process of its own: starts the command, sees its first output, and exits
    // without closing its input or waiting.
    const script = `
      import { Sandbox } from ${JSON.stringify(SDK_MODULE)};
      const sandbox = await Sandbox.connect(process.argv[2], { api: process.argv[3] });
      const cmd = 'echo started; while read l; do echo "got $l"; done; echo bye; exit 5';
      let out = '';
      const handle = await sandbox.commands.run(cmd, { background: true, onStdout: (d) => { out += d; } });
      handle.sendStdin('one\\n');
      while (!out.includes('got one')) await new Promise((r) => setTimeout(r, 20));
      process.stdout.write(JSON.stringify({ commandId: handle.commandId, pid: handle.pid, out }) + '\\n');
      process.exit(0);
    `;
    const scriptPath = join(dirs.scratch, 'first-client.mjs');
    await writeFile(scriptPath, script);
    const child = spawn(process.execPath, [scriptPath, sandbox.sandboxId, api], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let said = '';
    let complaint = '';
    child.stdout.on('data', (c: Buffer) => {
      said += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      complaint += c.toString();
    });
    const code = await new Promise((r) => child.on('close', r));
    assert.equal(code, 0, complaint);
    const first = JSON.parse(said) as { commandId: string; pid: number; out: string };
    assert.equal(first.out, 'started\ngot one\n');

    // A new client (this process) finds it by listing, then by pid.
    const again = await Sandbox.connect(sandbox.sandboxId, { api });
    const listed = await again.commands.list();
    const info = listed.find((c) => c.commandId === first.commandId);
    assert.ok(info, `listed: ${JSON.stringify(listed)}`);
    assert.deepEqual([info.status, info.background, info.pty], ['running', true, false]);
    let out = '';
    const handle = await again.commands.connect(first.pid, {
      onStdout: (d) => {
        out += d;
      },
    });
    assert.equal(handle.commandId, first.commandId);
    // A second follower is refused while this one is attached.
    const other = await again.commands.connect(first.commandId);
    await assert.rejects(other.wait(), (err) => err instanceof HullApiError && err.code === 'ERR_STATE');
    handle.sendStdin('two\n');
    await until(() => out, 'got two\n');
    handle.closeStdin();
    assert.deepEqual(await handle.wait(), { exitCode: 5, stdout: 'got two\nbye\n', stderr: '' });
    await assert.rejects(again.commands.connect(first.commandId), isApiError(404, 'ERR_NOT_FOUND'));
  });

  test('the server killed with SIGKILL and restarted: a background command is followed again with what it wrote meanwhile; a foreground one is ended', async () => {
    let before = '';
    const ticker = await sandbox.commands.run(
      'i=0; while [ $i -lt 15 ]; do i=$((i+1)); echo "tick $i"; sleep 0.4; done; read l; echo "got $l"',
      {
        background: true,
        onStdout: (d) => {
          before += d;
        },
      },
    );
    await until(() => before, 'tick 2\n');
    // A foreground command whose client's stream dies with the server.
    const foreground = sandbox.commands.run('sleep 1234');
    foreground.catch(() => {});
    await new Promise((r) => setTimeout(r, 1000));
    await stopServe('SIGKILL');
    await foreground.catch(() => {});
    // The command keeps writing while no server reads it.
    await new Promise((r) => setTimeout(r, 3000));
    server = await startServe();

    const again = await Sandbox.connect(sandbox.sandboxId, { api });
    const info = (await again.commands.list()).find((c) => c.commandId === ticker.commandId);
    assert.ok(info, 'the background command is listed again');
    assert.equal(info.outputMayBeIncomplete, true);
    let after = '';
    const handle = await again.commands.connect(ticker.commandId, {
      onStdout: (d) => {
        after += d;
      },
    });
    await until(() => after, 'tick 15\n', 60_000);
    handle.sendStdin('late\n');
    const result = await handle.wait();
    assert.equal(result.exitCode, 0);
    assert.equal(result.outputMayBeIncomplete, true);
    assert.match(after, /got late\n$/);
    // The lines after the restart follow on from each other up to the end: what the guest
    // held while no server ran is all there.
    const ticks = after.match(/tick (\d+)/g)!.map((t) => Number(t.slice(5)));
    assert.deepEqual(
      ticks,
      Array.from({ length: ticks.length }, (_, i) => ticks[0]! + i),
    );
    assert.ok(ticks[0]! <= 9, `output written while the server was down arrives: ${ticks[0]}`);
    // The foreground command went with its stream.
    const ps = await again.commands.run('ps -o args');
    assert.doesNotMatch(ps.stdout, /sleep 1234/);
    sandbox = again;
  });

  test('an unauthenticated TCP request, WebSocket or create is refused with 401 and makes nothing', async () => {
    const port = await freePort();
    const token = randomBytes(24).toString('hex');
    const tokenFile = join(dirs.scratch, 'token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const tcp = startHull(
      ['--root', dirs.root, 'serve', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile],
      { env, input: null },
    );
    try {
      await tcp.waitForOutput('listening on', 60_000);
      const base = `http://127.0.0.1:${port}`;
      const create = await fetch(`${base}/v1/sandboxes`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ image }),
      });
      assert.equal(create.status, 401);
      const write = await fetch(`${base}/v1/sandboxes/${sandbox.sandboxId}/files?path=/tmp/x`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', authorization: 'Bearer nope' },
        body: 'x',
      });
      assert.equal(write.status, 401);
      const refused = await new Promise<number>((resolveStatus) => {
        const ws = new WebSocket(
          `ws://127.0.0.1:${port}/v1/sandboxes/${sandbox.sandboxId}/commands/${'0'.repeat(8)}-0000-0000-0000-${'0'.repeat(12)}/stream`,
        );
        ws.on('unexpected-response', (_req, res) => resolveStatus(res.statusCode ?? 0));
        ws.on('open', () => resolveStatus(101));
        ws.on('error', () => {});
      });
      assert.equal(refused, 401);
      assert.equal(await sandbox.files.exists('/tmp/x'), false);
      const remote = await Sandbox.list({ api: base, token });
      assert.deepEqual(
        remote.map((s) => s.sandboxId),
        [sandbox.sandboxId],
      );
    } finally {
      tcp.child.kill('SIGTERM');
      await tcp.result;
    }
  });

  test('a 10 GiB upload is refused early, the server stays small, and nothing is left', async () => {
    const pid = server!.child.pid!;
    const tenGiB = 10 * 1024 ** 3;
    // Declared: refused from its length, before a byte of it is taken.
    let sent = 0;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    const generated = () =>
      new Readable({
        read() {
          if (sent >= tenGiB) this.push(null);
          else {
            sent += chunk.length;
            this.push(chunk);
          }
        },
      });
    await assert.rejects(
      sandbox.files.write('/tmp/huge', generated(), { length: tenGiB }),
      isApiError(413, 'ERR_TOO_LARGE'),
    );
    assert.ok(sent < tenGiB, `the client stopped sending: ${sent}`);
    // Undeclared: cut off at the limit while it streams.
    sent = 0;
    await assert.rejects(sandbox.files.write('/tmp/huge', generated()), isApiError(413, 'ERR_TOO_LARGE'));
    assert.ok(sent < tenGiB, `the client stopped sending: ${sent}`);
    const peak = Number(statusField(await readFile(`/proc/${pid}/status`, 'utf8'), 'VmHWM').split(/\s+/)[0]);
    assert.ok(peak * 1024 < 400 * 1024 * 1024, `the server's peak memory stayed bounded: ${peak} KiB`);
    const tmp = (await sandbox.files.list('/tmp')).map((e) => e.name);
    assert.ok(!tmp.some((n) => n.startsWith('huge')), `no partial upload is left: ${tmp}`);
  });

  test('1,000 concurrent requests: each answered or refused with 503 ERR_BUSY; the server lives on', async () => {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) =>
        i % 2 === 0 ? sandbox.getInfo() : Sandbox.list({ api, metadata: { suite: 'sessions' } }),
      ),
    );
    let answered = 0;
    let busy = 0;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') {
        answered++;
        const value = outcome.value;
        const id = Array.isArray(value) ? value[0]?.sandboxId : value.sandboxId;
        assert.equal(id, sandbox.sandboxId);
      } else {
        assert.ok(isApiError(503, 'ERR_BUSY')(outcome.reason), String(outcome.reason));
        busy++;
      }
    }
    assert.equal(answered + busy, 1000);
    assert.ok(answered > 0, 'some were answered');
    assert.equal((await sandbox.commands.run('echo still')).stdout, 'still\n');
    assert.equal(server!.child.exitCode, null, 'the server lives on');
  });
});
