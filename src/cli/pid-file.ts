import { rename, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';

/** Pid files are written whole or not at all: callers may read them at any moment. */
export async function writePidFile(path: string, pid: number): Promise<void> {
  const target = resolve(path);
  await writeFile(`${target}.tmp`, String(pid));
  await rename(`${target}.tmp`, target);
}
