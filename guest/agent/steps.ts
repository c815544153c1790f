/** One step of a request's work, as the host's trace shows it (GuestStep in agent.proto). */
export interface GuestStep {
  name: string;
  ms: number;
}

/**
 * Times the steps of one request back to back by the monotonic clock, so the host's trace
 * can show where a container's create and start spend their time inside the guest.
 */
export class StepClock {
  readonly steps: GuestStep[] = [];
  private last = performance.now();

  /** Ends the current step under `name` and begins the next. */
  lap(name: string): void {
    const now = performance.now();
    this.steps.push({ name, ms: now - this.last });
    this.last = now;
  }
}
