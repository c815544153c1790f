import { readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { identityOf, isAlive, type ProcessIdentity, signalIfAlive } from './process-identity.js';

/** The pids /proc lists now. */
async function runningPids(): Promise<number[]> {
  return (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
}

/** One field of a /proc/<pid>/status text (`Uid`, `CapEff`, `Seccomp`…), '' when absent or empty. */
export function statusField(status: string, name: string): string {
  return new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim() ?? '';
}

/** The pid of a process's parent now, if it is still there. */
export async function parentOf(pid: number): Promise<number | undefined> {
  const ppid = statusField(await readFile(`/proc/${pid}/status`, 'utf8').catch(() => ''), 'PPid');
  return ppid === '' ? undefined : Number(ppid);
}

/** Real uids of the running processes. */
export async function runningUids(): Promise<Set<number>> {
  // Read synchronously, a batch at a time with a turn of the event loop between batches: one
  // async readFile per pid (~140 here) cost 8-15 ms of a `hull run`'s start in the threadpool's
  // round trips, the same reads synchronously under 2 ms; the batches keep `hull serve`'s loop
  // free on a host with thousands of processes (a batch of 128 takes ~2 ms here).
  const uids = new Set<number>();
  const pids = await runningPids();
  for (let start = 0; start < pids.length; start += UID_READ_BATCH) {
    if (start > 0) await new Promise((resolve) => setImmediate(resolve));
    for (const pid of pids.slice(start, start + UID_READ_BATCH)) {
      const uid = statusField(readStatusSync(pid), 'Uid').split(/\s+/)[0];
      if (uid) uids.add(Number(uid));
    }
  }
  return uids;
}

/** How many /proc/<pid>/status files runningUids reads between two turns of the event loop. */
const UID_READ_BATCH = 128;

/** A process's /proc/<pid>/status, '' once it is gone. */
function readStatusSync(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Processes (other than this one) whose command line mentions `marker`, such as a sandbox's
 * directory: how a VM or server is found once the process that started it is gone.
 */
export async function processesMentioning(
  marker: string,
  match: (cmdline: string) => boolean = () => true,
): Promise<number[]> {
  const found: number[] = [];
  for (const pid of await runningPids()) {
    if (pid === process.pid) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(marker) && match(cmdline)) found.push(pid);
  }
  return found;
}

/**
 * SIGKILLs every process that mentions `marker`, each as the process found (its identity taken
 * when its command line was read), and waits (up to 5 s) until they are gone.
 */
export async function killProcessesMentioning(marker: string): Promise<void> {
  const found = (await processesMentioning(marker))
    .map(identityOf)
    .filter((identity): identity is ProcessIdentity => identity !== undefined);
  for (const identity of found) signalIfAlive(identity, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && found.some(isAlive)) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What a process costs the host: its proportional memory (PSS) and its CPU time so far. */
export interface ProcessCost {
  pssBytes: number;
  cpuSeconds: number;
}

/** A process's cost from /proc (smaps_rollup, stat); undefined once it is gone. */
export async function processCost(pid: number): Promise<ProcessCost | undefined> {
  try {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces: utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return {
      pssBytes: Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024,
      cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
    };
  } catch {
    return undefined;
  }
}

/** USER_HZ: the unit of /proc/<pid>/stat times, 100 on every Linux architecture hull runs on. */
const CLOCK_TICKS_PER_SECOND = 100;

/** A process's PSS by kind of mapping, in bytes (see memoryByMapping). */
export interface MemoryByMapping {
  total: number;
  /**
   * Anonymous mappings that are executable: in QEMU under TCG, the translation cache (the
   * guest's code translated for the host), which KVM does not have.
   */
  anonymousExecutable: number;
  /** Other anonymous memory: heaps, guest RAM, stacks. */
  anonymous: number;
  /** Mapped files: the programs and libraries, and guest RAM or images backed by files. */
  file: number;
}

/** A process's PSS split by kind of mapping, from /proc/<pid>/smaps; undefined once it is gone. */
export async function memoryByMapping(pid: number): Promise<MemoryByMapping | undefined> {
  let smaps: string;
  try {
    smaps = await readFile(`/proc/${pid}/smaps`, 'utf8');
  } catch {
    return undefined;
  }
  const memory: MemoryByMapping = { total: 0, anonymousExecutable: 0, anonymous: 0, file: 0 };
  let kind: 'anonymousExecutable' | 'anonymous' | 'file' = 'anonymous';
  for (const line of smaps.split('\n')) {
    // A mapping's header: "start-end perms offset dev inode [path]".
    const header = /^[0-9a-f]+-[0-9a-f]+ ([rwxps-]{4}) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header) {
      const [, perms, inode, path] = header;
      // memfd and shared anonymous memory have an inode but are anonymous all the same.
      const anonymous = inode === '0' || path!.startsWith('/memfd:') || path!.startsWith('/dev/zero');
      kind = !anonymous ? 'file' : perms!.includes('x') ? 'anonymousExecutable' : 'anonymous';
      continue;
    }
    const pss = /^Pss:\s+(\d+) kB$/.exec(line);
    if (pss) {
      memory[kind] += Number(pss[1]) * 1024;
      memory.total += Number(pss[1]) * 1024;
    }
  }
  return memory;
}
