import type { VmEndNotice } from '../hypervisor/hypervisor.js';
import { raceSignal } from '../util/deadline.js';

/** What can tell, sooner or later, that a VM ended by itself. */
export interface LossSigns {
  /** Why the VM ended by itself once its exit is seen, or undefined if hull ended it. */
  exitVerdict: Promise<string | undefined>;
  /** What the VMM said of the end before its exit (Vm.endAnnounced). */
  announced: Promise<VmEndNotice>;
  /** Words a loss the VMM announced as the guest's, before its exit is seen. */
  describeAnnounced: (notice: VmEndNotice) => Promise<string>;
}

/**
 * Why a VM ended by itself, from the first sign that decides it, or undefined if none does by
 * `signal` (or its exit shows hull ended it). A VMM that says the guest ended the VM decides
 * at once: such an end is never hull's, whatever follows (qemu/vm-end.ts endedByStop), and
 * QEMU says it before it closes the agent's channel, while its exit may be seen seconds later.
 * A VMM that says the host ended it (a `quit`, a signal) does not: hull's stop and anyone
 * else's look alike there, and the exit decides.
 */
export function firstLossReason(signs: LossSigns, signal: AbortSignal): Promise<string | undefined> {
  const byGuest = signs.announced.then((notice) =>
    notice.byGuest ? signs.describeAnnounced(notice) : new Promise<never>(() => {}),
  );
  return raceSignal(Promise.race([signs.exitVerdict, byGuest]), signal).catch(() => undefined);
}
