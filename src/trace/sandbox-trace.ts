import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setting } from '../config/settings.js';
import { hostNowMs } from './boot-marks.js';
import { type BootRecord, BootTraceRecorder, bootRecord, traceFile } from './boot-trace.js';

/**
 * The trace of the one sandbox a process owns (a container's monitor, `hull run`, a pod's
 * shim), from the process's start to the sandbox's end: its boot record for `hull metrics`,
 * and, when the trace setting names a directory, the whole trace written there at the end as
 * `<id>-<start time>.json` (Chrome trace-event JSON, for `hull trace FILE --svg`).
 */
export class SandboxTrace {
  private readonly recorder: BootTraceRecorder;
  /** Read first, so a bad setting fails the sandbox before anything is made. */
  private readonly dir = setting('traceDir');
  private finished = false;

  constructor() {
    this.recorder = new BootTraceRecorder(performance.timeOrigin);
  }

  /** The boot's phases up to the sandbox being ready; undefined before it is. */
  bootRecord(): BootRecord | undefined {
    const ready = this.recorder.markedAt('sandbox-ready');
    return ready === undefined ? undefined : bootRecord(this.recorder.phases(hostNowMs()), ready);
  }

  /** Stops recording and writes the trace if the setting asks for it; never fails the caller. */
  async finish(id: string, tool: string): Promise<string | undefined> {
    if (this.finished) return undefined;
    this.finished = true;
    this.recorder.stop();
    const { dir } = this;
    if (!dir) return undefined;
    try {
      const trace = traceFile(this.recorder.phases(hostNowMs()), tool, this.recorder.guestSteps());
      const stamp = trace.otherData.startedAt.replace(/[:.]/g, '-');
      const path = join(dir, `${id}-${stamp}.json`);
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await writeFile(path, `${JSON.stringify(trace, null, 1)}\n`, { mode: 0o644 });
      return path;
    } catch {
      return undefined;
    }
  }
}
