/**
 * The memory figure of `npm run bench`: what an idle sandbox costs the host. Ten busybox
 * `sleep` containers are started with `hull run -d`, left to settle, and each sandbox's
 * processes (QEMU and its monitor) are counted by proportional set size, so pages shared
 * between sandboxes (QEMU's code, the guest kernel file, a template's memory that clones
 * read) count once in all. The figure is the median sandbox, with and without QEMU's executable
 * anonymous memory (under TCG its translated code, which KVM does not have); every sandbox is
 * deleted after.
 * Cloned sandboxes also share their template's memory, held by a process of its own that maps
 * none of it: what it holds is given apart, and divided among the sandboxes in an upper bound.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { memoryByMapping, processesMentioning } from '../../src/sys/processes.js';
import type { ListedTemplate } from '../../src/template/store.js';
import { hull, hullDetached } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { median } from './network.js';

export interface IdleMemoryFigures {
  sandboxes: number;
  /**
   * The median sandbox, in MiB: QEMU, its monitor, and both; QEMU's executable anonymous
   * memory (under TCG its translated code, which KVM does not have) on its own, and the
   * sandbox without it.
   */
  pssMiB: {
    qemu: number;
    qemuTranslatedCode: number;
    monitor: number;
    sandbox: number;
    sandboxWithoutTranslatedCode: number;
  };
}

export interface TemplatedMemoryFigures extends IdleMemoryFigures {
  /** The memory the sandboxes' templates hold (pages present), in MiB. */
  templateHeldMiB: number;
  /** The median sandbox plus its share of the template's memory: an upper bound. */
  sandboxWithTemplateShareMiB: number;
}

const MiB = 2 ** 20;
/** Long enough for each guest's start-up buffers to be freed and reported back. */
const SETTLE_MS = 15_000;

/** Idle sandboxes booted (HULL_TEMPLATE=off). */
export function measureIdleMemory(scratch: string, count = 10): Promise<IdleMemoryFigures> {
  return idleSandboxes(join(scratch, 'idle-cold'), count, { HULL_TEMPLATE: 'off' });
}

/** Idle sandboxes cloned from their template (made first, and left for the next run). */
export async function measureTemplatedIdleMemory(
  scratch: string,
  count = 10,
): Promise<TemplatedMemoryFigures> {
  const made = await hull(['template', 'build']);
  if (made.code !== 0) throw new Error(`hull template build: ${made.stderr}`);
  const figures = await idleSandboxes(
    join(scratch, 'idle-templated'),
    count,
    { HULL_TEMPLATE: 'on' },
    async () => {
      const listed = JSON.parse(
        (await hull(['template', 'list', '--format', 'json'])).stdout,
      ) as ListedTemplate[];
      const key = /^template (\w+):/.exec(made.stderr)?.[1];
      return (listed.find((t) => t.key === key)?.residentBytes ?? 0) / MiB;
    },
  );
  const templateHeldMiB = Math.round(figures.extra ?? 0);
  return {
    ...figures,
    templateHeldMiB,
    sandboxWithTemplateShareMiB: Math.round(figures.pssMiB.sandbox + templateHeldMiB / count),
  };
}

export async function idleSandboxes(
  dir: string,
  count: number,
  env: NodeJS.ProcessEnv,
  /** Read while the sandboxes run (the template's held memory). */
  alongside?: () => Promise<number>,
  /** Another architecture's busybox: its sandboxes are of that architecture. */
  busybox?: string,
): Promise<IdleMemoryFigures & { extra?: number }> {
  const root = join(dir, 'root');
  const bundle = join(dir, 'bundle');
  await mkdir(bundle, { recursive: true });
  await makeBusyboxBundle(bundle, ['sleep', '100000'], undefined, busybox);
  const ids = Array.from({ length: count }, (_, i) => `idle-${i}`);
  try {
    for (const id of ids) {
      const r = await hullDetached(root, ['--bundle', bundle, id], env);
      if (r.code !== 0) throw new Error(`hull run -d ${id}: ${r.stderr}`);
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const qemu: number[] = [];
    const translatedCode: number[] = [];
    const monitor: number[] = [];
    for (const id of ids) {
      const state = JSON.parse((await hull(['--root', root, 'state', id])).stdout) as { pid: number };
      const [vmm] = await processesMentioning(`${join(root, id)}/`, (cmdline) =>
        cmdline.includes('qemu-system'),
      );
      const costs = await Promise.all(
        [vmm, state.pid].map((pid) => (pid ? memoryByMapping(pid) : undefined)),
      );
      if (!costs[0] || !costs[1]) throw new Error(`${id}: its QEMU or monitor is not running`);
      qemu.push(costs[0].total / MiB);
      translatedCode.push(costs[0].anonymousExecutable / MiB);
      monitor.push(costs[1].total / MiB);
    }
    const sandbox = qemu.map((q, i) => q + monitor[i]!);
    const withoutCode = sandbox.map((s, i) => s - translatedCode[i]!);
    const round = (x: number) => Math.round(x);
    return {
      sandboxes: count,
      pssMiB: {
        qemu: round(median(qemu)),
        qemuTranslatedCode: round(median(translatedCode)),
        monitor: round(median(monitor)),
        sandbox: round(median(sandbox)),
        sandboxWithoutTranslatedCode: round(median(withoutCode)),
      },
      extra: await alongside?.(),
    };
  } finally {
    for (const id of ids) await hull(['--root', root, 'delete', '--force', id]);
  }
}
