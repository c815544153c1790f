/**
 * hull's start-up benchmark. Measures, interleaved in one run on this machine:
 *   (a) floor: the same QEMU and kernel booting straight to a trivial init that exits;
 *   (b) cold `hull run` of `true` (VM booted, agent, container set-up and teardown together,
 *       HULL_TEMPLATE=off), the agent starting from its V8 startup snapshot made for the
 *       guest's CPU;
 *   (b') the same with HULL_AGENT_SNAPSHOT=off, the agent starting from its script;
 *   (t) `hull run` of `true` cloned from its VM template (made before the runs);
 *   (c) runc running `true` on the host, where runc is installed.
 * It prints medians and the ratios t/b (P2), b/a and t/a (P1), b/b' and b/c, then the network
 * figure (throughput and round-trip time through a published port, hull vs runc:
 * tests/perf/network.ts), then what an idle sandbox costs the host, cloned and booted (P3: PSS
 * of ten idle sandboxes each: tests/perf/idle-memory.ts), then how many idle cloned sandboxes
 * start and stay up on this machine (P4, `--part density`, up to 100: tests/perf/density.ts),
 * then a metadata-heavy job (unpack and stat a 20,000-file tree) on a `hull serve` sandbox's
 * root on disks ÷ in a `hull run` container on the 9p share ÷ runc (`--part rootfs`:
 * tests/perf/rootfs.ts), then the sandboxes API against the command line (`--part serve`:
 * tests/perf/serve.ts: Sandbox.create ÷ a templated `hull run true`, a command's round trip,
 * 100 MiB of files, 50 sandboxes made at once; `--part commands`: the command round trip alone),
 * then saved VMs (`--part saved`), then the same start and memory figures for arm64 guests
 * when an arm64 image is installed, each as a ratio to the arm64 floor (`--part arm64`:
 * tests/perf/arm64.ts), and writes them as JSON. Machines here are shared and noisy: only
 * ratios taken in the same run mean anything.
 *
 * First of all, what a verb costs beyond Node: `hull list` on an empty root ÷ `node -e 0`, pair
 * by pair (tests/perf/cli-start.ts); and beside the start figures, the phases of one templated
 * run, from its `hull run --trace`.
 *
 *   npm run bench [-- --runs N --rootfs-runs N --out FILE --part all|cli|start|network|memory|density|rootfs|serve|commands|saved|arm64]
 *   (`--help` prints the options: tests/perf/bench-options.ts)
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trivialBootCommandLine } from '../../src/hypervisor/qemu/command-line.js';
import { QemuHypervisor } from '../../src/hypervisor/qemu/qemu.js';
import { currentImage } from '../../src/image/manifest.js';
import { agentSnapshotFor, defaultMemoryMiB, vmTargetFor } from '../../src/sandbox/runtime.js';
import { which } from '../../src/sys/exec.js';
import type { TraceFile } from '../../src/trace/boot-trace.js';
import { HULL_COMMAND } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { measureArm64, printArm64 } from './arm64.js';
import { type BenchOptions, BenchUsageError, parseBenchOptions, USAGE } from './bench-options.js';
import { measureCliStart } from './cli-start.js';
import { measureDensity } from './density.js';
import { measureIdleMemory, measureTemplatedIdleMemory } from './idle-memory.js';
import { measureNetwork, median, type NetworkFigures } from './network.js';
import { measureRootfs } from './rootfs.js';
import { measureSavedVms, printSavedVms } from './saved-vm.js';
import { measureCommands, measureServe, printCommands, printServe } from './serve.js';
import { timed } from './timed.js';

const options = optionsOrExit(process.argv.slice(2));
const runs = options.runs;

/** The options, or a one-line usage error and exit status 2 before anything is measured. */
function optionsOrExit(args: string[]): BenchOptions {
  try {
    const parsed = parseBenchOptions(args);
    if (parsed !== 'help') return parsed;
    console.log(USAGE);
    process.exit(0);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    console.error(`bench: ${err.message}`);
    process.exit(2);
  }
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
  const samples: Record<'floor' | 'hull' | 'hullNoSnapshot' | 'hullTemplate' | 'runc', number[]> = {
    floor: [],
    hull: [],
    hullNoSnapshot: [],
    hullTemplate: [],
    runc: [],
  };
  // hull is run as its users run it, by bin/hull (what podman, Docker and containerd are
  // configured with), cold and from the template alike.
  const cold = { HULL_TEMPLATE: 'off' };
  const noSnapshot = { ...cold, HULL_AGENT_SNAPSHOT: 'off' };
  const templated = { HULL_TEMPLATE: 'on' };
  // One warm-up of each, so page-cache state is the same for all of them; the templated one
  // makes the template.
  timed(qemu, floorArgs);
  timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, 'bench-warm'], cold);
  timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, 'bench-warm'], noSnapshot);
  timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, 'bench-warm'], templated);
  for (let i = 0; i < runs; i++) {
    samples.floor.push(timed(qemu, floorArgs));
    samples.hull.push(timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, `bench-${i}`], cold));
    samples.hullNoSnapshot.push(
      timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, `bench-n${i}`], noSnapshot),
    );
    samples.hullTemplate.push(
      timed(HULL_COMMAND, ['--root', root, 'run', '-b', bundle, `bench-t${i}`], templated),
    );
    if (runc)
      samples.runc.push(
        timed(runc, ['--root', join(scratch, 'runc'), 'run', '-b', bundle, `bench-runc-${i}`]),
      );
    process.stderr.write('.');
  }
  process.stderr.write('\n');
  const traced = join(scratch, 'templated-trace.json');
  timed(HULL_COMMAND, ['--root', root, 'run', '--trace', traced, '-b', bundle, 'bench-traced'], templated);
  const templatedTrace = tracePhases(JSON.parse(await readFile(traced, 'utf8')) as TraceFile);
  const floor = median(samples.floor);
  const hull = median(samples.hull);
  const hullNoSnapshot = median(samples.hullNoSnapshot);
  const hullTemplate = median(samples.hullTemplate);
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
      hullTemplate: Math.round(hullTemplate),
      runc: runcMs && Math.round(runcMs),
    },
    ratios: {
      templateOverCold: Number((hullTemplate / hull).toFixed(3)),
      hullOverFloor: Number((hull / floor).toFixed(3)),
      templateOverFloor: Number((hullTemplate / floor).toFixed(3)),
      snapshotOverNoSnapshot: Number((hull / hullNoSnapshot).toFixed(3)),
      hullOverRunc: runcMs ? Number((hull / runcMs).toFixed(1)) : null,
    },
    target: { hullOverFloor: 1.25, templateOverCold: 0.2 },
    samplesMs: Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, v.map(Math.round)])),
    templatedTraceMs: templatedTrace,
  };
  console.log(`accelerator: ${accel} (${reason}), CPU model ${target.cpuModel}`);
  console.log(
    `median of ${runs}: floor ${result.medianMs.floor} ms, hull run cold ${result.medianMs.hull} ms, from the template ${result.medianMs.hullTemplate} ms, cold without the agent snapshot ${result.medianMs.hullNoSnapshot} ms${runcMs ? `, runc ${result.medianMs.runc} ms` : ''}`,
  );
  console.log(`P2: hull run from the template / cold = ${result.ratios.templateOverCold} (goal <= 0.2)`);
  console.log(`P1: hull run cold / floor = ${result.ratios.hullOverFloor} (target <= 1.25)`);
  console.log(`P1: hull run from the template / floor = ${result.ratios.templateOverFloor}`);
  console.log(`hull run cold with the agent snapshot / without = ${result.ratios.snapshotOverNoSnapshot}`);
  if (runcMs) console.log(`hull run / runc  = ${result.ratios.hullOverRunc}`);
  console.log(
    `trace of a templated hull run true: ${Object.entries(templatedTrace)
      .map(([phase, ms]) => `${phase} ${ms}`)
      .join(', ')} (ms)`,
  );
  return result;
}

