import { readFile, readlink } from 'node:fs/promises';
import { VMM_CAPABILITIES, VMM_CAPABILITY_MASK } from '../hypervisor/jail/jail.js';
import { statusField } from '../sys/processes.js';

export interface Confinement {
  /** Each property of the VMM's confinement, as `hull check` prints it. */
  facts: string[];
  /** What is missing of it; empty when the VMM is confined as hull means it to be. */
  missing: string[];
}

/** Reads how a running VMM is confined, from /proc: what a user would check by hand. */
export async function vmmConfinement(pid: number): Promise<Confinement> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const facts: string[] = [];
  const missing: string[] = [];
  const fact = (holds: boolean, yes: string, no: string) => (holds ? facts : missing).push(holds ? yes : no);

  const uid = statusField(status, 'Uid').split(/\s+/)[0] ?? '';
  fact(uid !== '0' && uid !== '', `user ${uid}`, 'runs as root');
  const capEff = BigInt(`0x${statusField(status, 'CapEff') || '0'}`);
  fact(
    capEff === VMM_CAPABILITY_MASK,
    `capabilities ${VMM_CAPABILITIES.join(', ')} only`,
    `capabilities ${capEff.toString(16)}`,
  );
  fact(statusField(status, 'NoNewPrivs') === '1', 'no_new_privs', 'no_new_privs unset');
  fact(
    statusField(status, 'Seccomp') === '2',
    `seccomp (${statusField(status, 'Seccomp_filters')} filters)`,
    'no seccomp filter',
  );
  const ownNs = (await readlink(`/proc/${pid}/ns/mnt`)) !== (await readlink('/proc/self/ns/mnt'));
  fact(ownNs, 'its own mount namespace', "the host's mount namespace");
  const cgroup = (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
    .split('\n')
    .map((line) => line.split(':').slice(2).join(':'))
    .find((path) => path.startsWith('/hull/'));
  fact(cgroup !== undefined, `cgroup ${cgroup}`, 'no cgroup of its own');
  return { facts, missing };
}
