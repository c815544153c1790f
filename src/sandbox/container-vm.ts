import type { AgentClient } from '../agent/client.js';
import { HullError } from '../errors.js';
import { saveRunningVm } from '../snapshot/saved-vm.js';
import type { SavedStateRecord } from '../snapshot/state-file.js';
import type { Sandbox } from './sandbox.js';

/**
 * What a container's monitor uses of the VM its container runs in: a VM of its own (a lone
 * container, see ownVm), or the VM of its pod, which a pod VM holder owns (pod-member.ts).
 */
export interface ContainerVm {
  /** The guest agent's API. */
  readonly agent: AgentClient;
  /** Settles once the VM can no longer be reached. */
  readonly ended: Promise<unknown>;
  /** The host pid of the VM (QEMU), for the monitor's figures. */
  readonly vmPid: number;
  updateContainer(id: string, resources: unknown, signal: AbortSignal): Promise<void>;
  /** Why the VM ended under its container, if it did; see Sandbox.lossReason. */
  lossReason(signal: AbortSignal): Promise<string | undefined>;
  /** A failed request to the guest, said as the VM's end if that is what it was. */
  explainFailure(err: unknown, what: string): Promise<unknown>;
  /** Ends the container's process now (hull delete --force of a running container). */
  shutdown(): void;
  /** Takes the container out of the VM, and a VM of its own away. Safe to call twice. */
  release(): Promise<void>;
  /**
   * Saves the VM to `dir` and stops it (pause to disk, see snapshot/saved-vm.ts); the caller
   * then releases it. `resume`: a snapshot, the VM runs on. Only a VM of the container's own.
   */
  saveTo(dir: string, signal: AbortSignal, options?: { resume: boolean }): Promise<SavedStateRecord>;
}

/** A lone container's VM: the monitor owns it, and it ends with the container. */
export function ownVm(sandbox: Sandbox): ContainerVm {
  return {
    agent: sandbox.agent,
    ended: sandbox.vm.exited,
    vmPid: sandbox.vm.pid,
    updateContainer: (id, resources, signal) => sandbox.updateContainer(id, resources, signal),
    lossReason: (signal) => sandbox.lossReason(signal),
    explainFailure: (err, what) => sandbox.explainFailure(err, what),
    shutdown: () => void sandbox.stopVm(),
    release: () => sandbox.destroy(),
    saveTo: (dir, signal, options) => {
      if (!sandbox.saving) throw new HullError('ERR_UNSUPPORTED', 'this VM cannot be saved');
      return saveRunningVm(
        { vm: sandbox.vm, agent: sandbox.agent, ...sandbox.saving },
        dir,
        { resume: options?.resume === true },
        signal,
      );
    },
  };
}
