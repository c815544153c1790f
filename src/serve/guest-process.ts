import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type { Process } from '../oci/spec.js';
import { AttachedProcess, type HostStdio, inputOf, type ProcessExit } from '../sandbox/attached-process.js';
import { containerDir } from '../sandbox/container-id.js';
import { MonitorClient } from '../sandbox/monitor-client.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';

/** A process exec'd in a sandbox's container, its stdio relayed to host streams. */
export interface GuestProcess {
  execId: string;
  pid: number;
  exit: Promise<ProcessExit>;
  kill(signalNumber: number): Promise<void>;
  /** Resizes the process's terminal (one started with `terminal: true`). */
  resize(rows: number, columns: number): Promise<void>;
  /** Stops following the process (its connection closes); it runs on, its output kept in the guest. */
  detach(): void;
}

/**
 * Runs `spec` beside the sandbox's init through its monitor (the sandbox core's connection to
 * the guest agent): one connection per process, closed when it has exited and its output is
 * drained. No CLI process per command.
 */
export async function execInSandbox(
  settings: RuntimeSettings,
  sandboxId: string,
  spec: Process,
  stdio: HostStdio,
  signal: AbortSignal,
): Promise<GuestProcess> {
  const monitor = await MonitorClient.connect(containerDir(settings, sandboxId), sandboxId, signal);
  const ref = { containerId: sandboxId, execId: randomUUID() };
  let pid: number;
  try {
    // Without crun when the guest can (guest/agent/direct-exec.ts): a command's whole cost
    // under software emulation was mostly crun's own start.
    ({ pid } = await monitor.agent.execProcess(ref, spec, inputOf(stdio), signal, { direct: true }));
  } catch (err) {
    monitor.close();
    throw err;
  }
  return follow(monitor, ref, pid, stdio);
}

/**
 * Follows a process exec'd earlier (by a server since restarted): the guest agent keeps each
 * exec's unread output and its exit until asked, so reading resumes where the last reader
 * stopped. ERR_STATE when the sandbox's monitor is gone.
 */
export async function attachInSandbox(
  settings: RuntimeSettings,
  sandboxId: string,
  exec: { execId: string; pid: number },
  stdio: HostStdio,
  signal: AbortSignal,
): Promise<GuestProcess> {
  const monitor = await MonitorClient.connect(containerDir(settings, sandboxId), sandboxId, signal);
  return follow(monitor, { containerId: sandboxId, execId: exec.execId }, exec.pid, stdio);
}

function follow(
  monitor: MonitorClient,
  ref: { containerId: string; execId: string },
  pid: number,
  stdio: HostStdio,
): GuestProcess {
  const attached = new AttachedProcess(monitor.agent, ref, stdio, new Promise(() => {}));
  const exit = attached.exit.finally(() => monitor.close());
  return {
    execId: ref.execId,
    pid,
    exit,
    kill: (signalNumber) =>
      monitor.agent.signalProcess(ref, signalNumber, { signal: AbortSignal.timeout(5000) }).catch(() => {}),
    resize: (rows, columns) =>
      monitor.agent.resizeTerminal(ref, rows, columns, AbortSignal.timeout(5000)).catch(() => {}),
    detach: () => monitor.close(),
  };
}

/** A sink keeping at most `limit` bytes of what is written to it (a guest's stderr, for messages). */
export class BoundedText extends Writable {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly limit = 64 * 1024) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    if (this.size < this.limit) {
      const kept = chunk.subarray(0, this.limit - this.size);
      this.chunks.push(kept);
      this.size += kept.length;
    }
    callback();
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
