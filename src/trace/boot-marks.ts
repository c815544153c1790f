import { channel } from 'node:diagnostics_channel';

/**
 * The moments a sandbox's start-up and end pass through, published on a diagnostics channel
 * by the code that reaches them (sandbox/, cli/), so a trace can be recorded without that
 * code knowing of it: `hull run --trace` subscribes. Times are host wall-clock milliseconds
 * (performance.timeOrigin + performance.now(), sub-millisecond).
 */
export type BootMark =
  | { kind: 'host'; name: HostMarkName; atMs: number }
  | {
      kind: 'guest';
      /** When each guest phase began, in seconds of guest uptime (from the agent). */
      phases: Record<string, number>;
      /** The guest's uptime in its answer, and the host time the answer arrived. */
      uptimeSeconds: number;
      answeredAtMs: number;
    }
  | {
      kind: 'guest-steps';
      /** The host phase the guest's answer ends. */
      phase: GuestStepsPhase;
      /** What the guest did, in order, back to back, ending with its answer. */
      steps: { name: string; ms: number }[];
      answeredAtMs: number;
    };

export type GuestStepsPhase = 'container create' | 'container start';

export type HostMarkName =
  | 'vmm-spawn'
  | 'vm-resumed'
  /** A copy of a saved running VM had its boot id made new (hypervisor/qemu/boot-id.ts). */
  | 'boot-id-forgotten'
  | 'agent-answered'
  | 'sandbox-ready'
  | 'container-created'
  | 'container-started'
  | 'container-exited'
  | 'torn-down';

export const bootMarks = channel('hull:boot');

export function hostNowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function markHost(name: HostMarkName): void {
  if (bootMarks.hasSubscribers)
    bootMarks.publish({ kind: 'host', name, atMs: hostNowMs() } satisfies BootMark);
}

export function markGuest(phases: Record<string, number>, uptimeSeconds: number, answeredAtMs: number): void {
  if (bootMarks.hasSubscribers) {
    bootMarks.publish({ kind: 'guest', phases, uptimeSeconds, answeredAtMs } satisfies BootMark);
  }
}

export function markGuestSteps(
  phase: GuestStepsPhase,
  steps: { name: string; ms: number }[],
  answeredAtMs: number,
): void {
  if (bootMarks.hasSubscribers && steps.length > 0) {
    bootMarks.publish({
      kind: 'guest-steps',
      phase,
      steps: steps.map(({ name, ms }) => ({ name, ms })),
      answeredAtMs,
    } satisfies BootMark);
  }
}
