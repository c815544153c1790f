import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, lstat, mkdtemp, readdir, readFile } from 'node:fs/promises';
import { createConnection, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { HullApiError, Sandbox, type WatchEvent } from 'hull/sdk';
import { shareServerOf } from '../../src/hypervisor/jail/share-server.js';
import { ROOTFS_DISK_ANNOTATION, ROOTFS_IMAGE_ANNOTATION } from '../../src/oci/rootfs-annotations.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import {
  killEverySandbox,
  serveStateDir,
  startServe as startServeOn,
  stopServe as stopServeRun,
} from '../fixtures/serve.js';
import { type HullRun, hull, privateDirs, qemuProcessesUsing } from './harness.js';

/** A QMP session on a VM's debug QMP socket: what `query-migrate` and `migrate` say. */
class Qmp {
  private buffer = '';
  private readonly waiting: ((line: Record<string, unknown>) => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      for (let nl = this.buffer.indexOf('\n'); nl >= 0; nl = this.buffer.indexOf('\n')) {
        const message = JSON.parse(this.buffer.slice(0, nl)) as Record<string, unknown>;
        this.buffer = this.buffer.slice(nl + 1);
        if ('event' in message) continue;
        this.waiting.shift()?.(message);
      }
    });
  }

  static async open(path: string): Promise<Qmp> {
    const socket = createConnection(path);
    const qmp = new Qmp(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    await qmp.next(); // the greeting
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  private next(): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  async execute<T>(command: string, args?: Record<string, unknown>): Promise<T> {
    const answer = this.next();
    this.socket.write(`${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) })}\n`);
    const message = await answer;
    if (message.error) throw new Error(`${command}: ${JSON.stringify(message.error)}`);
    return message.return as T;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Resolves once `read()` holds `text`; fails after `timeoutMs`. */
async function until(read: () => string, text: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!read().includes(text)) {
    if (Date.now() > deadline)
      throw new Error(`never saw ${text}; had: ${JSON.stringify(read().slice(-500))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * `mib` MiB of random bytes as a stream, made 1 MiB at a time (never held whole), and the
 * sha256 of what it gave once it has ended.
 */
function randomStream(mib: number): { stream: Readable; digest: () => string } {
  const hash = createHash('sha256');
  let left = mib;
  const stream = new Readable({
    read() {
      if (left-- === 0) {
        this.push(null);
        return;
      }
      const chunk = randomBytes(2 ** 20);
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, digest: () => hash.digest('hex') };
}

/**
 * Issue 27: serve's sandboxes have their image as a read-only erofs disk and a writable disk
 * of their own, joined by overlayfs in the guest, with no 9p share mounted: their VM can be
 * saved (issue 28 builds on this).
 */
describe('hull serve: a sandbox root on disks', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let env: NodeJS.ProcessEnv;
  let server: HullRun | undefined;
  let api: string;
  let state: string;

  /** The one container-images entry's erofs disk (one image is pulled here). */
  async function imageDisks(): Promise<string[]> {
    const cache = join(state, 'container-images');
    const found: string[] = [];
    for (const name of await readdir(cache).catch(() => [] as string[])) {
      const files = await readdir(join(cache, name)).catch(() => [] as string[]);
      if (files.includes('rootfs.erofs')) found.push(join(cache, name, 'rootfs.erofs'));
    }
    return found;
  }

  const sandboxDir = (id: string) => join(dirs.root, '@serve', 'sandboxes', id);

  /**
   * `hull serve` on this file's root, with `extraEnv`. Sandboxes are cloned from templates,
   * except with the debug console (HULL_DEBUG_CONSOLE=on), which gives each VM a QMP socket
   * root can inspect it by, and boots them.
   */
  async function startServe(extraEnv: NodeJS.ProcessEnv = {}): Promise<void> {
    await stopServe();
    server = await startServeOn(dirs.root, ['--listen', api], { ...env, ...extraEnv });
  }

  async function stopServe(): Promise<void> {
    await stopServeRun(server);
    server = undefined;
  }

  before(async () => {
    dirs = await privateDirs('serve-rootfs');
    state = await serveStateDir(dirs.scratch);
    env = { HULL_STATE_DIR: state };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushBusybox(dirs.scratch, registry);
    api = `unix:${join(dirs.scratch, 'api.sock')}`;
  });

  after(async () => {
    await killEverySandbox(api);
    await stopServe();
    await registry?.stop();
    await dirs?.cleanup();
  });

  test('overlay over erofs and ext4, no 9p; writes persist, stay apart, stop at diskMiB; 200 MiB streamed both ways; a root directory watched; kill leaves no disk', async () => {
    await startServe();
    const [a, b] = await Promise.all([
      Sandbox.create({ api, image, network: 'none', diskMiB: 128, timeoutMs: 600_000 }),
      Sandbox.create({ api, image, network: 'none', timeoutMs: 600_000 }),
    ]);
    try {
      // Cloned from a template booted with placeholder disks: each clone has its own.
      const templates = await readdir(join(state, 'templates'));
      assert.ok(
        templates.some((name) => /^[0-9a-f]{16}$/.test(name)),
        `a template was made: ${templates}`,
      );
      assert.equal(a.info.diskMiB, 128);
      assert.equal(b.info.diskMiB, 2048, 'the default disk size');
      // The guest never mounts a share: its QEMU has no 9p device and no share server runs.
      const [vmm] = await qemuProcessesUsing(`${join(dirs.root, a.sandboxId)}/`);
      assert.ok(vmm, 'the sandbox has a QEMU');
      const cmdline = await readFile(`/proc/${vmm}/cmdline`, 'utf8');
      assert.ok(!cmdline.includes('virtio-9p-device'), 'no 9p device');
      assert.equal(await shareServerOf(vmm), undefined, 'no hull-share-server');
      const mounts = await a.commands.run('cat /proc/mounts');
      assert.equal(mounts.exitCode, 0, mounts.stderr);
      const root = mounts.stdout.split('\n').find((line) => line.split(' ')[1] === '/');
      assert.match(
        root ?? '',
        /^overlay \/ overlay .*lowerdir=\/run\/hull\/rootfs\/[^,]+\/image,upperdir=\/run\/hull\/rootfs\/[^,]+\/disk\/upper/,
      );
      assert.doesNotMatch(mounts.stdout, / 9p /, 'nothing over 9p in the container');
      const df = await a.commands.run('df -k /');
      assert.equal(df.exitCode, 0, df.stderr);

      // Writes persist across commands, and through the files API.
      assert.equal((await a.commands.run('echo kept > /etc/mine && mkdir -p /data')).exitCode, 0);
      assert.equal((await a.commands.run('cat /etc/mine')).stdout, 'kept\n');
      await a.files.write('/data/file.txt', 'via files');
      assert.equal(await a.files.read('/data/file.txt'), 'via files');

      // Two sandboxes of one image: neither sees the other's writes, and the image is intact.
      const other = await b.commands.run('cat /etc/mine; ls /data');
      assert.notEqual(other.exitCode, 0);
      assert.match(other.stderr, /No such file or directory/);

      // The disk limit: a 128 MiB disk takes no 200 MiB file.
      const big = await a.commands.run('dd if=/dev/zero of=/data/big bs=1M count=200');
      assert.notEqual(big.exitCode, 0);
      assert.match(big.stderr, /No space left on device/);
      assert.equal(
        (await a.commands.run('rm /data/big && echo ok > /data/after')).exitCode,
        0,
        'space comes back',
      );

      // Only the guest wrote the disk: a sparse raw file of exactly the limit, the host's own.
      const disk = await lstat(join(sandboxDir(a.sandboxId), 'disk.raw'));
      assert.equal(disk.size, 128 * 2 ** 20);
      assert.equal(disk.mode & 0o777, 0o600);
      assert.equal((await imageDisks()).length, 1, 'one erofs disk for the image, shared');

      const killed = a.sandboxId;
      await a.kill();
      assert.deepEqual(await readdir(sandboxDir(killed)).catch(() => 'gone'), 'gone', 'no disk is left');
      assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/${killed}`), []);
      // The other sandbox is untouched.
      assert.equal((await b.commands.run('echo still')).stdout, 'still\n');

      // A 200 MiB binary file onto the writable disk and back, streamed both ways (the server's
      // default upload limit, 1 GiB, takes it), the same bytes by sha256 on each side.
      const mib = 200;
      const sent = randomStream(mib);
      await b.files.write('/data/big.bin', sent.stream, { length: mib * 2 ** 20 });
      const written = sent.digest();
      const inGuest = await b.commands.run('sha256sum /data/big.bin');
      assert.equal(inGuest.stdout.split(' ')[0], written, inGuest.stderr);
      const back = createHash('sha256');
      let received = 0;
      for await (const chunk of await b.files.read('/data/big.bin', { format: 'stream' })) {
        received += (chunk as Buffer).length;
        back.update(chunk as Buffer);
      }
      assert.equal(received, mib * 2 ** 20);
      assert.equal(back.digest('hex'), written, 'the bytes read back are the bytes written');
      assert.equal((await b.commands.run('rm /data/big.bin')).exitCode, 0);

      // A directory of the root is on disks, so inotify sees changes in it.
      assert.equal((await b.commands.run('mkdir -p /srv/watched')).exitCode, 0);
      const events: WatchEvent[] = [];
      const seen = () => events.map((e) => `${e.type} ${e.name}`).join('\n');
      const watch = await b.files.watch('/srv/watched', (e) => events.push(e));
      try {
        assert.equal((await b.commands.run('echo x > /srv/watched/made; rm /srv/watched/made')).exitCode, 0);
        await until(seen, 'remove made');
        assert.ok(seen().includes('create made'), seen());
        assert.ok(
          events.every((e) => e.path === `/srv/watched/${e.name}`),
          seen(),
        );
      } finally {
        await watch.stop();
      }
      // Stopped: later changes are no longer reported.
      const stoppedAt = events.length;
      assert.equal((await b.commands.run('touch /srv/watched/later')).exitCode, 0);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(events.length, stoppedAt, seen());
    } finally {
      await a.kill().catch(() => {});
      await b.kill().catch(() => {});
    }
  });

  test('the VM has no migration blocker: QEMU saves it, and it runs on after', async () => {
    await startServe({ HULL_DEBUG_CONSOLE: 'on' });
    const sandbox = await Sandbox.create({ api, image, network: 'none', timeoutMs: 600_000 });
    let qmp: Qmp | undefined;
    try {
      assert.equal((await sandbox.commands.run('echo before > /before')).exitCode, 0);
      const debugDir = join(dirs.root, sandbox.sandboxId, 'vm', 'debug');
      qmp = await Qmp.open(join(debugDir, 'qmp.sock'));
      const info = await qmp.execute<{ 'blocked-reasons'?: string[] }>('query-migrate');
      assert.deepEqual(info['blocked-reasons'] ?? [], [], 'QEMU names no reason the VM cannot be saved');

      // And it is saved: the migration stream to a socket QEMU can reach in its jail.
      const target = join(debugDir, 'migrate.sock');
      let received = 0;
      const listener = createServer((stream) => {
        stream.on('data', (chunk: Buffer) => {
          received += chunk.length;
        });
      });
      await new Promise<void>((resolve) => listener.listen(target, resolve));
      await chmod(target, 0o777);
      try {
        await qmp.execute('migrate', { uri: `unix:${target}` });
        let status = '';
        for (let i = 0; i < 1200 && status !== 'completed'; i++) {
          const state = await qmp.execute<{ status?: string; 'error-desc'?: string }>('query-migrate');
          status = state.status ?? '';
          assert.ok(
            status !== 'failed' && status !== 'cancelled',
            `migration ${status}: ${state['error-desc']}`,
          );
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(status, 'completed');
        assert.ok(received > 1_000_000, `the saved state holds the guest's memory (${received} bytes)`);
      } finally {
        listener.close();
      }
      await qmp.execute('cont');
      const after = await sandbox.commands.run('cat /before; echo after > /after; cat /after');
      assert.equal(after.stdout, 'before\nafter\n', 'the sandbox runs on after being saved');
    } finally {
      qmp?.close();
      await sandbox.kill().catch(() => {});
    }
  });

  test('a disk size out of bounds is a 400; root disks a bundle names elsewhere are refused, leaving nothing', async () => {
    await startServe();
    for (const diskMiB of [0, 63, 65537, 1.5]) {
      await assert.rejects(
        Sandbox.create({ api, image, network: 'none', diskMiB }),
        (err) => err instanceof HullApiError && err.status === 400 && err.code === 'ERR_VALIDATION',
      );
    }
    assert.deepEqual(await Sandbox.list({ api }), []);

    // The same annotations in a bundle of one's own, pointing at host files: one line, no VM.
    const root = join(dirs.scratch, 'cli-root');
    for (const [imagePath, diskPath, said] of [
      ['/etc/passwd', '/etc/shadow', /is not this container's own disk: only hull serve names one/],
      [undefined, join(root, 'disk.raw'), /go together/],
    ] as const) {
      const bundle = await mkdtemp(join(dirs.scratch, 'bundle-'));
      await makeBusyboxBundle(bundle, ['true'], (spec) => {
        spec.annotations = {
          ...(imagePath ? { [ROOTFS_IMAGE_ANNOTATION]: imagePath } : {}),
          [ROOTFS_DISK_ANNOTATION]: diskPath,
        };
      });
      const r = await hull(['--root', root, 'run', '-b', bundle, 'disks-elsewhere'], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, said);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.deepEqual(await readdir(root).catch(() => []), [], 'nothing left under the root');
      assert.deepEqual(await qemuProcessesUsing(root), []);
    }
  });

  test('prune removes the image with its erofs disk', async () => {
    assert.equal((await imageDisks()).length, 1);
    const pruned = await hull(['--root', dirs.root, 'container-images', 'prune'], { env });
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(await imageDisks(), []);
  });
});
