/**
 * P4 of `npm run bench`: how many idle sandboxes, cloned from their template, start and stay up
 * on this machine. Busybox `sleep` containers are started with `hull run -d` one after another
 * until `limit` run, one fails to start, or host memory runs low; then every one must answer
 * `hull exec ID true`. All are deleted after.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hull, hullDetached } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';

export interface DensityFigures {
  limit: number;
  started: number;
  /** Why starting stopped before the limit, if it did. */
  stoppedBecause?: string;
  answered: number;
  availableMiB: { before: number; after: number };
  /** The slowest start, in ms: the host's load shows here first. */
  slowestStartMs: number;
}

/** Starting stops while this much host memory is still available, so the host stays usable. */
const RESERVE_MIB = 2048;

async function availableMiB(): Promise<number> {
  const meminfo = await readFile('/proc/meminfo', 'utf8');
  return Math.round(Number(/^MemAvailable:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) / 1024);
}

/** Runs `fn` on every item, `width` at a time. */
async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

export async function measureDensity(scratch: string, limit = 100): Promise<DensityFigures> {
  const root = join(scratch, 'density', 'root');
  const bundle = join(scratch, 'density', 'bundle');
  await mkdir(bundle, { recursive: true });
  await makeBusyboxBundle(bundle, ['sleep', '100000']);
  const env = { HULL_TEMPLATE: 'on' };
  const ids: string[] = [];
  const before = await availableMiB();
  let stoppedBecause: string | undefined;
  let slowestStartMs = 0;
  try {
    while (ids.length < limit) {
      if ((await availableMiB()) < RESERVE_MIB) {
        stoppedBecause = `less than ${RESERVE_MIB} MiB of host memory left`;
        break;
      }
      const id = `dense-${ids.length}`;
      const started = performance.now();
      const r = await hullDetached(root, ['--bundle', bundle, id], env);
      slowestStartMs = Math.max(slowestStartMs, performance.now() - started);
      if (r.code !== 0) {
        stoppedBecause = `${id} did not start: ${r.stderr.trim().split('\n').pop()}`;
        await hull(['--root', root, 'delete', '--force', id]);
        break;
      }
      ids.push(id);
      process.stderr.write(ids.length % 10 ? '.' : String(ids.length));
    }
    process.stderr.write('\n');
    const after = await availableMiB();
    let answered = 0;
    await inBatches(ids, 4, async (id) => {
      const r = await hull(['--root', root, 'exec', id, 'true']);
      if (r.code === 0) answered++;
    });
    return {
      limit,
      started: ids.length,
      stoppedBecause,
      answered,
      availableMiB: { before, after },
      slowestStartMs: Math.round(slowestStartMs),
    };
  } finally {
    await inBatches(ids, 8, async (id) => {
      await hull(['--root', root, 'delete', '--force', id]);
    });
  }
}
