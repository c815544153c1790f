import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { access, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { HullApiError, Sandbox } from 'hull/sdk';
import { removeBridge } from '../../src/network/serve-bridge.js';
import { freePort, pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import {
  killEverySandbox,
  serveBridge,
  serveStateDir,
  startServe as startServeOn,
  stopServe as stopServeRun,
} from '../fixtures/serve.js';
import { type HullRun, hull, privateDirs, processExit, qemuProcessesUsing, startHull } from './harness.js';

/** Issue 27: sandboxes as a service, used through the SDK as a user would. */
describe('hull serve and the SDK', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let env: NodeJS.ProcessEnv;
  let server: HullRun | undefined;
  let socket: string;
  let api: string;
  const bridge = serveBridge('hs', '10.212.0.0/24');

  /** `hull serve` on the file's own socket and root, as a user would start it. */
  function startServe(extra: string[] = []): Promise<HullRun> {
    return startServeOn(dirs.root, ['--listen', api, '--max-upload-mib', '2', ...extra], env);
  }

  async function stopServe(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopServeRun(server, signal);
    server = undefined;
  }

  /** What a user would check once a sandbox is gone: no VM, no container, nothing of serve. */
  async function assertSandboxGone(id: string): Promise<void> {
    assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/`), [], 'no QEMU process is left');
    const left = await readdir(dirs.root).catch(() => [] as string[]);
    assert.ok(!left.includes(id), `the container's directory ${id} is gone`);
    const records = await readdir(join(dirs.root, '@serve', 'sandboxes')).catch(() => [] as string[]);
    assert.ok(!records.includes(id), "the server's record of it is gone");
  }

  before(async () => {
    dirs = await privateDirs('serve');
    // Sandboxes have network 'internet' by default: on a bridge of this file's own.
    env = { HULL_STATE_DIR: await serveStateDir(dirs.scratch), ...bridge.env };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushBusybox(dirs.scratch, registry);
    socket = join(dirs.scratch, 'api.sock');
    api = `unix:${socket}`;
    server = await startServe();
  });

  after(async () => {
    await killEverySandbox(api);
    await stopServe();
    await registry?.stop();
    await removeBridge(bridge.network);
    await dirs?.cleanup();
  });

  test('TCP without a token is refused at start; with one, a request without it gets 401', async () => {
    const port = await freePort();
    const refused = await hull(['--root', dirs.root, 'serve', '--listen', `127.0.0.1:${port}`], { env });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^hull: .*--token-file.*\n$/);

    const token = randomBytes(24).toString('hex');
    const tokenFile = join(dirs.scratch, 'token');
    await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
    const tcp = startHull(
      ['--root', dirs.root, 'serve', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile],
      {
        env,
        input: null,
      },
    );
    try {
      await tcp.waitForOutput('listening on', 60_000);
      const bare = await fetch(`http://127.0.0.1:${port}/v1/sandboxes`);
      assert.equal(bare.status, 401);
      assert.equal(((await bare.json()) as { error: { code: string } }).error.code, 'ERR_UNAUTHORIZED');
      const listed = await Sandbox.list({ api: `http://127.0.0.1:${port}`, token });
      assert.ok(Array.isArray(listed));
      await assert.rejects(
        Sandbox.list({ api: `http://127.0.0.1:${port}`, token: 'x'.repeat(48) }),
        (err) => {
          return err instanceof HullApiError && err.status === 401 && err.code === 'ERR_UNAUTHORIZED';
        },
      );
    } finally {
      tcp.child.kill('SIGTERM');
      await tcp.result;
    }
  });

  test("the socket is its owner's only; bad input is a 400 with a code, an oversized body a 413", async () => {
    assert.equal((await stat(socket)).mode & 0o777, 0o600);
    await assert.rejects(Sandbox.create({ api, image, cpus: -1 }), (err) => {
      return (
        err instanceof HullApiError &&
        err.status === 400 &&
        err.code === 'ERR_VALIDATION' &&
        !err.message.includes('\n')
      );
    });
    await assert.rejects(Sandbox.create({ api, image: 'docker://evil' }), (err) => {
      return err instanceof HullApiError && err.status === 400 && err.code === 'ERR_CONFIG';
    });
    const big = JSON.stringify({ image, metadata: { pad: 'x'.repeat(2 * 1024 * 1024) } });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          socketPath: socket,
          path: '/v1/sandboxes',
          method: 'POST',
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', reject);
      req.end(big);
    });
    assert.equal(answer.status, 413);
    assert.equal(JSON.parse(answer.body).error.code, 'ERR_TOO_LARGE');
    // An image the registry does not have: refused with its own code, nothing pulled or made.
    await assert.rejects(Sandbox.create({ api, image: `${registry.address}/missing:latest` }), (err) => {
      return err instanceof HullApiError && err.status === 424 && err.code === 'ERR_REGISTRY';
    });
    const cache = await readdir(join(env.HULL_STATE_DIR!, 'container-images')).catch(() => [] as string[]);
    assert.deepEqual(
      cache.filter((name) => name !== 'references.json'),
      [],
      'no partial pull is left in the image cache',
    );
    assert.deepEqual(await Sandbox.list({ api }), [], 'no sandbox was made by any of these');
    assert.deepEqual(await readdir(dirs.root).catch(() => []), [], 'the runtime root holds nothing');
  });

  test('a sandbox from a registry image: commands stream, files go in and out, kill leaves nothing', async () => {
    const sandbox = await Sandbox.create({
      api,
      image,
      env: { GREETING: 'hello' },
      metadata: { suite: 'serve', run: 'one' },
      timeoutMs: 600_000,
    });
    try {
      assert.match(sandbox.info.imageDigest, /^sha256:[0-9a-f]{64}$/);

      // Output arrives as it is written, in order, each stream apart, with the exit code.
      const pieces: string[] = [];
      const streamed = await sandbox.commands.run(
        'for i in 1 2 3; do echo "line $i $GREETING"; sleep 0.3; done; echo oops >&2; exit 7',
        { onStdout: (d) => pieces.push(d) },
      );
      assert.equal(streamed.exitCode, 7);
      assert.equal(streamed.stdout, 'line 1 hello\nline 2 hello\nline 3 hello\n');
      assert.equal(streamed.stderr, 'oops\n');
      assert.ok(pieces.length >= 2, `output came in pieces as written: ${JSON.stringify(pieces)}`);

      // Nothing is lost at exit: half a megabyte written just before it.
      const bulk = await sandbox.commands.run('yes abcdefghi | head -n 50000; exit 0');
      assert.equal(bulk.stdout.length, 500_000);

      // argv, cwd, env, user and stdin.
      const argv = await sandbox.commands.run(
        ['/bin/sh', '-c', 'echo "$1 $(pwd) $X $(id -u)"; cat', 'sh', 'a;b'],
        {
          cwd: '/tmp',
          env: { X: 'ex' },
          user: '1000:1000',
          stdin: 'from stdin',
        },
      );
      assert.deepEqual(argv, { exitCode: 0, stdout: 'a;b /tmp ex 1000\nfrom stdin', stderr: '' });

      // In the background: a handle to send input to and wait on.
      const background = await sandbox.commands.run('read line; echo "got $line"', { background: true });
      assert.ok(background.pid > 0);
      background.sendStdin('typed\n');
      assert.deepEqual(await background.wait(), { exitCode: 0, stdout: 'got typed\n', stderr: '' });

      // A command's own time limit.
      const slow = await sandbox.commands.run('sleep 30', { timeoutMs: 500 });
      assert.equal(slow.exitCode, 137);
      assert.equal(slow.timedOut, true);

      // 1 MiB of binary through the files API; parents made on write.
      const data = randomBytes(1024 * 1024);
      await sandbox.files.write('/work/deep/data.bin', data);
      const back = await sandbox.files.read('/work/deep/data.bin', { format: 'bytes' });
      assert.ok(Buffer.from(back).equals(data), 'the file reads back byte for byte');
      const sum = await sandbox.commands.run(['md5sum', '/work/deep/data.bin']);
      assert.equal(sum.stdout.split(' ')[0], createHash('md5').update(data).digest('hex'));
      assert.equal(
        await sandbox.files.read('/work/deep/data.bin', { format: 'text' }).then((t) => typeof t),
        'string',
      );
      await sandbox.files.makeDir('/work/empty/dir');
      assert.deepEqual((await sandbox.files.list('/work')).map((e) => [e.name, e.type]).sort(), [
        ['deep', 'dir'],
        ['empty', 'dir'],
      ]);
      assert.equal(await sandbox.files.exists('/work/deep/data.bin'), true);
      await sandbox.files.remove('/work/deep');
      assert.equal(await sandbox.files.exists('/work/deep/data.bin'), false);
      await assert.rejects(sandbox.files.read('/work/deep/data.bin'), (err) => {
        return err instanceof HullApiError && err.status === 404 && err.code === 'ERR_NOT_FOUND';
      });

      // Path tricks resolve in the guest: `..` and a symlink out lead to the container's files.
      const passwd = 'root:x:0:0:root:/root:/bin/sh\n';
      assert.equal(await sandbox.files.read('/tmp/../../../etc/passwd'), passwd);
      await sandbox.commands.run(['ln', '-s', '/etc', '/tmp/out']);
      assert.equal(await sandbox.files.read('/tmp/out/passwd'), passwd);
      const marker = `hull-serve-${randomBytes(6).toString('hex')}`;
      await sandbox.files.write(`/tmp/out/${marker}`, 'x');
      await assert.rejects(access(join('/etc', marker)), 'nothing was written on the host');

      // An upload over the server's limit (2 MiB here) is refused and not written.
      await assert.rejects(sandbox.files.write('/tmp/big', Buffer.alloc(3 * 1024 * 1024)), (err) => {
        return err instanceof HullApiError && err.status === 413 && err.code === 'ERR_TOO_LARGE';
      });

      // Streamed without a length, it is cut off at the limit and leaves no partial file.
      const chunks = Array.from({ length: 48 }, () => Buffer.alloc(64 * 1024, 1));
      await assert.rejects(sandbox.files.write('/tmp/streamed', Readable.from(chunks)), (err) => {
        return err instanceof HullApiError && err.status === 413 && err.code === 'ERR_TOO_LARGE';
      });
      const tmp = (await sandbox.files.list('/tmp')).map((e) => e.name);
      assert.ok(
        !tmp.some((name) => name.startsWith('big') || name.startsWith('streamed')),
        `no upload is left: ${tmp}`,
      );

      // Found again by metadata, and by ID.
      const found = await Sandbox.list({ api, metadata: { suite: 'serve', run: 'one' } });
      assert.deepEqual(
        found.map((s) => s.sandboxId),
        [sandbox.sandboxId],
      );
      assert.deepEqual(await Sandbox.list({ api, metadata: { suite: 'serve', run: 'two' } }), []);
      const again = await Sandbox.connect(sandbox.sandboxId, { api });
      assert.equal((await again.commands.run('echo $GREETING')).stdout, 'hello\n');
    } finally {
      await sandbox.kill();
    }
    await assertSandboxGone(sandbox.sandboxId);
    await assert.rejects(Sandbox.connect(sandbox.sandboxId, { api }), (err) => {
      return err instanceof HullApiError && err.status === 404;
    });
  });

  test('a server killed with SIGKILL and restarted finds its sandbox, and still ends it when its time is over', async () => {
    const sandbox = await Sandbox.create({
      api,
      image,
      metadata: { suite: 'serve', run: 'restart' },
      timeoutMs: 600_000,
    });
    await sandbox.files.write('/root/kept', 'still here');
    await stopServe('SIGKILL');
    server = await startServe();

    const [found] = await Sandbox.list({ api, metadata: { run: 'restart' } });
    assert.equal(found?.sandboxId, sandbox.sandboxId);
    assert.deepEqual(found?.metadata, { suite: 'serve', run: 'restart' });
    const again = await Sandbox.connect(sandbox.sandboxId, { api });
    assert.equal(await again.files.read('/root/kept'), 'still here');
    assert.equal((await again.commands.run('echo alive')).stdout, 'alive\n');

    // The time to live set now is kept with the sandbox: a server killed again, and started
    // after it ran out, ends the sandbox.
    await again.setTimeout(5_000);
    assert.ok(Date.parse((await again.getInfo()).expiresAt) <= Date.now() + 5_000);
    await stopServe('SIGKILL');
    await new Promise((r) => setTimeout(r, 6_000));
    server = await startServe();
    assert.deepEqual(await Sandbox.list({ api }), []);
    await assertSandboxGone(sandbox.sandboxId);
  });

  test('a sandbox whose time runs out while the server runs is killed, leaving nothing', async () => {
    const sandbox = await Sandbox.create({ api, image, timeoutMs: 600_000 });
    const monitorPid = Number(
      JSON.parse(await readFile(join(dirs.root, sandbox.sandboxId, 'state.json'), 'utf8')).pid,
    );
    await sandbox.setTimeout(1_000);
    await processExit(monitorPid, 60_000);
    assert.deepEqual(await Sandbox.list({ api }), []);
    // The server removes its record once the container is deleted: give it a moment.
    for (let i = 0; i < 300 && (await readdir(dirs.root).catch(() => [])).length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await assertSandboxGone(sandbox.sandboxId);
    assert.deepEqual(await readdir(dirs.root).catch(() => []), [], 'the runtime root is empty');
  });

  test('sandboxes created at once, more than the server boots together, all answer, each with its own address', async () => {
    const refused = await hull(['--root', dirs.root, 'serve', '--listen', api, '--max-starting', '0'], {
      env,
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr.trim(), /^hull: --max-starting 0: give a whole number from 1 to 1000000$/);
    await stopServe();
    // Two booted at a time: the other three wait their turn, with no boot deadline running.
    server = await startServe(['--max-starting', '2']);
    const made = await Promise.all(
      Array.from({ length: 5 }, (_, i) => Sandbox.create({ api, image, metadata: { burst: String(i) } })),
    );
    try {
      const answers = await Promise.all(
        made.map((sandbox) =>
          sandbox.commands.run("ip -4 -o addr show eth0 | awk '{print $4}'; tr '\\0' ' ' < /proc/1/cmdline"),
        ),
      );
      const addresses = answers.map((a) => a.stdout.split('\n')[0]!);
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.exitCode, 0, answer.stderr);
        assert.match(
          addresses[i]!,
          /^10\.212\.0\.\d+\/24$/,
          `sandbox ${i} has an address of the bridge's subnet`,
        );
        // The container's init is the sandbox's idle process, started (not only created).
        assert.equal(answer.stdout.split('\n')[1], 'sleep 2147483647 ', `sandbox ${i}'s init runs`);
      }
      assert.equal(new Set(addresses).size, 5, `five addresses, all different: ${addresses.join(' ')}`);
    } finally {
      await Promise.all(made.map((sandbox) => sandbox.kill()));
    }
    for (const sandbox of made) await assertSandboxGone(sandbox.sandboxId);
    assert.deepEqual(await Sandbox.list({ api }), []);
  });

  test('hull container-images lists what was pulled, and prune removes what no sandbox uses', async () => {
    const listed = await hull(['--root', dirs.root, 'container-images', 'list', '--output', 'json'], { env });
    assert.equal(listed.code, 0, listed.stderr);
    const images = JSON.parse(listed.stdout) as { digest: string; references: string[] }[];
    assert.equal(images.length, 1);
    assert.deepEqual(images[0]!.references, [image]);
    const pruned = await hull(['--root', dirs.root, 'container-images', 'prune'], { env });
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.equal(pruned.stdout, `${images[0]!.digest}\n`);
    const after = await hull(['--root', dirs.root, 'container-images', 'list', '--output', 'json'], { env });
    assert.deepEqual(JSON.parse(after.stdout), []);
  });
});
