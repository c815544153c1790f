import assert from 'node:assert/strict';
import { readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_TCG_CACHE_MIB } from '../../src/hypervisor/qemu/command-line.js';
import { VMM_OVERHEAD_MIB } from '../../src/hypervisor/qemu/qemu.js';
import { CPU_OVERHEAD, GUEST_BASE_MIB } from '../../src/sandbox/host-cgroup.js';
import { bundleTests, hull, hullDetached, processExit, qemuProcessesUsing } from './harness.js';

const MiB = 2 ** 20;
/** This host's layout: one v2 hierarchy, or v1 (hybrid) ones by controller. */
const v2 = await readFile('/sys/fs/cgroup/cgroup.controllers').then(
  () => true,
  () => false,
);
const dirOf = (controller: 'memory' | 'cpu' | 'pids', path: string) =>
  v2 ? join('/sys/fs/cgroup', path) : join('/sys/fs/cgroup', controller, path);
const read = async (controller: 'memory' | 'cpu' | 'pids', path: string, file: string) =>
  (await readFile(join(dirOf(controller, path), file), 'utf8')).trim();
const gone = async (path: string) => {
  for (const c of ['memory', 'cpu', 'pids'] as const) {
    await assert.rejects(readFile(join(dirOf(c, path), 'cgroup.procs')), `${c} cgroup ${path} is removed`);
  }
};

/** Issue 14: the host sees what a sandbox costs where the container said it lives. */
describe("the sandbox's host cgroup and `run --detach`", { timeout: 600_000 }, () => {
  const t = bundleTests('host-cgroup');
  const parent = `/hull-e2e-${process.pid}`;

  test('QEMU and the monitor live in the cgroupsPath, with the limits plus the VM overhead; gone at delete', async () => {
    const path = `${parent}/ctr`;
    const limit = 256 * MiB;
    const b = await t.bundle(['sleep', '1000'], (spec) => {
      spec.linux!.cgroupsPath = path;
      spec.linux!.resources = {
        ...spec.linux!.resources,
        memory: { limit },
        cpu: { quota: 50_000, period: 100_000, shares: 512 },
      };
    });
    const h = (...args: string[]) => hull(['--root', t.root, ...args], { input: null });
    const run = await hullDetached(t.root, ['--pid-file', join(b.dir, 'pid'), '--bundle', b.dir, b.id]);
    assert.equal(run.code, 0, run.stderr);
    try {
      const monitor = Number(await readFile(join(b.dir, 'pid'), 'utf8'));
      const state = JSON.parse((await h('state', b.id)).stdout) as { pid: number; status: string };
      assert.deepEqual([state.status, state.pid], ['running', monitor], '`run -d` leaves it running');
      const [qemu] = await qemuProcessesUsing(t.root);
      assert.ok(qemu, 'the container has a VM');
      const cmdline = await readFile(`/proc/${qemu}/cmdline`, 'utf8');
      const tcg = cmdline.includes('tcg');
      // A clone of a template (loaded through -incoming) has its guest memory counted twice.
      const clone = cmdline.includes('-incoming');
      for (const c of ['memory', 'cpu', 'pids'] as const) {
        const procs = (await read(c, path, 'cgroup.procs')).split('\n').map(Number);
        assert.ok(
          procs.includes(qemu) && procs.includes(monitor),
          `${c}: QEMU and the monitor are in ${path}`,
        );
      }
      const guestBytes = limit + GUEST_BASE_MIB * MiB;
      const overheadMiB = VMM_OVERHEAD_MIB + (tcg ? DEFAULT_TCG_CACHE_MIB : 0);
      const memoryLimit = Number(await read('memory', path, v2 ? 'memory.max' : 'memory.limit_in_bytes'));
      assert.equal(
        memoryLimit,
        (clone ? 2 : 1) * guestBytes + overheadMiB * MiB,
        'the memory limit is the container’s and the guest base (twice for a clone), plus the overhead',
      );
      const usage = Number(await read('memory', path, v2 ? 'memory.current' : 'memory.usage_in_bytes'));
      assert.ok(
        usage > 32 * MiB && usage < memoryLimit,
        `the VM's memory is counted here: ${usage / MiB} MiB`,
      );
      const quota = v2
        ? Number((await read('cpu', path, 'cpu.max')).split(' ')[0])
        : Number(await read('cpu', path, 'cpu.cfs_quota_us'));
      assert.equal(
        quota,
        50_000 + CPU_OVERHEAD * 100_000,
        'the CPU quota is the container’s plus the overhead',
      );
      assert.equal((await h('kill', b.id, 'KILL')).code, 0);
      await processExit(monitor, 30_000);
      assert.equal((await h('delete', b.id)).code, 0);
      await gone(path);
    } finally {
      await h('delete', '--force', b.id);
      for (const c of ['memory', 'cpu', 'pids'] as const) await rmdir(dirOf(c, parent)).catch(() => {});
    }
  });

  test('a systemd-style cgroupsPath (slice:prefix:name) is placed where systemd would put the scope', async () => {
    const slice = `hulle2e${process.pid}.slice`;
    const b = await t.bundle(['sh', '-c', 'cat /proc/self/cgroup >/dev/null; sleep 1000'], (spec) => {
      spec.linux!.cgroupsPath = `${slice}:hull:${process.pid}`;
    });
    const h = (...args: string[]) => hull(['--root', t.root, ...args], { input: null });
    const run = await hullDetached(t.root, ['--bundle', b.dir, b.id]);
    assert.equal(run.code, 0, run.stderr);
    const scope = `/${slice}/hull-${process.pid}.scope`;
    try {
      const [qemu] = await qemuProcessesUsing(t.root);
      const line = (await readFile(`/proc/${qemu}/cgroup`, 'utf8'))
        .split('\n')
        .find((l) => /:memory:|^0::/.test(l));
      assert.equal(line?.split(':')[2], scope);
    } finally {
      await h('delete', '--force', b.id);
      for (const c of ['memory', 'cpu', 'pids'] as const) await rmdir(dirOf(c, `/${slice}`)).catch(() => {});
    }
    await gone(scope);
  });
});
