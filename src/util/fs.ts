import { access } from 'node:fs/promises';

/** Whether `path` names something (a link, by what it leads to). */
export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
