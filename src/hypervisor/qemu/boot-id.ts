import { open } from 'node:fs/promises';
import { HullError, messageOf } from '../../errors.js';
import { RAM_BACKEND_ID } from './command-line.js';
import type { QmpClient } from './qmp.js';

/**
 * A copy of a saved running VM (a fork, a sandbox started from a snapshot) must not keep its
 * parent's boot id. Linux makes /proc/sys/kernel/random/boot_id at its first read, while byte 8
 * of its uuid is 0, and never again; the guest agent tells where that uuid is in guest-physical
 * memory (guest/agent/boot-id-address.ts), the host keeps it with the saved state, and once a
 * copy's VMM has loaded the state, before the VM runs, that one byte is zeroed in the copy's
 * RAM: its kernel makes a new boot id at its next read, drawn from the RNG CreateSandbox has
 * reseeded by then. A sandbox resumed from a pause is the same sandbox and keeps its own.
 *
 * The address comes from the guest, which may be hostile: it is bounded where the host takes
 * it (hypervisor/boot-id-address.ts), QEMU's gpa2hva maps it only if it is in guest RAM (answer
 * parsed strictly and checked to be the RAM backend's), and the one byte written is in that
 * QEMU's mapping of this guest's own RAM.
 */

/** The byte of the uuid the kernel tests: 0 means "not made yet". */
const UNREAD_BYTE = 8n;
/**
 * QEMU's mappings are under 2^47 (the kernel maps above it only when asked, even with 5-level
 * paging); beyond 2^53 a file position is no longer an exact number (Node ignores bigint ones).
 */
const MAX_HOST_VIRTUAL = 2n ** 53n;

/**
 * The host address QEMU's `gpa2hva` says guest address `gpa` is at, refusing any answer but
 * "Host virtual address for 0x… (ram) is 0x…" for that very address in the RAM backend
 * (QEMU 7.2 monitor/misc.c hmp_gpa2hva; its errors are text too: "No memory is mapped…",
 * "Memory at address … is not RAM").
 */
export function parseGpa2hva(reply: unknown, gpa: bigint): bigint {
  const refuse = (why: string) =>
    new HullError('ERR_BOOT_ID', `QEMU did not map the boot id's address 0x${gpa.toString(16)}: ${why}`);
  if (typeof reply !== 'string' || reply.length > 256) throw refuse('an unexpected answer');
  const found =
    /^Host virtual address for 0x([0-9a-f]{1,16}) \(([^()\r\n]{1,64})\) is 0x([0-9a-f]{1,16})\r?\n?$/.exec(
      reply,
    );
  if (!found) throw refuse(JSON.stringify(reply.trim().slice(0, 120)));
  if (BigInt(`0x${found[1]}`) !== gpa) throw refuse('the answer is for another address');
  if (found[2] !== RAM_BACKEND_ID) throw refuse(`it is in ${found[2]}, not the guest's RAM`);
  const hva = BigInt(`0x${found[3]}`);
  if (hva === 0n || hva >= MAX_HOST_VIRTUAL) throw refuse('the host address is out of range');
  return hva;
}

/** The paused VM's VMM: hull's own child process. */
export interface VmmProcess {
  pid: number;
  /** Whether it has exited (Node reaps a child and says so in the same step). */
  exited(): boolean;
}

/**
 * Zeroes byte 8 of the boot id at guest-physical `address` in the RAM of the paused VM whose
 * VMM is `vmm`. Root writes it through /proc/PID/mem; the VMM's jail is not loosened for it.
 * The descriptor holds the memory of the process it was opened on; a child still not exited
 * once it is open had not been reaped before, so that process was the VMM, not a later one
 * given its pid.
 */
export async function forgetBootId(
  qmp: QmpClient,
  vmm: VmmProcess,
  address: bigint,
  signal: AbortSignal,
): Promise<void> {
  const gpa = address + UNREAD_BYTE;
  const reply = await qmp
    .execute<string>('human-monitor-command', { 'command-line': `gpa2hva 0x${gpa.toString(16)}` }, signal)
    .catch((err: unknown) => {
      throw new HullError('ERR_BOOT_ID', `asking QEMU where the boot id is failed: ${messageOf(err)}`, {
        cause: err,
      });
    });
  const hva = parseGpa2hva(reply, gpa);
  signal.throwIfAborted();
  try {
    if (vmm.exited()) throw new Error('QEMU has exited');
    const memory = await open(`/proc/${vmm.pid}/mem`, 'r+');
    try {
      if (vmm.exited()) throw new Error('QEMU has exited');
      const { bytesWritten } = await memory.write(Buffer.of(0), 0, 1, Number(hva));
      if (bytesWritten !== 1) throw new Error('nothing written');
    } finally {
      await memory.close();
    }
  } catch (err) {
    throw new HullError('ERR_BOOT_ID', `making the copy's boot id new failed: ${messageOf(err)}`, {
      cause: err,
    });
  }
}
