import { readdir, readFile } from 'node:fs/promises';

/** The pids /proc lists now. */
async function runningPids(): Promise<number[]> {
  return (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
}

/** One field of a /proc/<pid>/status text (`Uid`, `CapEff`, `Seccomp`…), '' when absent or empty. */
export function statusField(status: string, name: string): string {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

/** Real uids of the running processes. */
export async function runningUids(): Promise<Set<number>> {
  const uids = new Set<number>();
  for (const pid of await runningPids()) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const uid = statusField(status, 'Uid').split(/\s+/)[0];
    if (uid) uids.add(Number(uid));
  }
  return uids;
}

/**
 * Processes (other than this one) whose command line mentions `marker`, such as a sandbox's
 * directory: how a VM or server is found once the process that started it is gone.
 */
export async function processesMentioning(
  marker: string,
  match: (cmdline: string) => boolean = () => true,
): Promise<number[]> {
  const pids: number[] = [];
  for (const pid of await runningPids()) {
    if (pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker) && match(cmdline)) pids.push(pid);
  }
  return pids;
}

/** SIGKILLs every process that mentions `marker`, and waits (up to 5 s) until they are gone. */
export async function killProcessesMentioning(marker: string): Promise<void> {
  const pids = await processesMentioning(marker);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && (await processesMentioning(marker)).some((p) => pids.includes(p))) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
