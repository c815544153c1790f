import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { HullApiError, Sandbox } from 'hull/sdk';
import { removeBridge } from '../../src/network/serve-bridge.js';
import { listTemplates } from '../../src/template/store.js';
import { pushPython } from '../fixtures/python-image.js';
import { type Registry, startRegistry } from '../fixtures/registry.js';
import {
  assertOneRun,
  countsOf,
  killEverySandbox,
  PYTHON_COUNTER,
  serveBridge,
  serveStateDir,
  startServe,
  stopServe,
  waitForCount,
} from '../fixtures/serve.js';
import { type HullRun, privateDirs, qemuProcessesUsing } from './harness.js';

/** What a sandbox says to `cmd`, trimmed. */
async function said(sandbox: Sandbox, cmd: string): Promise<string> {
  return (await sandbox.commands.run(cmd)).stdout.trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The QEMU of a serve sandbox (its container's directory is in QEMU's command line). */
async function qemuOfIn(root: string, sandboxId: string): Promise<number> {
  const [pid] = await qemuProcessesUsing(`${join(root, sandboxId)}/`);
  assert.ok(pid, `no QEMU for ${sandboxId}`);
  return pid;
}

/**
 * The MiB of a VM's RAM its QEMU holds as its own (copy-on-write copies of its template's
 * memory, mapped private: "Anonymous" in smaps), the rest being the template's pages.
 */
async function privateRamMiB(pid: number): Promise<number> {
  let kib = 0;
  let inRam = false;
  for (const line of (await readFile(`/proc/${pid}/smaps`, 'utf8')).split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S{4} \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (header) inRam = header[1]!.startsWith('/memfd:hull-template-');
    else if (inRam && line.startsWith('Anonymous:')) kib += Number(line.split(/\s+/)[1]);
  }
  return Math.round(kib / 1024);
}

/**
 * Issue 28: a running sandbox of `hull serve` forked and snapshotted through the SDK. A
 * Python process holding a counter in memory (appending each value to a file of the disk;
 * the image is Debian's python3-minimal) goes on in every fork and in every sandbox started from a snapshot, from the parent's
 * value; each copy is a sandbox of its own (random bytes, boot id, MAC, address, hostname,
 * files), the parent runs on, and bad requests leave nothing behind.
 */
describe('hull serve: fork and snapshots', { timeout: 1_200_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let image: string;
  let server: HullRun | undefined;
  let api: string;
  let parent: Sandbox;
  const bridge = serveBridge('hf', '10.216.0.0/24');

  const containerDir = (id: string) => join(dirs.root, id);
  const qemuOf = (id: string) => qemuOfIn(dirs.root, id);
  const serveDir = (kind: string) => join(dirs.root, '@serve', kind);

  before(async () => {
    dirs = await privateDirs('serve-fork');
    const state = await serveStateDir(dirs.scratch);
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    image = await pushPython(dirs.scratch, registry);
    api = `unix:${join(dirs.scratch, 'api.sock')}`;
    server = await startServe(dirs.root, ['--listen', api], { HULL_STATE_DIR: state, ...bridge.env });
    parent = await Sandbox.create({ api, image, network: 'internet', timeoutMs: 900_000 });
    // A counter held in a Python process's memory, each value appended to a file of the disk.
    await parent.files.write('/counter.py', PYTHON_COUNTER);
    await parent.commands.run('python3 /counter.py', { background: true });
    await waitForCount(parent);
  });

  after(async () => {
    await killEverySandbox(api);
    for (const snapshot of await Sandbox.listSnapshots({ api }).catch(() => [])) {
      await Sandbox.removeSnapshot(snapshot.snapshotId, { api }).catch(() => {});
    }
    await stopServe(server);
    await registry?.stop();
    await removeBridge(bridge.network);
    assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/`), [], 'no QEMU process is left');
    await dirs?.cleanup();
  });

  // A fork of 5 clones a template made of the parent's snapshot; a fork of 1 migrates the
  // parent straight into its copy's VMM (snapshot/state-stream.ts): the same copies either way.
  for (const count of [5, 1])
    test(`a fork of ${count}: each goes on from the parent, then on its own; none is a twin of another`, async () => {
      await sleep(2000);
      // Read before the fork: the kernel makes its boot id at the first read, and each copy
      // must still make its own (hypervisor/qemu/boot-id.ts).
      const parentBootId = await said(parent, 'cat /proc/sys/kernel/random/boot_id');
      assert.match(parentBootId, /^[0-9a-f-]{36}$/);
      const atFork = (await countsOf(parent)).length;
      assert.ok(atFork >= 3, `the parent counts: ${atFork}`);
      const started = Date.now();
      const forks = await parent.fork({ count });
      console.log(`a fork of ${count}: ${Date.now() - started} ms`);
      try {
        assert.equal(forks.length, count);
        const ids = forks.map((f) => f.sandboxId);
        assert.equal(
          new Set([...ids, parent.sandboxId]).size,
          count + 1,
          'each fork is a sandbox of its own',
        );
        for (const fork of forks) assert.equal(fork.info.status, 'running');
        const listed = (await Sandbox.list({ api })).map((s) => s.sandboxId).sort();
        assert.deepEqual(listed, [...ids, parent.sandboxId].sort());

        // Every fork's counter went on from the parent's value at the fork, never from 1.
        await sleep(1500);
        for (const fork of forks) {
          const counts = await countsOf(fork);
          assertOneRun(counts, fork.sandboxId);
          assert.ok(counts.length > atFork, `${fork.sandboxId} counted on: ${counts.length} after ${atFork}`);
        }
        assertOneRun(await countsOf(parent), 'the parent');

        // The parent's background command runs in each copy, and each copy lists it (under a
        // command id of its own), its output followed as a resumed sandbox's is.
        const isCounter = (c: { cmd: string[] }) => c.cmd.join(' ').includes('counter.py');
        const counter = (await parent.commands.list()).find(isCounter);
        assert.ok(counter, "the parent's counter is listed");
        for (const fork of forks) {
          const listed = (await fork.commands.list()).filter(isCounter);
          assert.equal(listed.length, 1, `${fork.sandboxId} lists the counter once`);
          assert.equal(listed[0]!.status, 'running');
          assert.equal(listed[0]!.background, true);
          assert.equal(listed[0]!.pid, counter.pid, 'the same process, in the copy');
          assert.notEqual(listed[0]!.commandId, counter.commandId);
        }
        let followed = '';
        const [firstCounter] = (await forks[0]!.commands.list()).filter(isCounter);
        const handle = await forks[0]!.commands.connect(firstCounter!.commandId, {
          onStdout: (d) => {
            followed += d;
          },
        });
        const deadline = Date.now() + 30_000;
        while (!/tick \d+\n[\s\S]*tick \d+\n/.test(followed) && Date.now() < deadline) await sleep(100);
        handle.disconnect();
        assert.match(followed, /tick \d+\n/, "the copy's counter's output is followed");

        // Each its own: random bytes, boot id, MAC, address and hostname differ from every other's.
        const all = [parent, ...forks];
        const identity = async (s: Sandbox) => ({
          random: await said(s, 'head -c 16 /dev/urandom | od -An -tx1'),
          bootId: await said(s, 'cat /proc/sys/kernel/random/boot_id'),
          mac: await said(s, 'cat /sys/class/net/eth0/address'),
          address: await said(s, 'hostname -I'),
          hostname: await said(s, 'hostname'),
        });
        const identities: Awaited<ReturnType<typeof identity>>[] = [];
        for (const s of forks) identities.push(await identity(s));
        identities.push(await identity(parent));
        assert.equal(identities.at(-1)!.bootId, parentBootId, "the parent's boot id stays its own");
        const keys = ['random', 'bootId', 'mac', 'address', 'hostname'] as const;
        for (const key of keys) {
          const values = identities.map((i) => i[key]);
          assert.ok(values.every(Boolean), `${key}: ${values.join(' ')}`);
          assert.equal(new Set(values).size, all.length, `${key} differs in each: ${values.join(' ')}`);
        }
        assert.deepEqual(
          identities.slice(0, forks.length).map((i) => i.hostname),
          forks.map((f) => f.sandboxId),
        );

        // Their files are their own: what one writes reaches neither the others nor the parent.
        for (const fork of forks) await fork.files.write('/mine', fork.sandboxId);
        for (const fork of forks) assert.equal(await said(fork, 'cat /mine'), fork.sandboxId);
        assert.equal(await parent.files.exists('/mine'), false, "a fork's file is not the parent's");
        // And the counters diverge: a fork killed stops only its own.
        const [first, ...rest] = forks;
        await first!.kill();
        await sleep(1000);
        for (const fork of rest) assertOneRun(await countsOf(fork), fork.sandboxId);
      } finally {
        for (const fork of forks) await fork.kill().catch(() => {});
      }
      for (const fork of forks) {
        assert.deepEqual(
          await qemuProcessesUsing(containerDir(fork.sandboxId)),
          [],
          'no QEMU left of a fork',
        );
      }
      assert.deepEqual(
        (await readdir(serveDir('snapshots')).catch(() => [] as string[])).length,
        0,
        "the fork's passing snapshot is gone",
      );
      assert.ok(
        (await listTemplates()).every((t) => !t.key.startsWith('snap-')),
        'and its template, once the forks run',
      );
      assert.equal((await parent.getInfo()).status, 'running', 'the parent runs on');
    });

  // A fork of 1 whose parent is a clone of the copy's template sends only the pages the parent
  // wrote (snapshot/template-diff-stream.ts): the rest the copy maps from the template already.
  test('a fork of 1 keeps 32 MiB its parent wrote into memory exactly, and holds privately only what its parent wrote', async () => {
    const [fsType, sum] = (
      await said(
        parent,
        "stat -f -c %T /dev/shm && head -c 33554432 /dev/urandom > /dev/shm/pattern && sha256sum /dev/shm/pattern | cut -d' ' -f1",
      )
    ).split('\n');
    assert.equal(fsType, 'tmpfs', "the pattern is in the guest's memory");
    assert.match(sum ?? '', /^[0-9a-f]{64}$/);
    const parentPrivate = await privateRamMiB(await qemuOf(parent.sandboxId));
    const [copy] = await parent.fork({ count: 1 });
    try {
      const copyPrivate = await privateRamMiB(await qemuOf(copy!.sandboxId));
      console.log(`RAM held privately: parent ${parentPrivate} MiB, its copy ${copyPrivate} MiB`);
      assert.ok(
        copyPrivate <= parentPrivate + 48,
        `the copy holds ${copyPrivate} MiB of its RAM privately, its parent ${parentPrivate} MiB`,
      );
      assert.equal(await said(copy!, "sha256sum /dev/shm/pattern | cut -d' ' -f1"), sum, 'the same bytes');
      assertOneRun(await countsOf(copy!), copy!.sandboxId);
    } finally {
      await copy?.kill().catch(() => {});
    }
    assert.equal(await said(parent, "sha256sum /dev/shm/pattern | cut -d' ' -f1"), sum);
    await parent.commands.run('rm /dev/shm/pattern');
  });

  test('a snapshot started 10 times; listed, removed, and its sandboxes live on', async () => {
    const atSnapshot = (await countsOf(parent)).length;
    const snapshot = await parent.snapshot({ metadata: { purpose: 'test' } });
    assert.match(snapshot.snapshotId, /^snap-[0-9a-f]{16}$/);
    assert.equal(snapshot.sandboxId, parent.sandboxId);
    assert.ok(snapshot.bytes > 1 << 20, `the snapshot holds the VM's memory: ${snapshot.bytes}`);
    assert.deepEqual(
      (await Sandbox.listSnapshots({ api })).map((s) => s.snapshotId),
      [snapshot.snapshotId],
    );
    assert.equal((await Sandbox.getSnapshot(snapshot.snapshotId, { api })).metadata.purpose, 'test');

    const started = Date.now();
    const sandboxes = await Promise.all(
      Array.from({ length: 10 }, () =>
        Sandbox.create({ api, fromSnapshot: snapshot.snapshotId, metadata: { from: 'snapshot' } }),
      ),
    );
    console.log(`10 sandboxes from a snapshot: ${Date.now() - started} ms`);
    try {
      assert.equal(new Set(sandboxes.map((s) => s.sandboxId)).size, 10);
      // The snapshot can go while its sandboxes run: they hold their own disks and memory.
      await Sandbox.removeSnapshot(snapshot.snapshotId, { api });
      assert.deepEqual(await Sandbox.listSnapshots({ api }), []);
      await assert.rejects(Sandbox.getSnapshot(snapshot.snapshotId, { api }), /does not exist/);
      await sleep(1000);
      // The parent's boot id was read before the snapshot (by the forks' tests): each sandbox
      // started from it still has its own.
      const bootIds = new Set([await said(parent, 'cat /proc/sys/kernel/random/boot_id')]);
      for (const s of sandboxes) {
        const counts = await countsOf(s);
        assertOneRun(counts, s.sandboxId);
        assert.ok(counts.length >= atSnapshot, `${s.sandboxId}: ${counts.length} from ${atSnapshot}`);
        assert.equal(await said(s, 'hostname'), s.sandboxId);
        bootIds.add(await said(s, 'cat /proc/sys/kernel/random/boot_id'));
      }
      assert.equal(bootIds.size, 11, `a boot id of its own in each: ${[...bootIds].join(' ')}`);
      assert.equal((await Sandbox.list({ api, metadata: { from: 'snapshot' } })).length, 10);
    } finally {
      for (const s of sandboxes) await s.kill().catch(() => {});
    }
    assert.deepEqual(await readdir(serveDir('snapshots')).catch(() => [] as string[]), []);
    assert.ok(
      (await listTemplates()).every((t) => !t.key.startsWith('snap-')),
      "a removed snapshot's template is gone",
    );
  });

  test("a sandbox with network 'none' forks too: its copy has its files and a hostname of its own", async () => {
    const lone = await Sandbox.create({ api, image, network: 'none', timeoutMs: 900_000 });
    try {
      await lone.files.write('/note', 'before the fork');
      const [copy] = await lone.fork();
      try {
        assert.equal(await said(copy!, 'cat /note'), 'before the fork');
        assert.equal(await said(copy!, 'hostname'), copy!.sandboxId);
        assert.equal(await copy!.files.exists('/sys/class/net/eth0'), false, 'no network card');
      } finally {
        await copy?.kill();
      }
    } finally {
      await lone.kill();
    }
  });

  test('bad input gets a one-line 4xx and leaves nothing behind', async () => {
    const sandboxesBefore = (await readdir(serveDir('sandboxes'))).sort();
    const qemusBefore = (await qemuProcessesUsing(`${dirs.root}/`)).sort();
    const refused = async (attempt: Promise<unknown>, status: number, code: string, message: RegExp) =>
      assert.rejects(attempt, (err: unknown) => {
        assert.ok(err instanceof HullApiError, String(err));
        assert.equal(err.status, status, err.message);
        assert.equal(err.code, code, err.message);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /\n/);
        return true;
      });
    await refused(parent.fork({ count: 0 }), 400, 'ERR_VALIDATION', /count/);
    await refused(parent.fork({ count: 17 }), 400, 'ERR_VALIDATION', /count/);
    await refused(
      Sandbox.create({ api, fromSnapshot: 'snap-0123456789abcdef' }),
      404,
      'ERR_NOT_FOUND',
      /snapshot snap-0123456789abcdef does not exist/,
    );
    await refused(Sandbox.create({ api, fromSnapshot: '../etc' }), 400, 'ERR_VALIDATION', /fromSnapshot/);
    await refused(
      Sandbox.removeSnapshot('snap-0123456789abcdef', { api }),
      404,
      'ERR_NOT_FOUND',
      /does not exist/,
    );
    const snapshot = await parent.snapshot();
    await refused(
      Sandbox.create({ api, fromSnapshot: snapshot.snapshotId, diskMiB: 4096 }),
      400,
      'ERR_CONFIG',
      /has its diskMiB: leave it out/,
    );
    await Sandbox.removeSnapshot(snapshot.snapshotId, { api });
    assert.deepEqual((await readdir(serveDir('sandboxes'))).sort(), sandboxesBefore, 'no sandbox is left');
    assert.deepEqual(await readdir(serveDir('snapshots')).catch(() => [] as string[]), []);
    assert.deepEqual(
      (await Sandbox.list({ api })).map((s) => s.sandboxId),
      [parent.sandboxId],
    );
    assert.deepEqual((await qemuProcessesUsing(`${dirs.root}/`)).sort(), qemusBefore, 'no QEMU is left');
  });
});
