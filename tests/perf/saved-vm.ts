import { mkdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { removeBridge } from '../../src/network/serve-bridge.js';
import { Sandbox } from '../../src/sdk/sandbox.js';
import { memoryByMapping } from '../../src/sys/processes.js';
import { qemuProcessesUsing } from '../e2e/harness.js';
import { pushBusybox, startRegistry } from '../fixtures/registry.js';
import { killEverySandbox, serveBridge, serveStateDir, startServe, stopServe } from '../fixtures/serve.js';

/**
 * Issue 28's figures for saved sandboxes, through `hull serve` and the SDK, in one run (only
 * ratios mean anything on these shared machines): forks of 1, each taken beside a templated
 * Sandbox.create (five pairs, medians), a fork of 10 against a create, the host PSS of each of
 * 10 idle forks against a created sandbox's, pause and resume per GiB of guest memory touched,
 * resume against create. Busybox sandboxes of 512 MiB with network 'internet' (on a bridge of
 * the bench's own); forks of an idle parent (a shell loop), which then writes 192 MiB to its
 * page cache before its pause; its own server, root and state directory.
 */
export interface SavedVmFigures {
  memoryMiB: number;
  /** What its guest's memory held (touched) at the pause: QEMU's whole save of its RAM. */
  touchedMiB: number;
  /**
   * The parent's saved state on disk: only what differs from its template when its template's
   * memory is kept as its base (snapshot/pause-ram.ts), else its whole RAM.
   */
  savedMiB: number;
  /** The base beside it (the template's memory, sparse; shared by every pause from it). */
  baseMiB: number;
  /** Medians of PAIRS creates and forks of 1, taken in turn (the order swapped every pair). */
  createMs: number;
  forkOfOneMs: number;
  samplesMs: { create: number[]; forkOfOne: number[] };
  forkOfTenMs: number;
  pauseMs: number;
  resumeMs: number;
  /** The same sandbox paused and resumed a second time (its template's base kept already). */
  pauseAgainMs: number;
  resumeAgainMs: number;
  pauseSecondsPerGiB: number;
  resumeSecondsPerGiB: number;
  createdPssMiB: number;
  forkPssMiB: number;
  /** The same two without QEMU's executable anonymous memory (TCG's translated code). */
  createdPssWithoutCodeMiB: number;
  forkPssWithoutCodeMiB: number;
  ratios: {
    forkOfOneOverCreate: number;
    forkOfTenEachOverCreate: number;
    forkPssOverCreated: number;
    forkPssOverCreatedWithoutCode: number;
    resumeOverCreate: number;
  };
}

const MEMORY_MIB = 512;
/** Creates and forks of 1 side by side: one of each is at the mercy of this machine's noise. */
const PAIRS = 5;
const TOUCHED_MIB = 192;

/**
 * A QEMU's PSS in MiB, with and without its executable anonymous memory (under TCG its
 * translated code, its own in every QEMU and absent under KVM), as the idle-memory figure.
 */
async function pssMiB(pid: number): Promise<{ all: number; withoutCode: number }> {
  const memory = await memoryByMapping(pid);
  if (!memory) throw new Error(`QEMU ${pid} is gone`);
  return { all: memory.total / 2 ** 20, withoutCode: (memory.total - memory.anonymousExecutable) / 2 ** 20 };
}

/** The QEMU of a serve sandbox (its container's directory is in QEMU's command line). */
async function qemuOf(root: string, sandboxId: string): Promise<number> {
  const [pid] = await qemuProcessesUsing(`${join(root, sandboxId)}/`);
  if (!pid) throw new Error(`no QEMU for ${sandboxId}`);
  return pid;
}

async function timed<T>(action: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await action();
  return { ms: Math.round(performance.now() - started), value };
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measureSavedVms(scratch: string): Promise<SavedVmFigures> {
  const root = join(scratch, 'saved-root');
  const registry = await startRegistry(join(scratch, 'saved-registry'));
  const bridge = serveBridge('hb', '10.217.0.0/24');
  const api = `unix:${join(scratch, 'saved-api.sock')}`;
  await mkdir(join(scratch, 'saved-state'), { recursive: true });
  const state = await serveStateDir(join(scratch, 'saved-state'));
  const server = await startServe(root, ['--listen', api], { HULL_STATE_DIR: state, ...bridge.env });
  const request = { api, memoryMiB: MEMORY_MIB, timeoutMs: 3_600_000 } as const;
  try {
    const image = await pushBusybox(scratch, registry);
    // The template of this shape is made by the first create, not timed.
    await (await Sandbox.create({ ...request, image })).kill();
    const parent = await Sandbox.create({ ...request, image });
    await parent.commands.run('i=0; while true; do i=$((i+1)); sleep 1; done', { background: true });

    const samples = { create: [] as number[], forkOfOne: [] as number[] };
    const createOne = async () => {
      const one = await timed(() => Sandbox.create({ ...request, image }));
      samples.create.push(one.ms);
      return one.value;
    };
    const forkOne = async () => {
      const one = await timed(() => parent.fork({ count: 1 }));
      samples.forkOfOne.push(one.ms);
      for (const fork of one.value) await fork.kill();
    };
    // The last created sandbox stays, idle, for the memory figures below.
    let createdSandbox: Sandbox | undefined;
    for (let i = 0; i < PAIRS; i++) {
      await createdSandbox?.kill();
      if (i % 2 === 0) {
        createdSandbox = await createOne();
        await forkOne();
      } else {
        await forkOne();
        createdSandbox = await createOne();
      }
    }
    const created = { ms: median(samples.create), value: createdSandbox! };
    const one = { ms: median(samples.forkOfOne) };
    const ten = await timed(() => parent.fork({ count: 10 }));
    await sleep(5000);
    const createdPss = await pssMiB(await qemuOf(root, created.value.sandboxId));
    const forkPss = await Promise.all(ten.value.map(async (f) => pssMiB(await qemuOf(root, f.sandboxId))));
    const createdPssMiB = createdPss.all;
    const forkPssMiB = median(forkPss.map((p) => p.all));
    const forkPssWithoutCodeMiB = median(forkPss.map((p) => p.withoutCode));
    for (const fork of ten.value) await fork.kill();

    // Then memory touched, for pause and resume per GiB (the forks above were of an idle guest,
    // as the created sandbox they are compared with is).
    await parent.commands.run(`dd if=/dev/urandom of=/tmp/fill bs=1M count=${TOUCHED_MIB} 2>/dev/null`, {
      timeoutMs: 600_000,
    });
    const pause = await timed(() => parent.pause());
    const saved = JSON.parse(
      await readFile(join(root, '@serve', 'sandboxes', parent.sandboxId, 'saved', 'vm-state.json'), 'utf8'),
    ) as { bytes: number; unfilteredBytes?: number };
    const base = await stat(join(root, '@serve', 'sandboxes', parent.sandboxId, 'saved', 'ram.base')).catch(
      () => undefined,
    );
    const resume = await timed(() => Sandbox.resume(parent.sandboxId, { api }));
    // Once more: the first pause from a template also kept the template's memory as its base.
    const pauseAgain = await timed(() => resume.value.pause());
    const resumeAgain = await timed(() => Sandbox.resume(parent.sandboxId, { api }));
    const savedGiB = (saved.unfilteredBytes ?? saved.bytes) / 2 ** 30;
    return {
      memoryMiB: MEMORY_MIB,
      touchedMiB: round((saved.unfilteredBytes ?? saved.bytes) / 2 ** 20, 1),
      savedMiB: round(saved.bytes / 2 ** 20, 1),
      baseMiB: round(((base?.blocks ?? 0) * 512) / 2 ** 20, 1),
      createMs: created.ms,
      forkOfOneMs: one.ms,
      samplesMs: samples,
      forkOfTenMs: ten.ms,
      pauseMs: pause.ms,
      resumeMs: resume.ms,
      pauseAgainMs: pauseAgain.ms,
      resumeAgainMs: resumeAgain.ms,
      pauseSecondsPerGiB: round(pause.ms / 1000 / savedGiB),
      resumeSecondsPerGiB: round(resume.ms / 1000 / savedGiB),
      createdPssMiB: round(createdPssMiB, 1),
      forkPssMiB: round(forkPssMiB, 1),
      createdPssWithoutCodeMiB: round(createdPss.withoutCode, 1),
      forkPssWithoutCodeMiB: round(forkPssWithoutCodeMiB, 1),
      ratios: {
        forkOfOneOverCreate: round(one.ms / created.ms),
        forkOfTenEachOverCreate: round(ten.ms / 10 / created.ms),
        forkPssOverCreated: round(forkPssMiB / createdPssMiB),
        forkPssOverCreatedWithoutCode: round(forkPssWithoutCodeMiB / createdPss.withoutCode),
        resumeOverCreate: round(resume.ms / created.ms),
      },
    };
  } finally {
    await killEverySandbox(api);
    await stopServe(server);
    await registry.stop();
    await removeBridge(bridge.network);
  }
}

export function printSavedVms(f: SavedVmFigures): void {
  console.log(
    `saved sandboxes (through the API, ${f.memoryMiB} MiB guests): templated Sandbox.create ${f.createMs} ms; fork of 1 ${f.forkOfOneMs} ms (medians of ${f.samplesMs.create.length} taken in turn: ${f.samplesMs.create} / ${f.samplesMs.forkOfOne} ms), of 10 ${f.forkOfTenMs} ms`,
  );
  console.log(
    `saved sandboxes: fork of 1 / create = ${f.ratios.forkOfOneOverCreate}; fork of 10, each / create = ${f.ratios.forkOfTenEachOverCreate} (goal <= 1)`,
  );
  console.log(
    `saved sandboxes: idle QEMU PSS, a fork (median of 10) ${f.forkPssMiB} MiB / a created sandbox ${f.createdPssMiB} MiB = ${f.ratios.forkPssOverCreated} (goal <= 0.5); without TCG's translated code ${f.forkPssWithoutCodeMiB} / ${f.createdPssWithoutCodeMiB} MiB = ${f.ratios.forkPssOverCreatedWithoutCode}`,
  );
  console.log(
    `saved sandboxes: pause ${f.pauseMs} ms, resume ${f.resumeMs} ms for ${f.touchedMiB} MiB of guest memory touched (saved ${f.savedMiB} MiB, beside a base of ${f.baseMiB} MiB shared by its template's pauses): pause ${f.pauseSecondsPerGiB} s/GiB, resume ${f.resumeSecondsPerGiB} s/GiB; resume / create = ${f.ratios.resumeOverCreate}`,
  );
  console.log(
    `saved sandboxes: paused and resumed again: pause ${f.pauseAgainMs} ms, resume ${f.resumeAgainMs} ms`,
  );
}
