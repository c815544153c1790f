import assert from 'node:assert/strict';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { processesMentioning } from '../../src/sys/processes.js';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { IMAGE } from '../fixtures/oci-image.js';
import { assertNothingLeft, privateDirs } from './harness.js';

/** The layer containerd packs a task's checkpoint directory into (what the shim wrote). */
const CHECKPOINT_LAYER = 'application/vnd.containerd.container.criu.checkpoint.criu.tar';

/**
 * Issue 28, through containerd 1.6 as its users drive it: `ctr containers checkpoint --task`
 * of a lone task whose root is on disks (`ctr run --annotation dev.hull.rootfs=disk`) saves
 * its VM into containerd's checkpoint image, and `ctr containers restore --live` brings it
 * back under containerd with its shell's counter (held in memory) going on from where it was,
 * its files there, and exec, kill, exit status and delete working. A task on the 9p share is
 * refused in one line and runs on; a damaged checkpoint is refused in one line, leaving no
 * VM, shim, mount or state behind.
 */
describe('containerd checkpoint/restore with runtime io.containerd.hull.v2', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let containerd: Containerd;
  /** Where containerd makes its checkpoint directories (its temporary directory). */
  let tmp: string;
  const ctr = (...args: string[]) => containerd.ctr(args);

  before(async () => {
    dirs = await privateDirs('containerd-ckpt');
    tmp = join(dirs.scratch, 'tmp');
    await mkdir(tmp);
    containerd = await Containerd.start(join(dirs.scratch, 'c'), { env: { TMPDIR: tmp } });
    await containerd.importBusybox(join(dirs.scratch, 'image'));
  });
  after(async () => {
    await containerd?.stop();
    await dirs.cleanup();
  });
  // No shim server, VM, share or task mount outlives its task.
  afterEach(() => containerd.assertNothingLeft());

  const counterOf = async (id: string) => {
    const r = await ctr('task', 'exec', '--exec-id', `c${Date.now()}`, id, 'cat', '/tmp/count');
    assert.equal(r.code, 0, r.stderr);
    return Number(r.stdout.trim());
  };
  /** Waits until the counter reaches `atLeast` (the shell counts 5 a second, slower under TCG). */
  const counterReaches = async (id: string, atLeast: number) => {
    let count = await counterOf(id);
    for (let i = 0; i < 300 && count < atLeast; i++) {
      await new Promise((r) => setTimeout(r, 200));
      count = await counterOf(id);
    }
    assert.ok(count >= atLeast, `the counter reached ${count}, not ${atLeast}`);
    return count;
  };
  const statusOf = async (id: string) =>
    new RegExp(`^${id}\\s+\\d+\\s+([A-Z]+)`, 'm').exec((await ctr('task', 'ls')).stdout)?.[1];
  const killAndRemove = async (id: string) => {
    if ((await statusOf(id)) === 'RUNNING') {
      assert.equal((await ctr('task', 'kill', '--signal', 'SIGKILL', id)).code, 0);
      await waitFor(async () => (await statusOf(id)) === 'STOPPED');
    }
    await ctr('task', 'rm', id);
    assert.equal((await ctr('containers', 'rm', id)).code, 0);
  };

  /** Flips a byte in the middle of `name`'s data inside the (uncompressed) tar blob `path`. */
  const damageInTar = async (path: string, name: string) => {
    const file = await open(path, 'r+');
    try {
      const header = Buffer.alloc(512);
      for (let at = 0; ; ) {
        const { bytesRead } = await file.read(header, 0, 512, at);
        if (bytesRead < 512 || header[0] === 0) throw new Error(`${name} is not in ${path}`);
        const entry = header.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
        const size = Number.parseInt(
          header.subarray(124, 136).toString('utf8').replace(/\0.*$/s, '').trim(),
          8,
        );
        if (entry.replace(/^\.?\//, '') === name) {
          const middle = at + 512 + Math.floor(size / 2);
          const byte = Buffer.alloc(1);
          await file.read(byte, 0, 1, middle);
          byte[0] = byte[0]! ^ 0xff;
          await file.write(byte, 0, 1, middle);
          return;
        }
        at += 512 + Math.ceil(size / 512) * 512;
      }
    } finally {
      await file.close();
    }
  };
  /** The content-store file of a checkpoint image's layer of `mediaType`. */
  const checkpointBlob = async (ref: string) => {
    const images = await ctr('images', 'ls');
    const digest = new RegExp(`^${ref.replace(/[.:]/g, '\\$&')}\\s+\\S+\\s+(sha256:[0-9a-f]{64})`, 'm').exec(
      images.stdout,
    )?.[1];
    assert.ok(digest, `the checkpoint image ${ref} is listed: ${images.stdout}`);
    const index = JSON.parse((await ctr('content', 'get', digest)).stdout) as {
      manifests: { mediaType: string; digest: string }[];
    };
    const layer = index.manifests.find((m) => m.mediaType === CHECKPOINT_LAYER);
    assert.ok(layer, 'the checkpoint image holds the task checkpoint');
    return join(
      containerd.dir,
      'root',
      'io.containerd.content.v1.content',
      'blobs',
      'sha256',
      layer.digest.slice(7),
    );
  };

  test('a task on disks: checkpointed it runs on; restored, its counter goes on from the checkpoint, its files there, exec/kill/exit/delete work; a damaged checkpoint is refused', async (t) => {
    const started = await ctr(
      'run',
      '-d',
      '--runtime',
      HULL_RUNTIME,
      '--annotation',
      'dev.hull.rootfs=disk',
      IMAGE,
      'ck1',
      'sh',
      '-c',
      // The count is renamed into place: a VM saved between a plain redirect's truncation and
      // its write would restore an empty file, and a read right after the restore would see it.
      'i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i > /tmp/count.next; mv /tmp/count.next /tmp/count; sleep 0.2; done; exit 7',
    );
    assert.equal(started.code, 0, started.stderr);
    try {
      const wrote = await ctr('task', 'exec', '--exec-id', 'w1', 'ck1', 'sh', '-c', 'echo kept > /kept');
      assert.equal(wrote.code, 0, wrote.stderr);
      const before = await counterReaches('ck1', 10);
      const checkpointStart = Date.now();
      const checkpoint = await ctr('containers', 'checkpoint', '--task', 'ck1', 'ck1-ckpt:1');
      assert.equal(checkpoint.code, 0, checkpoint.stderr);
      const checkpointMs = Date.now() - checkpointStart;
      // As runc's: the task runs on after its checkpoint (ctr resumed it).
      assert.equal(await statusOf('ck1'), 'RUNNING');
      const after = await counterReaches('ck1', before + 5);
      await killAndRemove('ck1');
      assert.deepEqual(
        await processesMentioning(containerd.socket),
        [],
        'the checkpointed task left no shim',
      );
      await assertNothingLeft(containerd.hullRoot);

      const layerBytes = (await stat(await checkpointBlob('ck1-ckpt:1'))).size;
      const restoreStart = Date.now();
      const restore = await ctr('containers', 'restore', '--live', 'ck1', 'ck1-ckpt:1');
      assert.equal(restore.code, 0, restore.stderr);
      t.diagnostic(
        `ctr containers checkpoint --task ${checkpointMs} ms (checkpoint layer ${(layerBytes / 2 ** 20).toFixed(1)} MiB), restore --live ${Date.now() - restoreStart} ms`,
      );
      assert.equal(await statusOf('ck1'), 'RUNNING');
      const resumed = await counterOf('ck1');
      t.diagnostic(
        `counter: ${before} before the checkpoint, ${after} when killed, ${resumed} once restored`,
      );
      assert.ok(
        resumed >= before,
        `the counter goes on from the checkpoint (${before} or more before it), not from 1: ${resumed}`,
      );
      await counterReaches('ck1', resumed + 3);
      const kept = await ctr('task', 'exec', '--exec-id', 'r1', 'ck1', 'cat', '/kept');
      assert.equal(kept.stdout, 'kept\n', kept.stderr);
      assert.ok(after > before, 'the checkpointed task counted on');
      // A restored task is checkpointed again. containerd 1.6 stores the task's spec with each
      // checkpoint and takes "already exists" (the same spec, stored with the first one) for a
      // failure it then ignores, making an image without the task's checkpoint: the first
      // image goes first, its content collected (--sync).
      assert.equal((await ctr('images', 'rm', '--sync', 'ck1-ckpt:1')).code, 0);
      const again = await ctr('containers', 'checkpoint', '--task', 'ck1', 'ck1-ckpt:2');
      assert.equal(again.code, 0, again.stderr);
      const blob = await checkpointBlob('ck1-ckpt:2');
      // Its process exits by itself with its own status, which containerd gets on delete.
      assert.equal((await ctr('task', 'exec', '--exec-id', 'r2', 'ck1', 'touch', '/tmp/stop')).code, 0);
      await waitFor(async () => (await statusOf('ck1')) === 'STOPPED');
      const removed = await ctr('task', 'rm', 'ck1');
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(removed.stderr, /exit code 7/);
      assert.equal((await ctr('containers', 'rm', 'ck1')).code, 0);
      assert.deepEqual(await processesMentioning(containerd.socket), [], 'the restored task left no shim');
      await assertNothingLeft(containerd.hullRoot);

      // The second checkpoint, restored under another ID, goes on from where it was saved.
      const restoredAgain = await ctr('containers', 'restore', '--live', 'ck1b', 'ck1-ckpt:2');
      assert.equal(restoredAgain.code, 0, restoredAgain.stderr);
      const second = await counterOf('ck1b');
      t.diagnostic(`counter of the second restore, under ck1b: ${second}`);
      assert.ok(second >= resumed, `the second restore goes on from the second checkpoint: ${second}`);
      await counterReaches('ck1b', second + 2);
      assert.equal((await ctr('task', 'exec', '--exec-id', 'b1', 'ck1b', 'cat', '/kept')).stdout, 'kept\n');
      await killAndRemove('ck1b');
      await assertNothingLeft(containerd.hullRoot);

      // The same checkpoint with a byte of its saved VM changed: refused in one line, nothing runs.
      await damageInTar(blob, 'vm.state');
      const damaged = await ctr('containers', 'restore', '--live', 'ck2', 'ck1-ckpt:2');
      assert.notEqual(damaged.code, 0, 'a damaged checkpoint is refused');
      t.diagnostic(`damaged: ${damaged.stderr.trim()}`);
      assert.match(damaged.stderr, /SHA-256 is not the one recorded at save/);
      assert.equal(damaged.stderr.trim().split('\n').length, 1, damaged.stderr);
      assert.notEqual(await statusOf('ck2'), 'RUNNING');
      await ctr('containers', 'rm', 'ck2');
    } finally {
      for (const id of ['ck1', 'ck1b', 'ck2']) {
        await ctr('task', 'kill', '--signal', 'SIGKILL', id);
        await ctr('task', 'rm', '--force', id);
        await ctr('containers', 'rm', id);
      }
      await ctr('images', 'rm', 'ck1-ckpt:1', 'ck1-ckpt:2');
      // containerd 1.6 leaves the directories it unpacks checkpoints into (not hull's).
      for (const entry of await readdir(tmp)) await rm(join(tmp, entry), { recursive: true, force: true });
    }
  });

  test('a task on the 9p share: checkpoint refused in one line saying why and what works; it runs on', async (t) => {
    const started = await ctr('run', '-d', '--runtime', HULL_RUNTIME, IMAGE, 'p1', 'sleep', '1000');
    assert.equal(started.code, 0, started.stderr);
    try {
      const refused = await ctr('task', 'checkpoint', 'p1');
      assert.notEqual(refused.code, 0);
      t.diagnostic(`refused: ${refused.stderr.trim()}`);
      assert.equal(refused.stderr.trim().split('\n').length, 1, refused.stderr);
      assert.match(
        refused.stderr,
        /task p1 cannot be checkpointed: its files are on the 9p share, and QEMU cannot save a VM while 9p is mounted; a task created with the annotation dev\.hull\.rootfs=disk \(ctr run --annotation dev\.hull\.rootfs=disk\) has its root on disks and can be checkpointed/,
      );
      assert.equal(await statusOf('p1'), 'RUNNING', 'containerd resumed it, and it runs on');
      const exec = await ctr('task', 'exec', '--exec-id', 'e1', 'p1', 'true');
      assert.equal(exec.code, 0, exec.stderr);
    } finally {
      await killAndRemove('p1');
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
