import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { installRoot } from '../../paths.js';
import { runningUids } from '../../sys/processes.js';

/**
 * What a VMM keeps of root: enough for the 9p share to act for the guest's root on the
 * container's files (owners, modes, other users' files), and nothing else. No CAP_FSETID,
 * CAP_MKNOD or CAP_SETFCAP, so no setuid file, device node or file capability results from a
 * guest's request; hull-jail's seccomp filter refuses the setuid and setgid bits outright.
 */
const VMM_CAPABILITY_BITS = { chown: 0, dac_override: 1, fowner: 3 } as const;
export const VMM_CAPABILITIES = Object.keys(VMM_CAPABILITY_BITS) as (keyof typeof VMM_CAPABILITY_BITS)[];

/** The capability bits of VMM_CAPABILITIES, as /proc/<pid>/status shows them (CapEff). */
export const VMM_CAPABILITY_MASK = Object.values(VMM_CAPABILITY_BITS).reduce(
  (mask, bit) => mask | (1n << BigInt(bit)),
  0n,
);

/**
 * VMM users come from a range no distribution gives out (systemd's dynamic users stop at
 * 65519, subordinate ranges for rootless containers start at 100000 and rarely pass 2^31).
 * Each VM gets its own, so one escaped VMM cannot signal or trace another.
 */
export const VMM_UID_BASE = 3_000_000_000;
const VMM_UID_SPAN = 100_000_000;

export interface JailPlan {
  /** A directory for the new root: the jail mounts a tmpfs on it, in its own namespace. */
  root: string;
  uid: number;
  readOnly: string[];
  /** Symlinks made again, as symlinks (/lib -> usr/lib). */
  symlinks: string[];
  readWrite: string[];
  /** The sandbox share: read-only at its top, its container mounts as they are. */
  share?: string;
  devices: string[];
  cgroupProcs: string[];
  /** Tap devices to make in `netns`, each left open on its fd for the VMM. */
  taps?: { netns: string; devices: { name: string; fd: number }[] };
}

export function hullJailPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-jail');
}

/** The argv of hull-jail running `program` confined as `plan` says. */
export function jailArgs(plan: JailPlan, program: string, args: readonly string[]): string[] {
  return [
    ...plan.cgroupProcs.flatMap((file) => ['--cgroup', file]),
    ...(plan.taps?.devices.length
      ? [
          '--netns',
          plan.taps.netns,
          ...plan.taps.devices.flatMap((tap) => ['--tap', `${tap.name}=${tap.fd}`]),
        ]
      : []),
    '--root',
    plan.root,
    ...plan.symlinks.flatMap((path) => ['--link', path]),
    ...plan.readOnly.flatMap((path) => ['--ro', path]),
    ...plan.readWrite.flatMap((path) => ['--rw', path]),
    ...(plan.share ? ['--share', plan.share] : []),
    ...plan.devices.flatMap((path) => ['--dev', path]),
    '--proc',
    '--uid',
    String(plan.uid),
    '--gid',
    String(plan.uid),
    ...VMM_CAPABILITIES.flatMap((cap) => ['--keep-cap', cap]),
    '--',
    program,
    ...args,
  ];
}

/**
 * A user for one VM's VMM: derived from its name, moved on past any user a running process
 * already has, so two VMs running side by side do not share one.
 */
export async function vmmUserFor(name: string): Promise<number> {
  const hash = createHash('sha256').update(name).digest().readUInt32BE(0);
  const taken = await runningUids();
  let offset = hash % VMM_UID_SPAN;
  while (taken.has(VMM_UID_BASE + offset)) offset = (offset + 1) % VMM_UID_SPAN;
  return VMM_UID_BASE + offset;
}
