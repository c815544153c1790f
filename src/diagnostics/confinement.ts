import { readFile, readlink } from 'node:fs/promises';
import { SHARE_SERVER_CAPABILITIES, SHARE_SERVER_CAPABILITY_MASK } from '../hypervisor/jail/jail.js';
import { shareServerOf } from '../hypervisor/jail/share-server.js';
import { statusField } from '../sys/processes.js';

export interface Confinement {
  /** Each property of the VMM's confinement, as `hull check` prints it. */
  facts: string[];
  /** What is missing of it; empty when the VMM is confined as hull means it to be. */
  missing: string[];
}

/**
 * Reads how a running VMM and its share server are confined, from /proc: what a user would
 * check by hand.
 */
export async function vmmConfinement(pid: number): Promise<Confinement> {
  const facts: string[] = [];
  const missing: string[] = [];
  const fact = (holds: boolean, yes: string, no: string) => (holds ? facts : missing).push(holds ? yes : no);

  const vmm = await processFacts(pid);
  fact(vmm.uid !== '0' && vmm.uid !== '', `user ${vmm.uid}`, 'runs as root');
  fact(vmm.capEff === 0n, 'no capabilities', `capabilities ${vmm.capEff.toString(16)}`);
  fact(vmm.noNewPrivs, 'no_new_privs', 'no_new_privs unset');
  fact(vmm.seccompFilters !== undefined, `seccomp (${vmm.seccompFilters} filters)`, 'no seccomp filter');
  const ownNs = (await readlink(`/proc/${pid}/ns/mnt`)) !== (await readlink('/proc/self/ns/mnt'));
  fact(ownNs, 'its own mount namespace', "the host's mount namespace");
  const cgroup = (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
    .split('\n')
    .map((line) => line.split(':').slice(2).join(':'))
    .find((path) => path.startsWith('/hull/'));
  fact(cgroup !== undefined, `cgroup ${cgroup}`, 'no cgroup of its own');

  const server = await shareServerOf(pid);
  // A VM whose container's root is on disks has no share device, and so no share server.
  const shareDevice = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).includes(
    'virtio-9p-device',
  );
  if (!server && !shareDevice) {
    facts.push('no share device (the root is on disks), no share server');
    return { facts, missing };
  }
  if (!server) {
    missing.push('no share server: QEMU would reach the share itself');
    return { facts, missing };
  }
  const served = await processFacts(server);
  const serverConfined =
    served.uid === vmm.uid &&
    served.capEff === SHARE_SERVER_CAPABILITY_MASK &&
    served.noNewPrivs &&
    served.seccompFilters !== undefined;
  fact(
    serverConfined,
    `the share through hull-share-server (same user, capabilities ${SHARE_SERVER_CAPABILITIES.join(', ')} only, no_new_privs, seccomp)`,
    `hull-share-server is not confined (user ${served.uid}, capabilities ${served.capEff.toString(16)})`,
  );
  return { facts, missing };
}

interface ProcessFacts {
  uid: string;
  capEff: bigint;
  noNewPrivs: boolean;
  /** How many seccomp filters it runs under; undefined without seccomp. */
  seccompFilters: string | undefined;
}

async function processFacts(pid: number): Promise<ProcessFacts> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return {
    uid: statusField(status, 'Uid').split(/\s+/)[0] ?? '',
    capEff: BigInt(`0x${statusField(status, 'CapEff') || '0'}`),
    noNewPrivs: statusField(status, 'NoNewPrivs') === '1',
    seccompFilters:
      statusField(status, 'Seccomp') === '2' ? statusField(status, 'Seccomp_filters') : undefined,
  };
}
