import { rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/**
 * Pid files are written whole or not at all: callers may read them at any moment. Not
 * sys/atomic-file.ts: the temporary name is fixed (FILE.tmp) and written through, so that a
 * test can hold this very write, as a loaded host may (tests/fixtures/subreaper-run.py makes
 * it a FIFO), and check that conmon still waits for the process whose pid it names.
 */
export async function writePidFile(path: string, pid: number): Promise<void> {
  const target = resolve(path);
  await writeFile(`${target}.tmp`, String(pid));
  await rename(`${target}.tmp`, target);
}
