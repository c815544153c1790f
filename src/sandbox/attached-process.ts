import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { AgentClient, ProcessInput, ProcessRef } from '../agent/client.js';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import { readsNothing } from '../sys/stdio.js';
import { settledWithin } from '../util/deadline.js';
import { type RelayEnd, relayInput, relayOutput } from './stdio-relay.js';

/** Exit status reported when the VM ends under a running process (as if SIGKILLed). */
export const VM_LOST_STATUS = 128 + constants.signals.SIGKILL;
/** Once the VM is gone nothing more can come: how long its last output may still arrive. */
const LOST_VM_DRAIN_MS = 3000;

/** Host ends of a guest process's stdio; a missing one is not relayed. */
export interface HostStdio {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
}

/**
 * This process's stdio as a container's: stdin only when it can carry input, so a container
 * whose client gave /dev/null reads /dev/null in the guest too, as under runc.
 */
export function ownStdio(): HostStdio {
  return {
    stdin: readsNothing(0) ? undefined : process.stdin,
    stdout: process.stdout,
    stderr: process.stderr,
  };
}

/** What the guest is told about a process's input: relayed from `stdio`, or /dev/null there. */
export function inputOf(stdio: HostStdio): ProcessInput {
  return { stdin: stdio.stdin !== undefined };
}

export interface ProcessExit {
  /** Exit code, or 128 + signal number (VM_LOST_STATUS when the VM went away). */
  status: number;
  at: Date;
  /** The VM ended (or its agent went away) before the process's own exit was seen. */
  vmLost: boolean;
  /** Why some of its output could not be copied (the VM still ran): a front door says so. */
  outputLost?: string;
}

/**
 * A guest process (a container's init or an exec) with host streams attached: its output is
 * copied to them and its input from them until it exits. Every front door (the OCI command's
 * monitor and exec, the containerd shim) follows a process through this one class, so a
 * process ends the same way everywhere: exit seen (or the VM lost), input stopped, output
 * drained, then `exit` settles.
 */
export class AttachedProcess {
  readonly exit: Promise<ProcessExit>;
  private readonly relays = new AbortController();
  private readonly outputs: Promise<RelayEnd>[];
  private readonly stopInput: () => void;
  private markExited!: () => void;

  constructor(
    private readonly agent: AgentClient,
    readonly ref: ProcessRef,
    stdio: HostStdio,
    vmExited: Promise<unknown>,
    /**
     * Runs once the process's exit is seen, before its output is drained: what must go with
     * it (the processes it left in a shared PID namespace) goes here, so their copies of its
     * output close and the drain ends at end of stream.
     */
    private readonly onExitSeen?: () => Promise<void>,
  ) {
    const { signal } = this.relays;
    const exited = new Promise<void>((resolve) => {
      this.markExited = resolve;
    });
    this.outputs = [];
    for (const stream of ['stdout', 'stderr'] as const) {
      const sink = stdio[stream];
      if (sink) this.outputs.push(relayOutput(agent, ref, stream, sink, { signal, exited }));
    }
    for (const output of this.outputs) output.catch(() => {});
    this.stopInput = stdio.stdin ? relayInput(agent, ref, stdio.stdin, signal) : () => {};
    this.exit = this.watch(vmExited);
  }

  /** Ends the process's stdin (the caller's input is done). */
  async closeStdin(signal: AbortSignal): Promise<void> {
    this.stopInput();
    await this.agent.closeStdin(this.ref, signal);
  }

  private async watch(vmExited: Promise<unknown>): Promise<ProcessExit> {
    let status = VM_LOST_STATUS;
    let vmLost = true;
    try {
      const exited = await Promise.race([
        this.agent.waitProcess(this.ref, this.relays.signal),
        vmExited.then(() => undefined),
      ]);
      if (exited !== undefined) {
        status = exited;
        vmLost = false;
      }
    } catch {}
    const at = new Date();
    this.stopInput();
    if (!vmLost) await this.onExitSeen?.().catch(() => {});
    this.markExited();
    // Output is copied to its end however slowly the host reads it (the guest waits for the
    // reader); only a VM that is gone, which has no more to give, bounds the wait.
    const outputs = Promise.allSettled(this.outputs);
    const ends = vmLost ? await settledWithin(outputs, LOST_VM_DRAIN_MS) : await outputs;
    if (ends?.some((end) => end.status === 'fulfilled' && end.value === 'idle')) {
      logger('stdio').info(
        { ref: this.ref },
        'the process exited but its output stayed open (a process it left holds it); stopped copying',
      );
    }
    this.relays.abort();
    const failed = vmLost ? undefined : ends?.find((end) => end.status === 'rejected');
    if (failed) {
      const outputLost = messageOf(failed.reason);
      logger('stdio').error({ ref: this.ref, err: outputLost }, 'output could not be copied to its end');
      return { status, at, vmLost, outputLost };
    }
    return { status, at, vmLost };
  }
}
