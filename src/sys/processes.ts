import { readdir, readFile } from 'node:fs/promises';

/**
 * Processes (other than this one) whose command line mentions `marker`, such as a sandbox's
 * directory: how a VM or server is found once the process that started it is gone.
 */
export async function processesMentioning(
  marker: string,
  match: (cmdline: string) => boolean = () => true,
): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker) && match(cmdline)) pids.push(Number(entry));
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
