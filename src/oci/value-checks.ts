import { HullError } from '../errors.js';
import { clip } from './shape.js';
import type { Spec } from './spec.js';

/**
 * Values of a config.json that must map to something in the kernel, checked on the host as
 * runc checks them before it starts anything: resource limits, sysctls, device nodes and the
 * device cgroup. Their types and ranges were checked first (spec-schema.ts). Left to the executor in the guest, a bad value would boot a VM
 * and then fail with the executor's words; here it is one line naming the field, with no VM.
 */

/** The limits getrlimit(2) knows; the runtime-spec takes them by these names. */
const RLIMIT_TYPES = new Set([
  'RLIMIT_AS',
  'RLIMIT_CORE',
  'RLIMIT_CPU',
  'RLIMIT_DATA',
  'RLIMIT_FSIZE',
  'RLIMIT_LOCKS',
  'RLIMIT_MEMLOCK',
  'RLIMIT_MSGQUEUE',
  'RLIMIT_NICE',
  'RLIMIT_NOFILE',
  'RLIMIT_NPROC',
  'RLIMIT_RSS',
  'RLIMIT_RTPRIO',
  'RLIMIT_RTTIME',
  'RLIMIT_SIGPENDING',
  'RLIMIT_STACK',
]);

/** Sysctls that live in the IPC namespace (with every `fs.mqueue.*`), as runc lists them. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax',
  'kernel.msgmnb',
  'kernel.msgmni',
  'kernel.sem',
  'kernel.shmall',
  'kernel.shmmax',
  'kernel.shmmni',
  'kernel.shm_rmid_forced',
]);

const DEVICE_NODE_TYPES = new Set(['c', 'b', 'u', 'p']);
const CGROUP_DEVICE_TYPES = new Set(['a', 'c', 'b']);

function refuse(configPath: string, what: string): never {
  throw new HullError('ERR_CONFIG', `${configPath}: ${what}`);
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

export function checkRlimits(spec: Spec, configPath: string): void {
  const seen = new Set<string>();
  for (const [index, limit] of (spec.process?.rlimits ?? []).entries()) {
    const field = `process.rlimits[${index}]`;
    if (!RLIMIT_TYPES.has(limit?.type)) {
      refuse(
        configPath,
        `${field}.type ${JSON.stringify(limit?.type)} is not a resource limit: use a name from getrlimit(2) such as RLIMIT_NOFILE`,
      );
    }
    if (seen.has(limit.type)) refuse(configPath, `process.rlimits lists ${limit.type} twice: keep one entry`);
    seen.add(limit.type);
    if (limit.soft > limit.hard) {
      refuse(
        configPath,
        `${field} (${limit.type}) has soft ${limit.soft} above hard ${limit.hard}: the kernel refuses it; lower soft or raise hard`,
      );
    }
  }
}

/**
 * As runc: a sysctl must live in a namespace the container has of its own (IPC, network, or
 * UTS for kernel.domainname), since anything else would change the kernel every other process
 * shares. `vmNamespaces` are types the container shares with its VM instead (the annotation
 * in checks.ts): the VM's namespace is no other tenant's, so its sysctls are allowed too.
 */
export function checkSysctls(spec: Spec, configPath: string, vmNamespaces: ReadonlySet<string>): void {
  const sysctls = spec.linux?.sysctl;
  if (sysctls === undefined) return;
  const own = new Set((spec.linux?.namespaces ?? []).map((ns) => ns.type));
  const has = (type: string) => own.has(type) || vmNamespaces.has(type);
  for (const name of Object.keys(sysctls as Record<string, string>)) {
    const field = `linux.sysctl "${name}"`;
    let needs: string | undefined;
    if (IPC_SYSCTLS.has(name) || name.startsWith('fs.mqueue.')) needs = 'ipc';
    else if (name.startsWith('net.')) needs = 'network';
    else if (name === 'kernel.domainname') needs = 'uts';
    else if (name === 'kernel.hostname') {
      refuse(configPath, `${field} conflicts with the "hostname" field: set the hostname there`);
    } else {
      refuse(
        configPath,
        `${field} is not in a separate kernel namespace: only IPC (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), network (net.*) and kernel.domainname sysctls can be set for a container`,
      );
    }
    if (!has(needs)) {
      refuse(
        configPath,
        `${field} needs the container's own ${needs} namespace: add one to linux.namespaces`,
      );
    }
  }
}

/** linux.devices (the nodes made in the container) and linux.resources.devices (the cgroup). */
export function checkDevices(spec: Spec, configPath: string): void {
  const devices = (spec.linux?.devices ?? []) as Record<string, unknown>[];
  for (const [index, device] of devices.entries()) {
    const field = `linux.devices[${index}]`;
    const path = clip(device.path as string);
    if ((device.path as string).split('/').includes('..')) {
      refuse(configPath, `${field}.path "${path}" must be an absolute path without ".."`);
    }
    if (!DEVICE_NODE_TYPES.has(device.type as string)) {
      refuse(
        configPath,
        `${field} (${path}) has type ${JSON.stringify(device.type)}: use c, b, u (character, block, unbuffered) or p (FIFO)`,
      );
    }
    if (device.type !== 'p' && (!isCount(device.major) || !isCount(device.minor))) {
      refuse(configPath, `${field} (${path}) needs major and minor numbers for type ${device.type}`);
    }
  }
  const rules = (spec.linux?.resources as { devices?: Record<string, unknown>[] } | undefined)?.devices ?? [];
  for (const [index, rule] of rules.entries()) {
    const field = `linux.resources.devices[${index}]`;
    if (rule.type !== undefined && !CGROUP_DEVICE_TYPES.has(rule.type as string)) {
      refuse(configPath, `${field}.type ${JSON.stringify(rule.type)} must be a (all), c or b`);
    }
    if (rule.access !== undefined && !/^[rwm]{0,3}$/.test(String(rule.access))) {
      refuse(configPath, `${field}.access ${JSON.stringify(rule.access)} must be made of r, w and m`);
    }
  }
}
