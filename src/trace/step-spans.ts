import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostNowMs } from './boot-marks.js';
import { type TracePhase, traceFile } from './boot-trace.js';

/**
 * The host steps of one request that does several things in turn (`hull serve` making a
 * sandbox: image, network, disks, VM), timed as spans: logged with the request, and written
 * as a Chrome trace-event file when the trace setting names a directory, beside the trace the
 * sandbox's own monitor writes of its VM, so a create's whole waterfall can be read.
 */
export class StepSpans {
  private readonly spans: TracePhase[] = [];
  private readonly startMs = hostNowMs();

  /** Runs `act` as the span `name`; a step that fails is kept too, ending when it failed. */
  async step<T>(name: string, act: () => Promise<T>): Promise<T> {
    const startMs = hostNowMs();
    try {
      return await act();
    } finally {
      this.spans.push({ name, where: 'host', startMs, endMs: hostNowMs() });
    }
  }

  /** The same spans, each named with `prefix` first (one of several steps run side by side). */
  prefixed(prefix: string): Pick<StepSpans, 'step'> {
    return { step: (name, act) => this.step(`${prefix}${name}`, act) };
  }

  /** A span that began earlier and ends now (a wait whose start the caller noted with `now`). */
  endSpan(name: string, startMs: number): void {
    this.spans.push({ name, where: 'host', startMs, endMs: hostNowMs() });
  }

  /** Each step's milliseconds, in the order they began, and the whole since this was made. */
  summary(): { steps: Record<string, number>; totalMs: number } {
    const steps: Record<string, number> = {};
    for (const span of [...this.spans].sort((a, b) => a.startMs - b.startMs)) {
      steps[span.name] = Math.round(span.endMs - span.startMs);
    }
    return { steps, totalMs: Math.round(hostNowMs() - this.startMs) };
  }

  /** Writes the spans as `<dir>/<name>-<start time>.json`; never fails the caller. */
  async write(dir: string, name: string, tool: string): Promise<string | undefined> {
    if (!dir) return undefined;
    try {
      const spans = [...this.spans].sort((a, b) => a.startMs - b.startMs);
      const whole: TracePhase = { name: tool, where: 'host', startMs: this.startMs, endMs: hostNowMs() };
      const trace = traceFile([whole], tool, spans);
      const stamp = trace.otherData.startedAt.replace(/[:.]/g, '-');
      const path = join(dir, `${name}-${stamp}.json`);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await writeFile(path, `${JSON.stringify(trace, null, 1)}\n`, { mode: 0o644 });
      return path;
    } catch {
      return undefined;
    }
  }
}
