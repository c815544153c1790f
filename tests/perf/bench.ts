/**
 * hull's start-up benchmark. Measures, interleaved in one run on this machine:
 *   (a) floor: the same QEMU and kernel booting straight to a trivial init that exits;
 *   (b) `hull run` of `true` (VM, agent, container set-up and teardown together);
 *   (c) runc running `true` on the host, where runc is installed.
 * It prints medians and the ratios b/a and b/c and writes them as JSON. Machines here are
 * shared and noisy: only ratios taken in the same run mean anything.
 *
 *   npm run bench [-- --runs N --out FILE]
 */
import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { trivialBootCommandLine } from '../../src/hypervisor/qemu/command-line.js';
import { hostTscKhz } from '../../src/hypervisor/tsc.js';
import { currentImage } from '../../src/image/manifest.js';
import { accelFor, DEFAULT_MEMORY_MIB } from '../../src/sandbox/runtime.js';
import { which } from '../../src/sys/exec.js';
import { HULL } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '7' }, out: { type: 'string', default: 'bench-results.json' } },
});
const runs = Number(values.runs);

function timed(command: string, args: string[]): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${command} failed (${r.status}): ${r.stderr.toString().trim()}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const scratch = await mkdtemp(join(tmpdir(), 'hull-bench-'));
try {
  const image = await currentImage();
  const { accel, reason } = await accelFor(image);
  const bundle = join(scratch, 'bundle');
  await mkdir(bundle);
  await makeBusyboxBundle(bundle, ['true']);
  const qemu = (await which('qemu-system-x86_64'))!;
  const floorArgs = trivialBootCommandLine({
    kernel: image.kernel,
    initrd: image.initrd,
    accel,
    deviceDiscovery: image.manifest.kernel.deviceDiscovery,
    tscKhz: accel === 'tcg' ? await hostTscKhz() : undefined,
    memoryMiB: DEFAULT_MEMORY_MIB,
  });
  const runc = await which('runc');
  const root = join(scratch, 'root');
  const samples: Record<'floor' | 'hull' | 'runc', number[]> = { floor: [], hull: [], runc: [] };
  // One warm-up of each, so page-cache state is the same for all three.
  timed(qemu, floorArgs);
  timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, 'bench-warm']);
  for (let i = 0; i < runs; i++) {
    samples.floor.push(timed(qemu, floorArgs));
    samples.hull.push(timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, `bench-${i}`]));
    if (runc)
      samples.runc.push(
        timed(runc, ['--root', join(scratch, 'runc'), 'run', '-b', bundle, `bench-runc-${i}`]),
      );
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  const floor = median(samples.floor);
  const hull = median(samples.hull);
  const runcMs = runc ? median(samples.runc) : undefined;
  const result = {
    date: new Date().toISOString(),
    accel,
    accelReason: reason,
    kernel: image.manifest.kernel.release,
    runs,
    medianMs: { floor: Math.round(floor), hull: Math.round(hull), runc: runcMs && Math.round(runcMs) },
    ratios: {
      hullOverFloor: Number((hull / floor).toFixed(3)),
      hullOverRunc: runcMs ? Number((hull / runcMs).toFixed(1)) : null,
    },
    target: { hullOverFloor: 1.25 },
    samplesMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])),
  };
  console.log(`accelerator: ${accel} (${reason})`);
  console.log(
    `median of ${runs}: floor ${result.medianMs.floor} ms, hull run ${result.medianMs.hull} ms${runcMs ? `, runc ${result.medianMs.runc} ms` : ''}`,
  );
  console.log(`hull run / floor = ${result.ratios.hullOverFloor} (target <= 1.25)`);
  if (runcMs) console.log(`hull run / runc  = ${result.ratios.hullOverRunc}`);
  await writeFile(resolve(values.out!), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written to ${resolve(values.out!)}`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
