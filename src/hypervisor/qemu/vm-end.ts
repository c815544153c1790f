import type { VmEndNotice, VmExit } from '../hypervisor.js';

/**
 * What a QEMU told, and what hull did, about the end of its VM, gathered while it ran: the
 * exit status alone does not tell a guest kernel's panic (QEMU -no-reboot exits 0) from a
 * `quit` that stop() sent (also 0).
 */
export interface VmEnding {
  /** stop() was called: hull sent `quit`, or was about to. */
  stopAsked: boolean;
  /** stop() killed QEMU (SIGKILL) after `quit` went unanswered. */
  killedByStop: boolean;
  /**
   * QEMU's QMP SHUTDOWN event, sent before it exits: `guest` is true when the guest ended
   * itself ('guest-reset': a panic with panic=-1 or a reboot, 'guest-shutdown', 'guest-panic').
   */
  shutdown?: { guest: boolean; reason: string };
  /** QEMU's QMP GUEST_PANICKED event (a pvpanic device, where the machine has one). */
  guestPanicked?: boolean;
}

/** Reads the events of QEMU's QMP connection that say why it is about to end. */
export function noteShutdownEvent(ending: VmEnding, message: Record<string, unknown>): void {
  if (message.event === 'GUEST_PANICKED') ending.guestPanicked = true;
  if (message.event !== 'SHUTDOWN') return;
  const data = (message.data ?? {}) as { guest?: unknown; reason?: unknown };
  ending.shutdown = {
    guest: data.guest === true,
    reason: typeof data.reason === 'string' ? data.reason.slice(0, 64) : 'unknown',
  };
}

/**
 * What QEMU has said so far of its VM's end (Vm.endAnnounced), or undefined if nothing yet: a
 * panic it saw (GUEST_PANICKED) or its SHUTDOWN, whose `guest` tells who ended the VM.
 */
export function announcedEnd(ending: VmEnding): VmEndNotice | undefined {
  if (ending.guestPanicked) return { byGuest: true, reason: ending.shutdown?.reason ?? 'guest-panic' };
  if (ending.shutdown) return { byGuest: ending.shutdown.guest, reason: ending.shutdown.reason };
  return undefined;
}

/**
 * Whether stop() ended the VM (VmExit.byStop), decided from how QEMU ended, never from which
 * of QEMU's exit and hull's stop was seen first: a guest that panicked a moment before a stop
 * was asked ended by itself. Undefined only when QEMU exited 0 after a stop was asked without
 * saying why (its SHUTDOWN event was not read): the caller then judges by the order it saw.
 */
export function endedByStop(
  exit: Pick<VmExit, 'code' | 'signal' | 'oomKilled' | 'shareServerLost'>,
  ending: VmEnding,
): boolean | undefined {
  if (exit.shareServerLost !== undefined || exit.oomKilled || ending.guestPanicked) return false;
  if (ending.shutdown?.guest) return false;
  if (!ending.stopAsked) return false;
  // Killed: by stop() only if stop() sent the signal; anyone else's is the VM's loss.
  if (exit.signal !== null) return ending.killedByStop && exit.signal === 'SIGKILL';
  // `quit` exits 0: another status is QEMU's own failure.
  if (exit.code !== 0) return false;
  if (ending.shutdown) return ending.shutdown.reason === 'host-qmp-quit';
  return undefined;
}
