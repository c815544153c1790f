import type { VmExit } from '../hypervisor/hypervisor.js';

/**
 * Tells whether a sandbox's VM ended by itself (a guest kernel's panic, QEMU killed, its share
 * server lost) or because hull tore it down, whichever of its signs comes first: the agent's
 * channel closing, QEMU's exit being seen, or a teardown being asked (the monitor tearing
 * down once its container's process is gone, a forced delete, a failed start's clean-up).
 *
 * The VMM's own account of its end decides when it has one (VmExit.byStop): a guest that
 * panicked is lost even when a teardown was asked before its exit was seen, since QEMU's exit
 * is told only after its cgroup is cleaned up, a while after its channels close. Without one,
 * the VM ended by itself if its end showed (its channel closed, or its exit) before any
 * teardown was asked: hull closes that channel only in a teardown.
 */
export class VmEndWitness {
  private teardownAsked = false;
  private endSeenFirst = false;
  private verdict: boolean | undefined;

  /** Hull began to stop the VM (Sandbox.destroy, a forced stop). */
  teardown(): void {
    this.teardownAsked = true;
  }

  /** The agent's channel to the guest closed. */
  channelClosed(): void {
    if (!this.teardownAsked) this.endSeenFirst = true;
  }

  /** QEMU's exit was seen; from now on the verdict is known. */
  exited(exit: VmExit): void {
    this.channelClosed();
    this.verdict =
      exit.byStop !== undefined
        ? !exit.byStop
        : this.endSeenFirst || exit.shareServerLost !== undefined || exit.oomKilled === true;
  }

  /** Whether the VM ended by itself; false while its exit has not been seen. */
  get endedByItself(): boolean {
    return this.verdict === true;
  }
}
