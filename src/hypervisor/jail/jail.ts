import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { installRoot } from '../../paths.js';
import { runningUids } from '../../sys/processes.js';

/**
 * What the share server keeps of root (hull-jail gives it these, and the VMM none): enough to
 * act for the guest's root on the container's files (owners, modes, other users' files). No
 * CAP_FSETID, CAP_MKNOD or CAP_SETFCAP, so no setuid file, device node or file capability
 * results from a guest's request.
 */
const SHARE_SERVER_CAPABILITY_BITS = { chown: 0, dac_override: 1, fowner: 3 } as const;
export const SHARE_SERVER_CAPABILITIES = Object.keys(
  SHARE_SERVER_CAPABILITY_BITS,
) as (keyof typeof SHARE_SERVER_CAPABILITY_BITS)[];

/** The capability bits of SHARE_SERVER_CAPABILITIES, as /proc/<pid>/status shows them (CapEff). */
export const SHARE_SERVER_CAPABILITY_MASK = Object.values(SHARE_SERVER_CAPABILITY_BITS).reduce(
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
  /**
   * The sandbox share, which the VMM reaches only through hull-share-server: read-only at its
   * top (the container mounts below it as they are) unless `writableTop`. None for a VM that
   * has no share device (its container's root is on disks): no share server runs for it.
   */
  share?: { path: string; writableTop: boolean };
  devices: string[];
  cgroupProcs: string[];
  /**
   * Tap devices to make in `netns`, each left open on its fd for the VMM. `plain`: without
   * virtio-net headers, so that the VM's saved state never asks for them (a VM that can be
   * saved and forked; its forks' template has cards without a tap, see qemu.ts jailPlan).
   */
  taps?: { netns: string; plain: boolean; devices: { name: string; fd: number }[] };
  /**
   * Whether the VMM may have transparent huge pages. QEMU asks for them (MADV_HUGEPAGE) on
   * every RAM block and on TCG's translation buffer; a block it writes a single page of, such
   * as microvm's 2 MiB ACPI tables block, then holds 2 MiB. They pay only for guest RAM of the
   * VMM's own under KVM (fewer nested page walks).
   */
  hugePages: boolean;
  /**
   * A directory the VMM's dynamic loader looks in first (read-only in its root too): hull's
   * stand-ins for libraries QEMU links and hull never uses (vmmLibraryDir).
   */
  libraryPath?: string;
}

export function hullJailPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-jail');
}

/**
 * Libraries QEMU takes in place of the system's (vmm-libs/): each a stand-in for one QEMU links
 * but never calls for hull, smaller to load. Now libcapstone.so.4 (QEMU's disassembler, only
 * for debug logs), whose relocated tables cost each QEMU about 1.4 MiB of private memory.
 */
export function vmmLibraryDir(): string {
  return join(installRoot(), 'dist', 'native', 'vmm-libs');
}

export function shareServerPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-share-server');
}

/** The argv of hull-jail running `program` confined as `plan` says. */
export function jailArgs(plan: JailPlan, program: string, args: readonly string[]): string[] {
  return [
    ...plan.cgroupProcs.flatMap((file) => ['--cgroup', file]),
    ...(plan.taps?.devices.length
      ? [
          '--netns',
          plan.taps.netns,
          ...plan.taps.devices.flatMap((tap) => [
            plan.taps!.plain ? '--plain-tap' : '--tap',
            `${tap.name}=${tap.fd}`,
          ]),
        ]
      : []),
    '--root',
    plan.root,
    ...plan.symlinks.flatMap((path) => ['--link', path]),
    ...[
      ...plan.readOnly,
      ...(plan.libraryPath ? [plan.libraryPath] : []),
      ...(plan.share ? [shareServerPath()] : []),
    ].flatMap((path) => ['--ro', path]),
    ...plan.readWrite.flatMap((path) => ['--rw', path]),
    ...(plan.share
      ? [
          plan.share.writableTop ? '--writable-share' : '--share',
          plan.share.path,
          '--share-server',
          shareServerPath(),
        ]
      : []),
    ...plan.devices.flatMap((path) => ['--dev', path]),
    '--proc',
    ...(plan.hugePages ? [] : ['--no-huge-pages']),
    ...(plan.libraryPath ? ['--library-path', plan.libraryPath] : []),
    '--uid',
    String(plan.uid),
    '--gid',
    String(plan.uid),
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
