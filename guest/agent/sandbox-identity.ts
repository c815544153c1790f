import { writeFileSync } from 'node:fs';
import type { CreateSandboxRequest } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { guestLogger } from './log.js';
import { syscalls } from './syscalls.js';

const log = guestLogger('identity');

/** A clock this far from the host's is set; closer, it is left alone (no needless jump). */
const CLOCK_TOLERANCE_MS = 50;

/**
 * Makes this VM its own sandbox before anything runs in it. A VM cloned from a template wakes
 * with the template's RNG state and the wall clock of the moment the template was saved, so
 * the host's random bytes are credited to the kernel and its generator reseeded first (the
 * boot id, made on its first read, then differs too), then the clock is set from the host's,
 * and the hostname given.
 */
export function takeSandboxIdentity(req: CreateSandboxRequest): void {
  if (req.entropy.length) syscalls().addEntropy(Buffer.from(req.entropy));
  const hostTimeMs = Number(req.hostTimeMs);
  if (hostTimeMs && Math.abs(Date.now() - hostTimeMs) > CLOCK_TOLERANCE_MS) {
    try {
      syscalls().setRealtime(hostTimeMs);
    } catch (err) {
      log.warn('cannot set the guest clock', { error: (err as Error).message });
    }
  }
  if (req.hostname) writeFileSync('/proc/sys/kernel/hostname', req.hostname);
}
