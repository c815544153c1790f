import { chmod, rename } from 'node:fs/promises';
import { HullError } from '../errors.js';
import { parseBootIdAddressText } from '../hypervisor/boot-id-address.js';
import type { Hypervisor, VmConfig } from '../hypervisor/hypervisor.js';
import type { CloneSource } from '../template/clone.js';
import type { TemplateRecord } from '../template/store.js';
import { sleep } from '../util/deadline.js';
import { loadStateRole } from './resume-base.js';
import { forkSource, snapshotDiskPath, snapshotTemplate } from './saved-vm.js';
import { readStateRecord } from './state-file.js';
import { isStateStream, openStateStreamForReading } from './state-stream.js';
import { writeStreamBase } from './template-diff-stream.js';
import { memoryIdentityOf } from './template-pages.js';

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
    /** The template a sandbox of this shape is cloned from (a streamed fork's memory base). */
    baseSource?: (config: VmConfig) => Promise<CloneSource | undefined>;
  },
): (config: VmConfig, signal: AbortSignal) => Promise<{ source: CloneSource }> {
  return async (config, signal) => {
    if (await isStateStream(fork.dir)) return streamedForkSource(fork, config, parts.baseSource, signal);
    const template = await snapshotTemplate(fork.dir, config, parts, signal);
    const { source } = await forkSource(template, config);
    const bootIdAddress = parseBootIdAddressText((await readStateRecord(fork.dir))?.bootIdAddress);
    return {
      source: {
        ...source!,
        role: { ...source!.role, freshBootId: async () => bootIdAddress },
        cardMacs: fork.cardMacs,
      },
    };
  };
}

/**
 * The clone source of the one copy of a fork of one: its VMM loads the parent's migration as
 * the parent's monitor streams it (see state-stream.ts), and its network is its own, set up as
 * a clone's is. Its RAM is the sandboxes' template's memory mapped private, the stream loaded
 * over it (`withRam`; when the parent is a clone of that same memory, the stream holds only the
 * pages the parent wrote): those pages are in memory already, where fresh anonymous memory (the
 * `restore` role, used when there is no template) costs the host a cleared huge page for each
 * 2 MiB the stream touches, which took most of a load (about 1 s for a 512 MiB guest here). The read end opens once the parent
 * has copied its disk, stopped, and opened the write end: that copy becomes this sandbox's
 * writable disk (a rename: the snapshot never keeps it) before the VMM opens it.
 */
async function streamedForkSource(
  fork: ForkFrom,
  config: VmConfig,
  baseSource: ((config: VmConfig) => Promise<CloneSource | undefined>) | undefined,
  signal: AbortSignal,
): Promise<{ source: CloneSource }> {
  const disks = config.rootfsDisks;
  if (!disks) {
    throw new HullError('ERR_UNSUPPORTED', 'only a sandbox with its root on disks is forked');
  }
  const base = await baseSource?.(config);
  const file = await (async () => {
    signal.throwIfAborted();
    // Before the read end opens: the parent, whose write end opens with it, then leaves out
    // the pages this base has already (template-diff-stream.ts).
    if (base) await writeStreamBase(fork.dir, memoryIdentityOf(base.role.memoryFd));
    return openStateStreamForReading(fork.dir);
  })().catch(async (err: unknown) => {
    await base?.close();
    throw err;
  });
  try {
    await rename(snapshotDiskPath(fork.dir), disks.writable);
    await chmod(disks.writable, 0o600);
  } catch (err) {
    await file.close();
    await base?.close();
    throw err;
  }
  const source: CloneSource = {
    key: `fork stream ${fork.dir}`,
    role: {
      ...loadStateRole(file.fd, base?.role.memoryFd),
      // Loaded means all sent: the parent says where its boot id is in the record it writes then.
      freshBootId: async (loadSignal) =>
        parseBootIdAddressText((await streamedRecord(fork.dir, loadSignal)).bootIdAddress),
    },
    cardMacs: fork.cardMacs,
    noBootInstead: true,
    close: async () => {
      await file.close();
      await base?.close();
    },
    discard: async () => {},
    loaded: async (loadSignal) => {
      source.streamIdsFrom = (await streamedRecord(fork.dir, loadSignal)).streamIdsFrom;
    },
  };
  return { source };
}

/** The record the parent writes once its stream is all sent (a moment after the copy loaded it). */
async function streamedRecord(dir: string, signal: AbortSignal) {
  for (;;) {
    const record = await readStateRecord(dir);
    if (record?.streamed) return record;
    await sleep(10, signal);
  }
}
