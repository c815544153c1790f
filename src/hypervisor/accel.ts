import { existsSync } from 'node:fs';
import { access, constants, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setting } from '../config/settings.js';
import { HullError } from '../errors.js';
import { hostBootId } from '../sys/host-boot-id.js';
import { type Arch, archProfile, hostArch } from './arch.js';
import type { Accel } from './hypervisor.js';

/**
 * Which accelerator VMs get. KVM only counts for a guest of the host's own architecture,
 * where the host's KVM module is loaded (x86: a hardware vendor module, kvm_intel or kvm_amd;
 * arm64: kvm, usually built in) and a probe boot finishes: some x86 hosts expose /dev/kvm
 * from a paravirtual nested hypervisor (kvm_pvm) on which a stock guest kernel hangs, so
 * "/dev/kvm exists" or QEMU's accel=kvm:tcg fallback is not enough. Otherwise TCG.
 * The answer is cached per host boot and kernel image.
 */
export interface AccelDecision {
  accel: Accel;
  reason: string;
}

export interface AccelProbe {
  /** Boots the guest kernel under KVM to a trivial init; resolves true if it finished in time. */
  bootsUnderKvm(): Promise<boolean>;
  cacheFile: string;
  /** Identifies the kernel being probed; a new kernel is probed again. */
  kernelId: string;
  /** The guest's architecture; the host's when not given. */
  arch?: Arch;
}

/** Why KVM cannot run a `guest` VM on this `host`, or undefined when it may (a probe decides). */
export async function kvmPrerequisites(
  sysModule = '/sys/module',
  devKvm = '/dev/kvm',
  arches: { guest: Arch; host: Arch } = { guest: hostArch(), host: hostArch() },
): Promise<string | undefined> {
  if (arches.guest !== arches.host) {
    return `an ${arches.guest} guest on an ${arches.host} host is emulated`;
  }
  const modules = archProfile(arches.host).kvmModules;
  if (!modules.some((m) => existsSync(`${sysModule}/${m}`))) {
    const other = existsSync(`${sysModule}/kvm_pvm`) ? ' (only kvm_pvm, which needs PVM guest kernels)' : '';
    return `no ${modules.join(' or ')} module is loaded${other}`;
  }
  try {
    await access(devKvm, constants.R_OK | constants.W_OK);
  } catch {
    return `${devKvm} is not accessible`;
  }
  return undefined;
}

/**
 * Decides the accelerator. `onNotice` is called with a one-line notice when the decision is
 * made afresh and is TCG, so the user learns once why guests are slow, not at every run.
 */
export async function decideAccel(
  probe: AccelProbe,
  onNotice: (line: string) => void,
): Promise<AccelDecision> {
  const host = hostArch();
  const guest = probe.arch ?? host;
  const forced = setting('accel');
  if (forced === 'kvm' && guest !== host) {
    throw new HullError(
      'ERR_CONFIG',
      `HULL_ACCEL=kvm cannot run an ${guest} guest on an ${host} host: set HULL_ACCEL=tcg or auto`,
    );
  }
  if (forced === 'kvm' || forced === 'tcg') return { accel: forced, reason: 'set by HULL_ACCEL' };
  const key = `${await hostBootId().catch(() => 'unknown')} ${probe.kernelId}`;
  try {
    const cached = JSON.parse(await readFile(probe.cacheFile, 'utf8')) as AccelDecision & { key: string };
    if (cached.key === key) return { accel: cached.accel, reason: cached.reason };
  } catch {}
  let decision: AccelDecision;
  const missing = await kvmPrerequisites(undefined, undefined, { guest, host });
  if (missing) decision = { accel: 'tcg', reason: missing };
  else if (await probe.bootsUnderKvm()) decision = { accel: 'kvm', reason: 'KVM probe boot succeeded' };
  else decision = { accel: 'tcg', reason: 'a probe boot under KVM did not finish' };
  if (decision.accel === 'tcg') {
    onNotice(`hull: notice: using TCG software emulation, guests run slower: ${decision.reason}`);
  }
  await mkdir(dirname(probe.cacheFile), { recursive: true });
  await writeFile(probe.cacheFile, JSON.stringify({ ...decision, key }));
  return decision;
}
