import { type BootMark, bootMarks, type GuestStepsPhase, type HostMarkName } from './boot-marks.js';

/** One phase of a sandbox's life: where it ran, and when (host milliseconds). */
export interface TracePhase {
  name: string;
  where: 'host' | 'guest';
  startMs: number;
  endMs: number;
}

/** Chrome/Perfetto trace-event JSON: complete events ("X") in microseconds. */
export interface TraceFile {
  traceEvents: {
    name: string;
    cat: 'host' | 'guest';
    ph: 'X';
    ts: number;
    dur: number;
    pid: number;
    tid: number;
  }[];
  displayTimeUnit: 'ms';
  otherData: { tool: string; startedAt: string };
}

/**
 * Records the marks published on the boot channel from `startMs` (the process's start) and
 * turns them into consecutive phases: what the host did, then the guest's own phases mapped
 * to the host clock (its boot at the moment the agent answered minus its uptime then), then
 * the host again. Phases whose marks are missing (a run without a guest report) are left out.
 */
export class BootTraceRecorder {
  private readonly host = new Map<HostMarkName, number>();
  private guest: Extract<BootMark, { kind: 'guest' }> | undefined;
  private readonly steps = new Map<GuestStepsPhase, Extract<BootMark, { kind: 'guest-steps' }>>();
  private readonly listener = (message: unknown) => {
    const mark = message as BootMark;
    // The first time counts: in a pod, the sandbox's container is created and started first.
    if (mark.kind === 'host') {
      if (!this.host.has(mark.name)) this.host.set(mark.name, mark.atMs);
    } else if (mark.kind === 'guest-steps') {
      if (!this.steps.has(mark.phase)) this.steps.set(mark.phase, mark);
    } else this.guest = mark;
  };

  constructor(private readonly startMs: number) {
    bootMarks.subscribe(this.listener);
  }

  stop(): void {
    bootMarks.unsubscribe(this.listener);
  }

  /** When a host mark was reached, if it was. */
  markedAt(name: HostMarkName): number | undefined {
    return this.host.get(name);
  }

  phases(endMs: number): TracePhase[] {
    const at = (name: HostMarkName) => this.host.get(name);
    const points: [string, 'host' | 'guest', number | undefined][] = [
      ['hull start-up', 'host', this.startMs],
      ['QEMU start', 'host', at('vmm-spawn')],
      // A copy of a running VM: loaded, its boot id made new (hypervisor/qemu/boot-id.ts), then run.
      ['copy resumes', 'host', at('boot-id-forgotten')],
      // A clone does not boot: its agent answers once QEMU has loaded and resumed its template.
      ['clone wakes', 'host', at('vm-resumed')],
    ];
    if (this.guest) {
      const bootMs = this.guest.answeredAtMs - this.guest.uptimeSeconds * 1000;
      const g = (phase: string) => {
        const s = this.guest!.phases[phase];
        return s === undefined ? undefined : bootMs + s * 1000;
      };
      points.push(
        ['guest kernel', 'guest', bootMs],
        ['initramfs', 'guest', g('initramfs')],
        ['root switch', 'guest', g('root-mounted')],
        ['hull-init', 'guest', g('hull-init')],
        ['agent start (Node)', 'guest', g('agent-start')],
        ['agent reached', 'host', g('agent-ready')],
      );
    }
    points.push(
      ['sandbox set-up', 'host', at('agent-answered')],
      ['container create', 'host', at('sandbox-ready')],
      ['container start', 'host', at('container-created')],
      ['container run', 'host', at('container-started')],
      ['teardown', 'host', at('container-exited')],
      ['end', 'host', endMs],
    );
    const known = points.filter((p): p is [string, 'host' | 'guest', number] => p[2] !== undefined);
    const phases: TracePhase[] = [];
    for (let i = 0; i + 1 < known.length; i++) {
      const [name, where, startMs] = known[i]!;
      // A guest time read a moment early (its clock against the host's) never runs backwards.
      const endMsOfPhase = Math.max(known[i + 1]![2], startMs);
      phases.push({ name, where, startMs, endMs: endMsOfPhase });
      known[i + 1]![2] = endMsOfPhase;
    }
    return phases;
  }

  /**
   * The guest's steps inside the host's container create and start (crun create, mounting the
   * share, ...): each placed back to back so the last ends when the answer arrived (the answer's
   * transit is not counted, so they may sit a moment late). Drawn under the phase they explain.
   */
  guestSteps(): TracePhase[] {
    const out: TracePhase[] = [];
    for (const mark of this.steps.values()) {
      let endMs = mark.answeredAtMs;
      const placed: TracePhase[] = [];
      for (const step of [...mark.steps].reverse()) {
        const startMs = endMs - Math.max(0, step.ms);
        placed.unshift({ name: `${mark.phase}: ${step.name}`, where: 'guest', startMs, endMs });
        endMs = startMs;
      }
      out.push(...placed);
    }
    return out.sort((a, b) => a.startMs - b.startMs);
  }
}

/** A sandbox's boot phases as kept beside its state (`boot.json`), for metrics. */
export interface BootRecord {
  phases: { name: string; where: 'host' | 'guest'; seconds: number }[];
}

export const BOOT_RECORD_FILE = 'boot.json';

/** The phases up to `sandboxReadyMs` (the boot, without the container's own life). */
export function bootRecord(phases: TracePhase[], sandboxReadyMs: number): BootRecord {
  return {
    phases: phases
      .filter((p) => p.endMs <= sandboxReadyMs && p.endMs > p.startMs)
      .map((p) => ({ name: p.name, where: p.where, seconds: (p.endMs - p.startMs) / 1000 })),
  };
}

/** Thread of the guest's steps: apart from the consecutive phases (threads 1 and 2). */
export const GUEST_STEPS_TID = 3;

export function traceFile(
  phases: TracePhase[],
  tool = 'hull run --trace',
  steps: TracePhase[] = [],
): TraceFile {
  const origin = phases[0]?.startMs ?? 0;
  return {
    traceEvents: [...phases, ...steps].map((p, i) => {
      // Both ends rounded the same way, so one phase ends exactly where the next begins.
      const ts = Math.round((p.startMs - origin) * 1000);
      const end = Math.round((p.endMs - origin) * 1000);
      return {
        name: p.name,
        cat: p.where,
        ph: 'X',
        ts,
        dur: end - ts,
        pid: 1,
        tid: i >= phases.length ? GUEST_STEPS_TID : p.where === 'host' ? 1 : 2,
      };
    }),
    displayTimeUnit: 'ms',
    otherData: { tool, startedAt: new Date(origin).toISOString() },
  };
}
