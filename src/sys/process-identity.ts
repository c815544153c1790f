import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * A process as hull records it: its pid and its start time (field 22 of /proc/<pid>/stat, in
 * clock ticks since boot). A pid alone names whatever process has it now: once the recorded
 * one is gone and the pid is reused (pid_max is 32768 on many hosts), signalling it would hit
 * an unrelated process. The pair names one process for the life of the boot.
 */
export interface ProcessIdentity {
  pid: number;
  /**
   * Undefined in a record an older hull wrote (no start time): such a record is trusted as
   * before, by pid alone, since there is no telling a reused pid from the process it named.
   */
  startTime?: string;
}

/** What hull reads of /proc/<pid>/stat: the state letter (field 3) and the start time (22). */
export interface ProcStat {
  state: string;
  startTime: string;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may itself hold
 * spaces and parentheses: the fields after the last ')' are plain.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).split(' ');
  const state = fields[0];
  const startTime = fields[19];
  if (!state || !startTime || !/^\d+$/.test(startTime)) return undefined;
  return { state, startTime };
}

/**
 * The start time of `pid` if it is a live process: undefined once it is gone or a zombie
 * (dead, only waiting to be reaped: kill(pid, 0) still succeeds on it).
 */
export function liveStartTime(pid: number): string | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const text = readProcStat(pid);
  if (text === undefined) return undefined;
  const stat = parseProcStat(text);
  if (!stat || stat.state === 'Z' || stat.state === 'X' || stat.state === 'x') return undefined;
  return stat.startTime;
}

/**
 * /proc/<pid>/stat is read into this one buffer. Watchers call liveStartTime every second for
 * as long as a sandbox lives (the share server's, see jail/share-server.ts), and readFileSync
 * would give each call a new 8 KiB buffer of its own (the file's size reads as 0), held in
 * malloc's memory until V8's next collection, which an idle process seldom has: an idle
 * monitor grew by megabytes between two.
 */
const statBuffer = Buffer.alloc(4096);

function readProcStat(pid: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(`/proc/${pid}/stat`, 'r');
  } catch {
    return undefined;
  }
  try {
    // procfs gives the whole line in one read when the buffer holds it (a line is well under
    // 4 KiB: its fields are numbers and a command name of at most 64 bytes).
    const length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
    return length < statBuffer.length ? statBuffer.toString('latin1', 0, length) : readFileSync(fd, 'latin1');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The identity of a live process now, to record; undefined if there is none with that pid. */
export function identityOf(pid: number): ProcessIdentity | undefined {
  const startTime = liveStartTime(pid);
  return startTime === undefined ? undefined : { pid, startTime };
}

/** Whether the recorded process is still alive: same pid, same start time, not a zombie. */
export function isAlive(identity: ProcessIdentity): boolean {
  const startTime = liveStartTime(identity.pid);
  if (startTime === undefined) return false;
  return identity.startTime === undefined || identity.startTime === startTime;
}

/**
 * Sends `signal` to the recorded process only if it is still that process; returns whether
 * it was sent. (Between the check and the kill the pid cannot be reused by anything but a
 * process started in that instant after the recorded one exited and was reaped: the window
 * is the one every pid-based tool has, without the minutes-long one of a stale record.)
 */
export function signalIfAlive(identity: ProcessIdentity, signal: NodeJS.Signals | number): boolean {
  if (!isAlive(identity)) return false;
  try {
    process.kill(identity.pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** A record as text, "PID START" (or "PID" for a process whose start time is unknown). */
export function formatIdentity(identity: ProcessIdentity): string {
  return identity.startTime === undefined ? String(identity.pid) : `${identity.pid} ${identity.startTime}`;
}

/** Reads formatIdentity's text back; a bare pid (an older record) has no start time. */
export function parseIdentity(text: string): ProcessIdentity | undefined {
  const match = /^\s*(\d+)(?:\s+(\d+))?\s*$/.exec(text);
  if (!match) return undefined;
  const pid = Number(match[1]);
  if (!(pid > 0)) return undefined;
  return match[2] === undefined ? { pid } : { pid, startTime: match[2] };
}
