/**
 * The arm64 figures of `npm run bench`, beside x86_64's, when an arm64 guest image is
 * installed (`hull image build --arch arm64`): on this x86_64 host every arm64 guest runs
 * under TCG, emulating another architecture, so each figure is given as a ratio to the arm64
 * floor (Debian's arm64 kernel booting straight to a trivial init, the same QEMU), never to
 * x86_64's: floor, cold `hull run`, `hull run` cloned from its template, and the PSS of an
 * idle sandbox (booted) and of an idle clone.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { archProfile } from '../../src/hypervisor/arch.js';
import { trivialBootCommandLine } from '../../src/hypervisor/qemu/command-line.js';
import { QemuHypervisor } from '../../src/hypervisor/qemu/qemu.js';
import { currentImage, type GuestImage } from '../../src/image/manifest.js';
import { defaultMemoryMiB, vmTargetFor } from '../../src/sandbox/runtime.js';
import { guestBusybox } from '../../src/shim/guest-pause.js';
import { which } from '../../src/sys/exec.js';
import { HULL } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { idleSandboxes } from './idle-memory.js';
import { median } from './network.js';
import { timed } from './timed.js';

export interface Arm64Figures {
  kernel: string;
  cpuModel: string;
  runs: number;
  medianMs: { floor: number; hull: number; hullTemplate: number };
  ratios: { hullOverFloor: number; templateOverFloor: number; templateOverCold: number };
  idlePssMiB: { booted: number; cloned: number; sandboxes: number };
  samplesMs: Record<string, number[]>;
}

/** The arm64 figures, or undefined (and one line saying why) without an arm64 image. */
export async function measureArm64(
  scratch: string,
  runs: number,
  sandboxes = 3,
): Promise<Arm64Figures | undefined> {
  let image: GuestImage;
  try {
    image = await currentImage('arm64');
  } catch {
    console.log('arm64: skipped, no arm64 guest image (`hull image build --arch arm64` makes one)');
    return undefined;
  }
  const target = await vmTargetFor(image, new QemuHypervisor('arm64'), () => {});
  const qemu = await which(archProfile('arm64').qemuBinary);
  if (!qemu) throw new Error(`arm64: ${archProfile('arm64').qemuBinary} is not installed`);
  const floorArgs = trivialBootCommandLine({
    arch: 'arm64',
    kernel: image.kernel,
    initrd: image.initrd,
    accel: target.accel,
    deviceDiscovery: image.manifest.kernel.deviceDiscovery,
    cpuModel: target.cpuModel,
    memoryMiB: defaultMemoryMiB(),
  });
  // The containers' busybox is the arm64 image's own: the VM is chosen from the program.
  const dir = join(scratch, 'arm64');
  const busybox = join(dir, 'busybox');
  await mkdir(dir, { recursive: true });
  await writeFile(busybox, await guestBusybox('arm64'));
  await chmod(busybox, 0o755);
  const bundle = join(dir, 'bundle');
  await mkdir(bundle);
  await makeBusyboxBundle(bundle, ['true'], undefined, busybox);
  const root = join(dir, 'root');
  const run = (id: string, env: NodeJS.ProcessEnv) =>
    timed(process.execPath, [HULL, '--root', root, 'run', '-b', bundle, id], env);
  const cold = { HULL_TEMPLATE: 'off' };
  const templated = { HULL_TEMPLATE: 'on' };
  const samples = { floor: [] as number[], hull: [] as number[], hullTemplate: [] as number[] };
  timed(qemu, floorArgs);
  run('arm64-warm', cold);
  run('arm64-warm', templated);
  for (let i = 0; i < runs; i++) {
    samples.floor.push(timed(qemu, floorArgs));
    samples.hull.push(run(`arm64-${i}`, cold));
    samples.hullTemplate.push(run(`arm64-t${i}`, templated));
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  const booted = await idleSandboxes(join(dir, 'idle-cold'), sandboxes, cold, undefined, busybox);
  const cloned = await idleSandboxes(join(dir, 'idle-templated'), sandboxes, templated, undefined, busybox);
  const [floor, hullMs, templateMs] = [samples.floor, samples.hull, samples.hullTemplate].map(median) as [
    number,
    number,
    number,
  ];
  const ratio = (x: number, y: number) => Number((x / y).toFixed(3));
  return {
    kernel: image.manifest.kernel.release,
    cpuModel: target.cpuModel,
    runs,
    medianMs: { floor: Math.round(floor), hull: Math.round(hullMs), hullTemplate: Math.round(templateMs) },
    ratios: {
      hullOverFloor: ratio(hullMs, floor),
      templateOverFloor: ratio(templateMs, floor),
      templateOverCold: ratio(templateMs, hullMs),
    },
    idlePssMiB: { booted: booted.pssMiB.sandbox, cloned: cloned.pssMiB.sandbox, sandboxes },
    samplesMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])),
  };
}

/** The arm64 lines, with x86_64's figures of the same run beside them where there are some. */
export function printArm64(a: Arm64Figures, x86?: { floor?: number; pssMiB?: number }): void {
  console.log(`arm64 (TCG, ${a.cpuModel}, kernel ${a.kernel}), median of ${a.runs}:`);
  console.log(
    `arm64: floor ${a.medianMs.floor} ms${x86?.floor ? ` (x86_64's ${x86.floor} ms, ${(a.medianMs.floor / x86.floor).toFixed(2)}x)` : ''}, hull run cold ${a.medianMs.hull} ms, from the template ${a.medianMs.hullTemplate} ms`,
  );
  console.log(`arm64 P1: hull run cold / arm64 floor = ${a.ratios.hullOverFloor}`);
  console.log(`arm64 P1: hull run from the template / arm64 floor = ${a.ratios.templateOverFloor}`);
  console.log(`arm64 P2: hull run from the template / cold = ${a.ratios.templateOverCold}`);
  console.log(
    `arm64 P3: idle sandbox PSS, median of ${a.idlePssMiB.sandboxes}: booted ${a.idlePssMiB.booted} MiB, cloned ${a.idlePssMiB.cloned} MiB${x86?.pssMiB ? ` (x86_64 booted ${x86.pssMiB} MiB)` : ''}`,
  );
}
