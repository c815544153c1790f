/**
 * hull's start-up benchmark. Measures, interleaved in one run on this machine:
 *   (a) floor: the same QEMU and kernel booting straight to a trivial init that exits;
 *   (b) `hull run` of `true` (VM, agent, container set-up and teardown together), the agent
 *       starting from its V8 startup snapshot made for the guest's CPU;
 *   (b') the same with HULL_AGENT_SNAPSHOT=off, the agent starting from its script;
 *   (c) runc running `true` on the host, where runc is installed.
 * It prints medians and the ratios b/a, b/b' and b/c, then the network figure (throughput and
 * round-trip time through a published port, hull vs runc: tests/perf/network.ts), then what an
 * idle sandbox costs the host (PSS of ten idle sandboxes: tests/perf/idle-memory.ts), and
 * writes them as JSON. Machines here are shared and noisy: only ratios taken in the same run mean
 * anything.
 *
 *   npm run bench [-- --runs N --out FILE --part all|start|network|memory]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { trivialBootCommandLine } from '../../src/hypervisor/qemu/command-line.js';
import { QemuHypervisor } from '../../src/hypervisor/qemu/qemu.js';
import { currentImage } from '../../src/image/manifest.js';
import { agentSnapshotFor, defaultMemoryMiB, vmTargetFor } from '../../src/sandbox/runtime.js';
import { which } from '../../src/sys/exec.js';
import { HULL } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { measureIdleMemory } from './idle-memory.js';
import { measureNetwork, median, type NetworkFigures } from './network.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    out: { type: 'string', default: 'bench-results.json' },
    part: { type: 'string', default: 'all' },
  },
});
const runs = Number(values.runs);
if (!['all', 'start', 'network', 'memory'].includes(values.part!)) {
  throw new Error(`--part ${values.part}: use all, start, network or memory`);
}

function timed(command: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(command, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${command} failed (${r.status}): ${r.stderr.toString().trim()}`);
  return ms;
}

/** (a), (b), (b') and (c) above, interleaved. */
async function measureStart(scratch: string) {
  const image = await currentImage();
  const hypervisor = new QemuHypervisor();
  const target = await vmTargetFor(image, hypervisor);
  const { accel, accelReason: reason } = target;
  const snapshot = await agentSnapshotFor(image, target, {
    hypervisor,
    signal: AbortSignal.timeout(600_000),
  });
  if (!snapshot?.disk)
    throw new Error(`no agent startup snapshot: ${snapshot?.problem ?? 'HULL_AGENT_SNAPSHOT=off'}`);
  const bundle = join(scratch, 'bundle');
  await mkdir(bundle);
  await makeBusyboxBundle(bundle, ['true']);
  const qemu = (await which('qemu-system-x86_64'))!;
  const floorArgs = trivialBootCommandLine({
    kernel: image.kernel,
    initrd: image.initrd,
    accel,
    deviceDiscovery: image.manifest.kernel.deviceDiscovery,
    tscKhz: target.tscKhz,
    cpuModel: target.cpuModel,
    memoryMiB: defaultMemoryMiB(),
  });
  const runc = await which('runc');
  const root = join(scratch, 'root');
  const samples: Record<'floor' | 'hull' | 'hullNoSnapshot' | 'runc', number[]> = {
    floor: [],
    hull: [],
    hullNoSnapshot: [],
    runc: [],
  };
  const noSnapshot = { HULL_AGENT_SNAPSHOT: 'off' };
  // One warm-up of each, so page-cache state is the same for all of them.
  timed(qemu, floorArgs);
  timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, 'bench-warm']);
  timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, 'bench-warm'], noSnapshot);
  for (let i = 0; i < runs; i++) {
    samples.floor.push(timed(qemu, floorArgs));
    samples.hull.push(timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, `bench-${i}`]));
    samples.hullNoSnapshot.push(
      timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, `bench-n${i}`], noSnapshot),
    );
    if (runc)
      samples.runc.push(
        timed(runc, ['--root', join(scratch, 'runc'), 'run', '-b', bundle, `bench-runc-${i}`]),
      );
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  const floor = median(samples.floor);
  const hull = median(samples.hull);
  const hullNoSnapshot = median(samples.hullNoSnapshot);
  const runcMs = runc ? median(samples.runc) : undefined;
  const result = {
    date: new Date().toISOString(),
    accel,
    accelReason: reason,
    kernel: image.manifest.kernel.release,
    cpuModel: target.cpuModel,
    runs,
    medianMs: {
      floor: Math.round(floor),
      hull: Math.round(hull),
      hullNoSnapshot: Math.round(hullNoSnapshot),
      runc: runcMs && Math.round(runcMs),
    },
    ratios: {
      hullOverFloor: Number((hull / floor).toFixed(3)),
      snapshotOverNoSnapshot: Number((hull / hullNoSnapshot).toFixed(3)),
      hullOverRunc: runcMs ? Number((hull / runcMs).toFixed(1)) : null,
    },
    target: { hullOverFloor: 1.25 },
    samplesMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])),
  };
  console.log(`accelerator: ${accel} (${reason}), CPU model ${target.cpuModel}`);
  console.log(
    `median of ${runs}: floor ${result.medianMs.floor} ms, hull run ${result.medianMs.hull} ms, hull run without the agent snapshot ${result.medianMs.hullNoSnapshot} ms${runcMs ? `, runc ${result.medianMs.runc} ms` : ''}`,
  );
  console.log(`hull run / floor = ${result.ratios.hullOverFloor} (target <= 1.25)`);
  console.log(`hull run with the agent snapshot / without = ${result.ratios.snapshotOverNoSnapshot}`);
  if (runcMs) console.log(`hull run / runc  = ${result.ratios.hullOverRunc}`);
  return result;
}

function printNetwork(figures: NetworkFigures): void {
  const { throughputMiBps: t, rttMs: r, ratios } = figures;
  console.log(
    `network, host -> container through podman -p (median of ${figures.rounds}): throughput hull ${t.hull} MiB/s, runc ${t.runc} MiB/s; round trip hull ${r.hull} ms, runc ${r.runc} ms`,
  );
  console.log(`network throughput hull / runc = ${ratios.throughputHullOverRunc}`);
  console.log(`network round trip hull / runc = ${ratios.rttHullOverRunc}`);
}

const scratch = await mkdtemp(join(tmpdir(), 'hull-bench-'));
try {
  const part = (name: string) => values.part === 'all' || values.part === name;
  const start = part('start') ? await measureStart(scratch) : undefined;
  const network = part('network') ? await measureNetwork(scratch, runs) : undefined;
  if (network) printNetwork(network);
  const idleMemory = part('memory') ? await measureIdleMemory(scratch) : undefined;
  if (idleMemory) {
    const { qemu, monitor, sandbox } = idleMemory.pssMiB;
    console.log(
      `idle sandbox, median of ${idleMemory.sandboxes} side by side: QEMU ${qemu} MiB + monitor ${monitor} MiB = ${sandbox} MiB PSS`,
    );
  }
  const result = { ...start, network, idleMemory };
  await writeFile(resolve(values.out!), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written to ${resolve(values.out!)}`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
