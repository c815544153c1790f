import { CAPABILITY_NAMES } from '../../src/oci/capabilities.js';
import type { Process, Spec } from '../../src/oci/spec.js';

/** Kernel numbers of the capabilities: CAPABILITY_NAMES lists them in that order, 0 to 40. */
const CAPABILITY_NUMBERS = new Map([...CAPABILITY_NAMES].map((name, number) => [name, number]));

/** getrlimit(2)'s resource numbers (the same on x86_64 and arm64). */
const RLIMIT_NUMBERS = new Map([
  ['RLIMIT_CPU', 0],
  ['RLIMIT_FSIZE', 1],
  ['RLIMIT_DATA', 2],
  ['RLIMIT_STACK', 3],
  ['RLIMIT_CORE', 4],
  ['RLIMIT_RSS', 5],
  ['RLIMIT_NPROC', 6],
  ['RLIMIT_NOFILE', 7],
  ['RLIMIT_MEMLOCK', 8],
  ['RLIMIT_AS', 9],
  ['RLIMIT_LOCKS', 10],
  ['RLIMIT_SIGPENDING', 11],
  ['RLIMIT_MSGQUEUE', 12],
  ['RLIMIT_NICE', 13],
  ['RLIMIT_RTPRIO', 14],
  ['RLIMIT_RTTIME', 15],
]);

/** The process settings hull-spawn applies; a process with any other is left to crun. */
const SPAWNED_PROCESS_KEYS = new Set([
  'terminal',
  'consoleSize',
  'user',
  'args',
  'env',
  'cwd',
  'capabilities',
  'rlimits',
  'noNewPrivileges',
]);
const SPAWNED_USER_KEYS = new Set(['uid', 'gid', 'additionalGids', 'umask']);
/** Namespaces hull-spawn joins; one of another kind (user, time) needs crun. */
const JOINABLE_NAMESPACES = new Set(['pid', 'network', 'ipc', 'uts', 'mount', 'cgroup']);
/** hull-spawn's own bounds (MAX_GROUPS, MAX_RLIMITS). */
const MAX_GROUPS = 64;
const MAX_RLIMITS = 16;
const MAX_ID = 2 ** 32 - 2;

export interface DirectExecPlacement {
  /** The container's init in the guest, whose namespaces the process joins. */
  initPid: number;
  /** The container's cgroup directory in the guest. */
  cgroupDir: string;
}

const isId = (n: unknown): n is number =>
  Number.isInteger(n) && (n as number) >= 0 && (n as number) <= MAX_ID;

function capabilityMask(names: string[] | undefined): string | undefined {
  let mask = 0n;
  for (const name of names ?? []) {
    const number = CAPABILITY_NUMBERS.get(name);
    if (number === undefined) return undefined;
    mask |= 1n << BigInt(number);
  }
  return mask.toString(16);
}

function rlimitValue(n: number): string | undefined {
  // The runtime-spec's -1 (and 2^64-1, which JSON cannot hold exactly) is RLIM_INFINITY.
  if (n === -1 || n >= 2 ** 64 - 1) return '-';
  return Number.isSafeInteger(n) && n >= 0 ? String(n) : undefined;
}

/**
 * hull-spawn's arguments for running `process` in `container` as `crun exec --detach` would,
 * or undefined when the process or the container asks for something hull-spawn does not apply
 * (then crun runs it): a terminal, a seccomp filter, a user or time namespace, AppArmor or
 * SELinux labels, a personality, scheduling or I/O priority settings, an OOM score. The process
 * spec came from the host, checked there; anything out of hull-spawn's bounds goes to crun too.
 */
export function directExecArgs(
  container: Spec,
  process: Process,
  placement: DirectExecPlacement,
): string[] | undefined {
  if (process.terminal) return undefined;
  if (Object.keys(process).some((key) => !SPAWNED_PROCESS_KEYS.has(key))) return undefined;
  const user = process.user;
  if (!user || Object.keys(user).some((key) => !SPAWNED_USER_KEYS.has(key))) return undefined;
  const linux = container.linux ?? {};
  if (linux.seccomp || linux.personality) return undefined;
  if ((linux.namespaces ?? []).some((ns) => !JOINABLE_NAMESPACES.has(ns.type))) return undefined;
  const argv = process.args ?? [];
  if (!argv.length || !argv[0] || argv.some((arg) => typeof arg !== 'string' || arg.includes('\0')))
    return undefined;
  if (!isId(user.uid) || !isId(user.gid)) return undefined;
  const groups = user.additionalGids ?? [];
  if (groups.length > MAX_GROUPS || !groups.every(isId)) return undefined;
  const umask = user.umask ?? 0o022;
  if (!Number.isInteger(umask) || umask < 0 || umask > 0o777) return undefined;
  if (!process.cwd?.startsWith('/') || process.cwd.includes('\0')) return undefined;
  const caps = process.capabilities ?? {};
  const masks = {
    B: capabilityMask(caps.bounding),
    E: capabilityMask(caps.effective),
    P: capabilityMask(caps.permitted),
    I: capabilityMask(caps.inheritable),
    A: capabilityMask(caps.ambient),
  };
  if (Object.values(masks).some((mask) => mask === undefined)) return undefined;
  const rlimits = process.rlimits ?? [];
  if (rlimits.length > MAX_RLIMITS) return undefined;
  const limitArgs: string[] = [];
  for (const limit of rlimits) {
    const resource = RLIMIT_NUMBERS.get(limit.type);
    const soft = rlimitValue(limit.soft);
    const hard = rlimitValue(limit.hard);
    if (resource === undefined || soft === undefined || hard === undefined) return undefined;
    limitArgs.push('-r', `${resource},${soft},${hard}`);
  }
  return [
    ...['-p', String(placement.initPid), '-c', placement.cgroupDir],
    ...['-u', String(user.uid), '-g', String(user.gid), '-G', groups.join(',')],
    ...['-m', umask.toString(8), '-d', process.cwd],
    ...Object.entries(masks).flatMap(([flag, mask]) => [`-${flag}`, mask!]),
    ...(process.noNewPrivileges ? ['-n'] : []),
    ...limitArgs,
    '--',
    ...argv,
  ];
}
