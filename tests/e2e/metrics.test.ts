import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fetchFromHost } from '../fixtures/web-server.js';
import { bundleTests, hull, hullDetached, metricValue, startHull } from './harness.js';

const value = metricValue;

const MiB = 2 ** 20;

/** Issue 13: what kata-monitor gives Kata's operators, for every sandbox under the root. */
describe('hull metrics', { timeout: 600_000 }, () => {
  const t = bundleTests('metrics');

  test('counts, guest and host figures and boot phases, printed once and served over HTTP', async () => {
    const limited = await t.bundle(['sleep', '1000'], (spec) => {
      spec.linux!.resources = { ...spec.linux!.resources, memory: { limit: 96 * MiB } };
    });
    const open = await t.bundle(['sleep', '1000']);
    for (const b of [limited, open]) {
      const r = await hullDetached(t.root, ['--bundle', b.dir, b.id]);
      assert.equal(r.code, 0, r.stderr);
    }
    try {
      const once = await hull(['--root', t.root, 'metrics']);
      assert.equal(once.code, 0, once.stderr);
      const text = once.stdout;
      assert.equal(value(text, 'hull_sandboxes{status="running"}'), 2);
      assert.equal(value(text, 'hull_sandboxes{status="stopped"}'), 0);
      assert.equal(
        value(text, `hull_container_memory_limit_bytes{id="${limited.id}",sandbox="${limited.id}"}`),
        96 * MiB,
      );
      assert.equal(
        value(text, `hull_container_memory_limit_bytes{id="${open.id}",sandbox="${open.id}"}`),
        undefined,
        'no limit, no line',
      );
      for (const b of [limited, open]) {
        assert.ok(value(text, `hull_container_pids{id="${b.id}",sandbox="${b.id}"}`)! >= 1);
        assert.ok(value(text, `hull_sandbox_host_pss_bytes{id="${b.id}",process="qemu"}`)! > 50 * MiB);
        assert.ok(value(text, `hull_sandbox_host_pss_bytes{id="${b.id}",process="monitor"}`)! > 5 * MiB);
        assert.ok(value(text, `hull_sandbox_host_cpu_seconds_total{id="${b.id}",process="qemu"}`)! > 0);
        // The whole guest: a kernel given the VM's 512 MiB, less what it reserves for itself.
        const total = value(text, `hull_sandbox_guest_memory_total_bytes{id="${b.id}"}`)!;
        assert.ok(total > 400 * MiB && total <= 512 * MiB, `guest MemTotal ${total}`);
        const used = value(text, `hull_sandbox_guest_memory_used_bytes{id="${b.id}"}`)!;
        assert.ok(used > 20 * MiB && used < total, `guest memory in use ${used}`);
        assert.ok(value(text, `hull_sandbox_guest_cpu_seconds_total{id="${b.id}"}`)! > 0);
        // Each monitor times its agent's requests: the container's creation and start, once each.
        for (const method of ['CreateContainer', 'StartContainer']) {
          const series = `hull_agent_request_duration_seconds_count{sandbox="${b.id}",method="${method}"}`;
          assert.equal(value(text, series), 1, series);
        }
      }
      // Each sandbox's start, booted (the guest's own phases) or cloned from a template.
      const booted = value(text, 'hull_boot_phase_seconds_count{phase="guest kernel",where="guest"}') ?? 0;
      const cloned = value(text, 'hull_boot_phase_seconds_count{phase="clone wakes",where="host"}') ?? 0;
      assert.equal(booted + cloned, 2, `two starts: ${booted} booted, ${cloned} cloned`);
      assert.equal(value(text, 'hull_boot_phase_seconds_count{phase="QEMU start",where="host"}'), 2);

      const port = 19_500 + (process.pid % 400);
      const server = startHull(['--root', t.root, 'metrics', '--listen', `127.0.0.1:${port}`], {
        input: null,
      });
      try {
        const served = await fetchFromHost(`http://127.0.0.1:${port}/metrics`);
        assert.equal(value(served, 'hull_sandboxes{status="running"}'), 2);
        assert.equal(
          value(served, `hull_container_memory_limit_bytes{id="${limited.id}",sandbox="${limited.id}"}`),
          96 * MiB,
        );
      } finally {
        server.child.kill('SIGTERM');
        assert.equal((await server.result).code, 0, 'the server stops on SIGTERM');
      }
    } finally {
      for (const b of [limited, open]) await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
    const after = await hull(['--root', t.root, 'metrics']);
    assert.equal(value(after.stdout, 'hull_sandboxes{status="running"}'), 0);
  });

  test('failed commands are counted by error code, and leave nothing in the root', async () => {
    const series = (code: string) => `hull_failures_total{code="${code}",source="cli"}`;
    const before = await hull(['--root', t.root, 'metrics']);
    const missing = await hull(['--root', t.root, 'start', 'no-such-container']);
    assert.equal(missing.code, 1);
    const usage = await hull(['--root', t.root, 'start']);
    assert.equal(usage.code, 2);
    const after = await hull(['--root', t.root, 'metrics']);
    for (const code of ['ERR_NOT_FOUND', 'ERR_USAGE']) {
      assert.equal(
        (value(after.stdout, series(code)) ?? 0) - (value(before.stdout, series(code)) ?? 0),
        1,
        `one more ${code}`,
      );
    }
  });

  test('a bad --listen address: one line', async () => {
    const r = await hull(['--root', t.root, 'metrics', '--listen', '127.0.0.1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^hull: --listen 127.0.0.1: give HOST:PORT, such as 127.0.0.1:9464\n$/);
  });
});
