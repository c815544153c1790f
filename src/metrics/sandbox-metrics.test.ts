import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AggregatorRegistry } from 'prom-client';
import type { RegistryJson } from './owner-metrics.js';
import { sandboxRegistry } from './sandbox-metrics.js';

const running = {
  id: 'pod',
  status: 'running',
  containers: [
    { id: 'a', guest: { memoryBytes: 1000, memoryLimitBytes: 4096, cpuSeconds: 1.5, pids: 2 } },
    { id: 'b', guest: { memoryBytes: 10, cpuSeconds: 0, pids: 1 } },
  ],
  host: [
    { process: 'qemu' as const, pssBytes: 300, cpuSeconds: 4 },
    { process: 'shim' as const, pssBytes: 20, cpuSeconds: 0.5 },
  ],
  guest: { memoryTotalBytes: 4000, memoryUsedBytes: 1500, cpuSeconds: 2.5 },
  boot: { phases: [{ name: 'guest kernel', where: 'guest' as const, seconds: 0.9 }] },
};

function assertLines(text: string, lines: string[]): void {
  for (const line of lines) assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
}

test("samples become Prometheus text: counts by state, a container's guest and host figures, boot phases", async () => {
  const text = await sandboxRegistry([
    running,
    { id: 'c', status: 'stopped', containers: [], host: [] },
  ]).metrics();
  assertLines(text, [
    'hull_sandboxes{status="running"} 1',
    'hull_sandboxes{status="stopped"} 1',
    'hull_sandboxes{status="paused"} 0',
    'hull_container_memory_usage_bytes{id="a",sandbox="pod"} 1000',
    'hull_container_memory_limit_bytes{id="a",sandbox="pod"} 4096',
    'hull_container_cpu_seconds_total{id="a",sandbox="pod"} 1.5',
    'hull_container_pids{id="b",sandbox="pod"} 1',
    'hull_sandbox_host_pss_bytes{id="pod",process="qemu"} 300',
    'hull_sandbox_guest_memory_total_bytes{id="pod"} 4000',
    'hull_sandbox_guest_memory_used_bytes{id="pod"} 1500',
    'hull_sandbox_guest_cpu_seconds_total{id="pod"} 2.5',
    'hull_sandbox_host_cpu_seconds_total{id="pod",process="shim"} 0.5',
    'hull_boot_phase_seconds_bucket{le="1",phase="guest kernel",where="guest"} 1',
    'hull_boot_phase_seconds_bucket{le="0.5",phase="guest kernel",where="guest"} 0',
  ]);
  assert.ok(!text.includes('id="c"'), 'a stopped sandbox has no figures');
  assert.ok(!text.includes('memory_limit_bytes{id="b"'), 'no limit, no line');
});

test("the owners' registries sum into one scrape: counts add, each sandbox keeps its own series", async () => {
  const root = sandboxRegistry([]);
  const owner = (id: string) =>
    sandboxRegistry(
      [{ ...running, id, containers: [{ id: `${id}-ctr`, guest: running.containers[0]!.guest }] }],
      false,
    );
  const registry = AggregatorRegistry.aggregate([
    (await root.getMetricsAsJSON()) as RegistryJson,
    (await owner('one').getMetricsAsJSON()) as RegistryJson,
    (await owner('two').getMetricsAsJSON()) as RegistryJson,
  ]);
  const text = await registry.metrics();
  assertLines(text, [
    'hull_sandboxes{status="running"} 2',
    'hull_sandboxes{status="stopped"} 0',
    'hull_container_memory_limit_bytes{id="one-ctr",sandbox="one"} 4096',
    'hull_container_memory_limit_bytes{id="two-ctr",sandbox="two"} 4096',
    'hull_boot_phase_seconds_count{phase="guest kernel",where="guest"} 2',
  ]);
});
