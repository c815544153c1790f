import { closeSync, readdirSync, readFileSync } from 'node:fs';

const O_CLOEXEC = 0o2000000;
/** Set by spawnDetachedHelper in its child: fd 3 is the channel to the parent, kept. */
export const HELPER_CHANNEL_ENV = 'HULL_HELPER_CHANNEL';

/**
 * Closes every descriptor above stdio this process inherited without close-on-exec: Node and
 * libuv open all of theirs close-on-exec, so such a descriptor is the caller's (conmon hands
 * its runtime a pipe of podman's as fd 251), and every process hull starts would otherwise
 * inherit it and hold it for as long as it lives. A helper keeps fd 3, its parent's channel;
 * the mark is dropped so its own children do not keep it too. Call first thing in main.
 */
export function closeInheritedDescriptors(): void {
  const keep = process.env[HELPER_CHANNEL_ENV] === '3' ? 3 : undefined;
  delete process.env[HELPER_CHANNEL_ENV];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return;
  }
  for (const name of names) {
    const fd = Number(name);
    if (fd <= 2 || fd === keep) continue;
    let info: string;
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
    } catch {
      continue;
    }
    const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1];
    if (flags === undefined || (Number.parseInt(flags, 8) & O_CLOEXEC) !== 0) continue;
    try {
      closeSync(fd);
    } catch {}
  }
}
