import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { shareServerOf } from '../../src/hypervisor/jail/share-server.js';
import type { Spec } from '../../src/oci/spec.js';
import { isAlive } from '../../src/sys/process-identity.js';
import { processesMentioning } from '../../src/sys/processes.js';
import { sleep } from '../../src/util/deadline.js';
import {
  bundleTests,
  HULL,
  hull,
  processExit,
  qemuProcessesUsing,
  runCommand,
  startHull,
} from './harness.js';

/**
 * Issue 24, items 3 to 5: what hull does when a process it recorded dies under it — a monitor
 * whose pid is reused, a VM, monitor or share server killed, a creator killed mid-create —
 * each tested as that fault.
 */
describe('lost processes: each loss named, nothing left behind', { timeout: 900_000 }, () => {
  const t = bundleTests('faults');
  const h = (...args: string[]) => hull(['--root', t.root, ...args]);
  const stateOf = async (id: string) =>
    JSON.parse((await h('state', id)).stdout) as { status: string; pid: number; vmLost?: string };
  const stateFile = (id: string) => join(t.root, id, 'state.json');

  /** A bundle whose process runs until it is killed. */
  const serviceBundle = (edit?: Parameters<typeof t.bundle>[1]) =>
    t.bundle(['sh', '-c', 'echo started; while true; do sleep 0.1; done'], edit);

  /** `hull create` as conmon runs it (output to a file, a pid file), not waited for. */
  function startCreate(b: { dir: string; id: string }, env: NodeJS.ProcessEnv = {}) {
    const out = join(b.dir, 'create.out');
    const fd = openSync(out, 'w');
    const child = spawn(
      process.execPath,
      [HULL, '--root', t.root, 'create', '--bundle', b.dir, '--pid-file', join(b.dir, 'pid'), b.id],
      { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } },
    );
    closeSync(fd);
    const code = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    return { child, code, output: () => readFile(out, 'utf8') };
  }

  /** Creates and starts a container; returns its monitor's pid. */
  async function running(b: { dir: string; id: string }): Promise<number> {
    const create = startCreate(b);
    assert.equal(await create.code, 0, await create.output());
    const monitor = Number(await readFile(join(b.dir, 'pid'), 'utf8'));
    assert.equal((await h('start', b.id)).code, 0);
    return monitor;
  }

  /** The cgroup directories a sandbox `id` has in any hierarchy (cgroup v1: cpu, memory, pids…). */
  async function cgroupDirs(id: string): Promise<string[]> {
    const found: string[] = [];
    for (const hierarchy of await readdir('/sys/fs/cgroup').catch(() => [] as string[])) {
      for (const dir of [join('/sys/fs/cgroup', hierarchy, 'hull', id), join('/sys/fs/cgroup/hull', id)]) {
        if (
          await stat(dir).then(
            () => true,
            () => false,
          )
        )
          found.push(dir);
      }
    }
    return [...new Set(found)];
  }

  /** Waits until `check` holds (polling), failing with `what` after `timeoutMs`. */
  async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
      await sleep(20);
    }
  }

  /**
   * Starts a create whose VM boots rather than being cloned, so that it takes long enough to
   * be interrupted, and returns once its monitor has started QEMU.
   */
  async function createInterruptible() {
    const b = await serviceBundle();
    const create = startCreate(b, { HULL_TEMPLATE: 'off' });
    let monitor = 0;
    await until('the VM is starting', async () => {
      const state = await readFile(stateFile(b.id), 'utf8').catch(() => '');
      monitor = state ? (JSON.parse(state) as { pid: number }).pid : 0;
      return monitor > 0 && (await qemuProcessesUsing(join(t.root, b.id))).length > 0;
    });
    return { b, create, monitor };
  }

  /** A long-lived process that has nothing to do with hull, stopped by the test. */
  function unrelatedProcess(): ChildProcess {
    const sleeper = spawn('sleep', ['600'], { stdio: 'ignore' });
    return sleeper;
  }

  test('an exec whose monitor is SIGKILLed names it; a reused monitor pid is never taken for the monitor (issue 24, items 3 and 4)', async () => {
    const unrelated = unrelatedProcess();
    try {
      const plain = await serviceBundle();
      const forced = await serviceBundle();
      const bundles = [plain, forced];
      for (const b of bundles) {
        const monitor = await running(b);
        const exec = startHull(['--root', t.root, 'exec', b.id, 'sh', '-c', 'echo in; sleep 600'], {
          input: null,
        });
        await exec.waitForOutput('in');
        const [qemu] = await qemuProcessesUsing(join(t.root, b.id));
        process.kill(monitor, 'SIGKILL');
        const result = await exec.result;
        assert.notEqual(result.code, 0);
        assert.match(
          result.stderr,
          new RegExp(
            `^hull: the monitor of container ${b.id} \\(pid ${monitor}\\) died under the process`,
            'm',
          ),
        );
        assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
        // The monitor's pid now names an unrelated live process, as after pid reuse; the
        // recorded start time is the monitor's.
        const recorded = JSON.parse(await readFile(stateFile(b.id), 'utf8')) as Record<string, unknown>;
        assert.ok(recorded.pidStartTime, 'the state records the monitor start time');
        await writeFile(stateFile(b.id), JSON.stringify({ ...recorded, pid: unrelated.pid }));
        assert.equal((await stateOf(b.id)).status, 'stopped', 'a reused pid is not the monitor');
        assert.ok(qemu, 'the container had a VM');
      }
      const deleted = await h('delete', plain.id);
      assert.equal(deleted.code, 0, deleted.stderr);
      const forceDeleted = await h('delete', '--force', forced.id);
      assert.equal(forceDeleted.code, 0, forceDeleted.stderr);
      assert.ok(isAlive({ pid: unrelated.pid! }), 'the process that took the pid was not signalled');
      for (const b of bundles) assert.deepEqual(await cgroupDirs(b.id), [], 'no cgroup is left');
    } finally {
      unrelated.kill('SIGKILL');
    }
  });

  test('an exec whose VM is SIGKILLed says so in one line and exits non-zero (issue 24, item 4)', async () => {
    const b = await serviceBundle();
    const monitor = await running(b);
    const exec = startHull(['--root', t.root, 'exec', b.id, 'sh', '-c', 'echo in; sleep 600'], {
      input: null,
    });
    await exec.waitForOutput('in');
    const [qemu] = await qemuProcessesUsing(join(t.root, b.id));
    assert.ok(qemu);
    process.kill(qemu, 'SIGKILL');
    const result = await exec.result;
    assert.equal(result.code, 137);
    assert.match(
      result.stderr,
      new RegExp(`^hull: the VM of container ${b.id} ended under it: QEMU was killed by SIGKILL`),
    );
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    await processExit(monitor, 30_000);
    assert.equal((await h('delete', b.id)).code, 0);
  });

  test('a SIGKILLed share server stops the container, and says so (issue 24, item 4)', async () => {
    const b = await serviceBundle();
    const monitor = await running(b);
    const [qemu] = await qemuProcessesUsing(join(t.root, b.id));
    assert.ok(qemu);
    const server = await shareServerOf(qemu);
    assert.ok(server, 'the VM has a share server');
    process.kill(server, 'SIGKILL');
    await processExit(monitor, 30_000);
    const state = await stateOf(b.id);
    assert.equal(state.status, 'stopped');
    assert.match(state.vmLost ?? '', /share server \(hull-share-server, pid \d+\) died/);
    const exec = await h('exec', b.id, 'true');
    assert.notEqual(exec.code, 0);
    assert.match(exec.stderr, /it is stopped \(its VM ended under it: its share server \(hull-share-server/);
    assert.equal(exec.stderr.trim().split('\n').length, 1, `one line: ${exec.stderr}`);
    assert.equal((await h('delete', b.id)).code, 0);
    assert.deepEqual(await cgroupDirs(b.id), []);
  });

  test("a pod's VM holder SIGKILLed: each of the pod's containers reads stopped, saying so in one line, and delete removes the pod's VM, cgroups and directory", async () => {
    // A pod as CRI-O pins it: its network and IPC namespaces bind-mounted on files.
    const pinned = { network: join(t.scratch, 'pod-net'), ipc: join(t.scratch, 'pod-ipc') };
    for (const [type, path] of Object.entries(pinned)) {
      await writeFile(path, '');
      const pin = await runCommand('unshare', [`--${type === 'network' ? 'net' : type}=${path}`, 'true']);
      assert.equal(pin.code, 0, pin.stderr);
    }
    try {
      const inPod = (spec: Spec) => {
        spec.linux!.namespaces = [
          ...(spec.linux?.namespaces ?? []).filter((ns) => ns.type !== 'network' && ns.type !== 'ipc'),
          { type: 'network', path: pinned.network },
          { type: 'ipc', path: pinned.ipc },
        ];
      };
      const members = [await serviceBundle(inPod), await serviceBundle(inPod)];
      const monitors = [await running(members[0]!), await running(members[1]!)];
      const [qemu, ...more] = await qemuProcessesUsing(t.root);
      assert.ok(qemu, 'the pod has a VM');
      assert.deepEqual(more, [], 'one VM for both containers');
      const [holder] = await processesMentioning(t.root, (cmdline) => cmdline.includes('_podvm'));
      assert.ok(holder, "the pod's VM has its holder");
      const podId = `pod-network-${(await stat(pinned.network)).ino}`;

      process.kill(holder, 'SIGKILL');
      for (const monitor of monitors) await processExit(monitor, 30_000);
      for (const b of members) {
        const state = await stateOf(b.id);
        assert.equal(state.status, 'stopped');
        assert.match(
          state.vmLost ?? '',
          new RegExp(`its pod's VM holder \\(hull _podvm, pid ${holder}\\) died`),
        );
        const exec = await h('exec', b.id, 'true');
        assert.notEqual(exec.code, 0);
        assert.equal(exec.stderr.trim().split('\n').length, 1, `one line: ${exec.stderr}`);
      }
      for (const b of members) assert.equal((await h('delete', b.id)).code, 0);
      assert.deepEqual(await qemuProcessesUsing(t.root), [], "the pod's VM is gone");
      assert.deepEqual(await cgroupDirs(podId), [], "the pod's cgroups are gone");
    } finally {
      await runCommand('umount', [pinned.network, pinned.ipc]);
    }
  });

  test('a monitor SIGKILLed while it boots the VM: create names it and leaves nothing (issue 24, items 4 and 5)', async () => {
    const { b, create, monitor } = await createInterruptible();
    assert.ok((await cgroupDirs(b.id)).length > 0, 'the sandbox has its cgroups while it is created');
    process.kill(monitor, 'SIGKILL');
    assert.notEqual(await create.code, 0);
    const output = await create.output();
    assert.match(
      output,
      new RegExp(
        `the monitor of container ${b.id} \\(pid ${monitor}\\) was killed by SIGKILL before it was ready`,
      ),
    );
    assert.equal(output.trim().split('\n').length, 1, `one line: ${output}`);
    assert.deepEqual(await cgroupDirs(b.id), [], 'no cgroup is left');
    assert.deepEqual(await qemuProcessesUsing(t.root), [], 'no VM is left');
    const deleted = await h('delete', b.id);
    assert.match(deleted.stderr, /does not exist/, 'nothing is left to delete');
  });

  test('create and its monitor both SIGKILLed while the VM boots: the container reads stopped, and delete removes VM, cgroups and directory (issue 24, item 5)', async () => {
    const { b, create, monitor } = await createInterruptible();
    create.child.kill('SIGKILL');
    process.kill(monitor, 'SIGKILL');
    await create.code;
    // A SIGKILL is delivered, not done, when kill returns: ask once the monitor is gone.
    await processExit(monitor, 10_000);
    assert.equal((await stateOf(b.id)).status, 'stopped', 'a container whose creator died is stopped');
    assert.ok((await cgroupDirs(b.id)).length > 0, 'the dead monitor left its cgroups');
    const deleted = await h('delete', b.id);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await cgroupDirs(b.id), [], 'no cgroup is left');
    assert.deepEqual(await qemuProcessesUsing(t.root), [], 'no VM is left');
  });

  test('create SIGKILLed while its monitor boots the VM: the monitor stops, the container reads stopped, and delete removes it (issue 24, item 5)', async () => {
    const { b, create, monitor } = await createInterruptible();
    create.child.kill('SIGKILL');
    await create.code;
    await processExit(monitor, 120_000);
    assert.deepEqual(
      await qemuProcessesUsing(t.root),
      [],
      'the monitor stopped the VM no one asked for any more',
    );
    const state = await stateOf(b.id);
    assert.equal(state.status, 'stopped');
    assert.equal(state.vmLost, undefined, 'the VM was stopped, not lost');
    const deleted = await h('delete', b.id);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(await cgroupDirs(b.id), [], 'no cgroup is left');
  });

  test('SIGTERM of create during a createRuntime hook: the container reads stopped, and delete removes it (issue 24, item 5)', async () => {
    const marker = `hook-of-${Date.now()}`;
    const b = await serviceBundle((spec) => {
      spec.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `sleep 600; : ${marker}`] }] };
    });
    const create = startCreate(b);
    await until('the hook runs', async () => {
      const state = await readFile(stateFile(b.id), 'utf8').catch(() => '');
      return state.includes('"creating"') && (await hookPids(marker)).length > 0;
    });
    create.child.kill('SIGTERM');
    await create.code;
    try {
      const state = await stateOf(b.id);
      assert.equal(state.status, 'stopped', 'a container whose creator died is stopped');
      const deleted = await h('delete', b.id);
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.deepEqual(await cgroupDirs(b.id), []);
    } finally {
      for (const pid of await hookPids(marker)) process.kill(pid, 'SIGKILL');
    }
  });
});

/** The hook processes the test started (by the marker in their command line). */
function hookPids(marker: string): Promise<number[]> {
  return processesMentioning(marker);
}
