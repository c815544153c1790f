import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stateDir } from '../paths.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { withLock } from '../sys/lock.js';

/**
 * Failed command-line verbs, counted by error code for `hull metrics`. A failed command must
 * leave nothing in the runtime root, so the counts live in the state directory
 * (`metrics/failures.json`), one table per runtime root. The file stays small: codes are a
 * fixed list, and only the roots that failed most recently are kept.
 */
interface FailureTable {
  roots: Record<string, { updated: string; counts: Record<string, number> }>;
}

const MAX_ROOTS = 32;

function metricsDir(): string {
  return join(stateDir(), 'metrics');
}

async function readTable(): Promise<FailureTable> {
  try {
    const parsed = JSON.parse(await readFile(join(metricsDir(), 'failures.json'), 'utf8')) as FailureTable;
    return typeof parsed?.roots === 'object' && parsed.roots !== null ? parsed : { roots: {} };
  } catch {
    return { roots: {} };
  }
}

/** Adds one failure with `code` under `root`. Best effort: counting never fails a command. */
export async function countFailure(root: string, code: string, signal: AbortSignal): Promise<void> {
  const dir = metricsDir();
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await withLock(dir, signal, async () => {
      const table = await readTable();
      const key = resolve(root);
      const entry = table.roots[key] ?? { updated: '', counts: {} };
      entry.counts[code] = (entry.counts[code] ?? 0) + 1;
      entry.updated = new Date().toISOString();
      table.roots[key] = entry;
      const kept = Object.entries(table.roots)
        .sort(([, a], [, b]) => b.updated.localeCompare(a.updated))
        .slice(0, MAX_ROOTS);
      const text = `${JSON.stringify({ roots: Object.fromEntries(kept) })}\n`;
      await writeFileAtomic(join(dir, 'failures.json'), text, { mode: 0o600 });
    });
  } catch {
    // The state directory may be read-only or missing for this user; the command's own error matters.
  }
}

/** The counts of failures under `root`, by code. */
export async function failureCounts(root: string): Promise<Record<string, number>> {
  return (await readTable()).roots[resolve(root)]?.counts ?? {};
}