/** A trace's phases in their order, each with its milliseconds (a guest phase beside the host's). */
function tracePhases(trace: TraceFile): Record<string, number> {
  return Object.fromEntries(trace.traceEvents.map((e) => [e.name, Math.round(e.dur / 1000)]));
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
  const part = (name: string) => options.part === 'all' || options.part === name;
  const cli = part('cli') ? await measureCliStart(scratch) : undefined;
  if (cli) {
    console.log(
      `hull list / node -e 0 = ${cli.hullListOverNode} (goal <= 1.3; median of ${cli.pairs} pairs: ${cli.medianMs.hullList} vs ${cli.medianMs.node} ms)`,
    );
  }
  const start = part('start') ? await measureStart(scratch) : undefined;
  const network = part('network') ? await measureNetwork(scratch, runs) : undefined;
  if (network) printNetwork(network);
  const idleMemory = part('memory') ? await measureIdleMemory(scratch) : undefined;
  const templatedIdleMemory = part('memory') ? await measureTemplatedIdleMemory(scratch) : undefined;
  if (idleMemory && templatedIdleMemory) {
    const show = ({ pssMiB: m }: typeof idleMemory) =>
      `QEMU ${m.qemu} MiB (${m.qemuTranslatedCode} of it TCG's translated code) + monitor ${m.monitor} MiB = ${m.sandbox} MiB PSS, ${m.sandboxWithoutTranslatedCode} MiB without the translated code`;
    const t = templatedIdleMemory;
    console.log(`P3: idle sandbox, median of ${t.sandboxes} side by side, booted: ${show(idleMemory)}`);
    console.log(
      `P3: idle sandbox, median of ${t.sandboxes} side by side, cloned: ${show(t)} (goal <= 55 without the translated code); their template holds ${t.templateHeldMiB} MiB, with a tenth of it ${t.sandboxWithTemplateShareMiB} MiB`,
    );
    console.log(`P3: cloned / booted = ${(t.pssMiB.sandbox / idleMemory.pssMiB.sandbox).toFixed(3)}`);
  }
  const arm64 = part('arm64') ? await measureArm64(scratch, runs) : undefined;
  if (arm64) printArm64(arm64, { floor: start?.medianMs.floor, pssMiB: idleMemory?.pssMiB.sandbox });
  const density =
    options.part === 'density' || options.part === 'all' ? await measureDensity(scratch) : undefined;
  if (density) {
    console.log(
      `P4: ${density.started} idle cloned sandboxes started (stopped at ${density.limit}${density.stoppedBecause ? `: ${density.stoppedBecause}` : ''}); ${density.answered} answered \`hull exec true\` at the end; host memory available ${density.availableMiB.before} MiB before, ${density.availableMiB.after} MiB with them`,
    );
  }
  const rootfs = part('rootfs') ? await measureRootfs(scratch, options.rootfsRuns) : undefined;
  if (rootfs) {
    const { medianMs: ms, ratios } = rootfs;
    console.log(
      `rootfs: unpack and stat ${rootfs.files} files, median of ${rootfs.runs}: serve's disks ${ms.serveDisks} ms, hull run on 9p ${ms.hullRun9p} ms${ms.runc ? `, runc ${ms.runc} ms` : ''}`,
    );
    console.log(
      `rootfs: serve's disks / hull run's 9p share = ${ratios.disksOver9p}${ratios.disksOverRunc ? `; disks / runc = ${ratios.disksOverRunc}; 9p / runc = ${ratios.ninePOverRunc}` : ''}`,
    );
  }
  const saved = part('saved') ? await measureSavedVms(scratch) : undefined;
  if (saved) printSavedVms(saved);
  const serve = part('serve') ? await measureServe(scratch, runs) : undefined;
  if (serve) printServe(serve);
  // Only when asked: --part serve measures the same round trip among its figures.
  const commands = options.part === 'commands' ? await measureCommands(scratch, runs) : undefined;
  if (commands) printCommands(commands);
  const result = {
    cli,
    ...start,
    network,
    idleMemory,
    templatedIdleMemory,
    arm64,
    density,
    rootfs,
    serve,
    commands,
    saved,
  };
  await writeFile(options.out, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`written to ${options.out}`);
} finally {
  await rm(scratch, { recursive: true, force: true });
}
