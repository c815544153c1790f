import type { Hypervisor, VmConfig } from '../hypervisor/hypervisor.js';
import type { CloneSource } from '../template/clone.js';
import type { TemplateRecord } from '../template/store.js';
import { forkSource, snapshotTemplate } from './saved-vm.js';

/**
 * A container started as a fork of a snapshot of another's VM (SaveVm keep_running): its guest
 * is the parent's at the snapshot, its container running in it under the parent's name (the
 * agent renames it when CreateSandbox gives the fork's own ID).
 */
export interface ForkFrom {
  /** The snapshot's directory (snapshot/state-file.ts's files and the frozen disk). */
  dir: string;
  /**
   * The MAC addresses the parent's guest gave its cards: a fork finds its cards by them, and
   * gives each its own MAC, addresses and routes (the parent's are flushed).
   */
  cardMacs: string[];
}

/**
 * The clone source of a fork: the snapshot made a template once (its RAM held in a sealed
 * memfd, see saved-vm.ts snapshotTemplate), which every fork maps copy-on-write as clones map
 * their template's. Not `resumed`: a fork's network is its own, set up as a clone's is.
 */
export function snapshotForkSource(
  fork: ForkFrom,
  parts: {
    hypervisor: Hypervisor;
    describe: Pick<TemplateRecord, 'accel' | 'cpuModel' | 'imageHash'>;
    timeoutMs: number;
  },
): (config: VmConfig, signal: AbortSignal) => Promise<{ source: CloneSource }> {
  return async (config, signal) => {
    const template = await snapshotTemplate(fork.dir, config, parts, signal);
    const { source } = await forkSource(template, config);
    return { source: { ...source!, cardMacs: fork.cardMacs } };
  };
}
