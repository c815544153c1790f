import { HullError } from '../errors.js';
import type { Process } from '../oci/spec.js';
import { AttachedProcess, type ProcessExit } from '../sandbox/attached-process.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { OpenedIo, TaskIo } from './task-io.js';

export type ProcessStatus = 'created' | 'running' | 'stopped';

/**
 * One process of a task as containerd sees it: the container's init (execId '') or an exec.
 * It records what containerd asks State and Wait for; the guest side is an AttachedProcess.
 */
export class TaskProcess {
  status: ProcessStatus = 'created';
  exitInfo: ProcessExit | undefined;
  /** Set while a Start is in flight, so the exit event never overtakes the start event. */
  starting: Promise<void> | undefined;
  private attached: AttachedProcess | undefined;
  private io: OpenedIo | undefined;
  private settle!: (exit: ProcessExit) => void;
  /** Settles once the process has exited and its output is drained. */
  readonly exited = new Promise<ProcessExit>((resolve) => {
    this.settle = resolve;
  });

  constructor(
    readonly containerId: string,
    readonly execId: string,
    readonly taskIo: TaskIo,
    /** An exec's process settings; the init's come from the bundle. */
    readonly spec?: Process,
  ) {}

  /** The name containerd gives this process in TaskExit: the exec id, or the container id. */
  get eventId(): string {
    return this.execId || this.containerId;
  }

  get ref() {
    return { containerId: this.containerId, execId: this.execId };
  }

  /**
   * Follows the guest process with its stdio attached; `onExitSeen` runs as soon as it has
   * exited, before its output is drained, and `onExit` once it has ended.
   */
  attach(
    sandbox: Sandbox,
    io: OpenedIo,
    onExit: (exit: ProcessExit) => Promise<void>,
    onExitSeen?: () => Promise<void>,
  ): void {
    this.io = io;
    this.attached = new AttachedProcess(sandbox.agent, this.ref, io.stdio, sandbox.vm.exited, onExitSeen);
    void this.attached.exit.then(async (exit) => {
      await this.starting?.catch(() => {});
      // All of its output is in the FIFOs by now; a client that closes them on the exit (ctr
      // before containerd 1.6.22) would lose what it has not read yet.
      await io.outputRead();
      this.status = 'stopped';
      this.exitInfo = exit;
      io.close();
      await onExit(exit).catch(() => {});
      this.settle(exit);
    });
  }

  /** CloseIO: the client's input is complete; the process sees end of file after it. */
  async closeStdin(signal: AbortSignal): Promise<void> {
    if (!this.attached) throw new HullError('ERR_STATE', `process ${this.eventId} has not started`);
    if (this.io?.endInput) this.io.endInput();
    else await this.attached.closeStdin(signal);
  }

  /** Releases the host ends of its stdio (the process is being deleted). */
  release(): void {
    this.io?.close();
  }
}
