import { readdir, readFile, rm, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/*
 * serve keeps each sandbox and each snapshot as a directory named by its ID under
 * `<root>/@serve/<kind>/`, holding its JSON record, written last: a directory without a
 * record is one whose making was cut short.
 */

/**
 * The record in each directory of `kindDir` whose name matches `id`; a directory without a
 * readable one is listed as `incomplete`. Other names are not serve's and are passed over.
 */
export async function readRecordDirs<T>(
  kindDir: string,
  id: RegExp,
  recordFile: string,
): Promise<{ records: T[]; incomplete: string[] }> {
  const records: T[] = [];
  const incomplete: string[] = [];
  for (const name of await readdir(kindDir).catch(() => [] as string[])) {
    if (!id.test(name)) continue;
    try {
      records.push(JSON.parse(await readFile(join(kindDir, name, recordFile), 'utf8')) as T);
    } catch {
      incomplete.push(name);
    }
  }
  return { records, incomplete };
}

/**
 * Removes a sandbox's or snapshot's directory. The parents go with the last one: a root with
 * nothing of serve left holds nothing of it.
 */
export async function removeRecordDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  const kindDir = dirname(dir);
  for (const parent of [kindDir, dirname(kindDir)]) {
    await rmdir(parent).catch(() => {});
  }
}
