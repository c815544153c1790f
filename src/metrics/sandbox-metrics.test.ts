import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sandboxRegistry } from './sandbox-metrics.js';

test("samples become Prometheus text: counts by state, a container's guest and host figures, boot phases", async () => {
  const text = await sandboxRegistry([
    {
      id: 'a',
      status: 'running',
      guest: { memoryBytes: 1000, memoryLimitBytes: 4096, cpuSeconds: 1.5, pids: 2 },
      host: [
        { process: 'qemu', pssBytes: 300, cpuSeconds: 4 },
        { process: 'monitor', pssBytes: 20, cpuSeconds: 0.5 },
      ],
      boot: { phases: [{ name: 'guest kernel', where: 'guest', seconds: 0.9 }] },
    },
    { id: 'b', status: 'stopped', host: [] },
  ]).metrics();
  for (const line of [
    'hull_sandboxes{status="running"} 1',
    'hull_sandboxes{status="stopped"} 1',
    'hull_sandboxes{status="paused"} 0',
    'hull_container_memory_usage_bytes{id="a"} 1000',
    'hull_container_memory_limit_bytes{id="a"} 4096',
    'hull_container_cpu_seconds_total{id="a"} 1.5',
    'hull_sandbox_host_pss_bytes{id="a",process="qemu"} 300',
    'hull_sandbox_host_cpu_seconds_total{id="a",process="monitor"} 0.5',
    'hull_boot_phase_seconds_bucket{le="1",phase="guest kernel",where="guest"} 1',
    'hull_boot_phase_seconds_bucket{le="0.5",phase="guest kernel",where="guest"} 0',
  ]) {
    assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
  }
  assert.ok(!text.includes('id="b"'), 'a stopped container has no figures');
});
