import type { Hypervisor, VmConfig } from '../hypervisor/hypervisor.js';
import type { CloneSource } from '../template/clone.js';
import { openPausedState } from './resume-base.js';
import { savedShape } from './saved-vm.js';

/**
 * A sandbox's own VM, paused to disk in `dir`, as the clone source Sandbox.create starts its VM
 * from: the same configuration, QEMU started with `-incoming` from the checked state (its
 * size, format and hash; see state-file.ts). The guest then is the sandbox as it was, its
 * container and processes running: nothing is created in it again, only its clock set and its
 * RNG reseeded (CreateSandbox). A state that fails a check starts no QEMU and stays as it is;
 * one QEMU cannot load fails the start (never a fresh boot in its place).
 */
export function savedVmSource(
  dir: string,
  parts: {
    hypervisor: Hypervisor;
    imageHash: string;
    stays?: string;
    /** The live template of its shape, if any: its memory the base the state loads over. */
    baseSource?: (config: VmConfig) => Promise<CloneSource | undefined>;
  },
): (config: VmConfig, signal: AbortSignal) => Promise<{ source: CloneSource }> {
  return async (config, signal) => {
    const expect = {
      vmm: await parts.hypervisor.identity(),
      shape: await savedShape(config, parts.hypervisor, parts.imageHash),
      stays: parts.stays,
    };
    const { record, role, close } = await openPausedState(
      dir,
      expect,
      parts.baseSource && (() => parts.baseSource!(config)),
      parts.stays ?? 'the sandbox stays paused',
      signal,
    );
    return {
      source: {
        key: `saved ${dir}`,
        // Over the template's memory, or the paused sandbox's base (see resume-base.ts).
        role,
        // The cards are the sandbox's own, found again in its network namespace.
        cardMacs: [],
        streamIdsFrom: record.streamIdsFrom,
        noBootInstead: true,
        resumed: true,
        close,
        // The state is the sandbox's: it stays for another try, never removed here.
        discard: async () => {},
      },
    };
  };
}
