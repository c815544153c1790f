import { createHash } from 'node:crypto';
import { constants, createWriteStream } from 'node:fs';
import { type FileHandle, open, rename, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { HullError, messageOf } from '../errors.js';
import type { Vm } from '../hypervisor/hypervisor.js';
import { logger } from '../log.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { readJsonRecordOrNone } from '../sys/regular-file.js';
import { isRamBaseRecord, type RamBaseRecord, removeRamBase } from './ram-base.js';
import type { PageFilterPlan } from './ram-page-filter.js';
import { isStateStream, stateStreamSink } from './state-stream.js';
import { pageFilterTransform, templateDiffStream } from './template-diff-stream.js';

const log = logger('snapshot');

/**
 * A saved VM on disk: QEMU's migration stream (its devices and, unless its RAM is a template's
 * memory, its RAM) in `vm.state`, and beside it `vm-state.json`, written last, which says what
 * the stream is (size, SHA-256, the VMM and the VM shape it was saved from). Both are root's,
 * 0600, in a directory of root's.
 *
 * A saved state is checked before QEMU reads a byte of it: through the very descriptor QEMU
 * is given (a file swapped after the check is not the one read), its size and hash must be the
 * record's and its first bytes QEMU's migration magic. A state that fails is refused in one
 * line and left where it is: the sandbox stays saved, no VMM starts.
 */
export const STATE_FORMAT = 'hull-vm-state/1';

const STATE_FILE = 'vm.state';
const RECORD_FILE = 'vm-state.json';
/** The record is under a kilobyte: a bigger file is not one hull wrote. */
const MAX_RECORD_BYTES = 64 * 1024;

/** QEMU's migration stream begins with "QEVM" (QEMU_VM_FILE_MAGIC), then version 3. */
const QEMU_MAGIC = Buffer.from([0x51, 0x45, 0x56, 0x4d, 0x00, 0x00, 0x00, 0x03]);

/** Room kept free beyond the state's own size, so a save never fills the disk. */
const SPARE_BYTES = 256 * 2 ** 20;

export interface SavedStateRecord {
  format: typeof STATE_FORMAT;
  bytes: number;
  sha256: string;
  /** The VMM binary that wrote it (Hypervisor.identity): another cannot be trusted to read it. */
  vmm: string;
  /** The VM's shape (devices, sizes, CPU, kernel): what a resume must start QEMU with. */
  shape: string;
  memoryMiB: number;
  /** Whether the stream holds the RAM (else the RAM is a template's memory, kept apart). */
  withMemory: boolean;
  /** Where the agent client of the resumed VM starts its stream ids (AgentClient). */
  streamIdsFrom: number;
  savedAt: string;
  saveMs: number;
  /**
   * Streamed into a fork's VMM, never kept (see state-stream.ts): no file, so no hash
   * (`sha256` is empty) and nothing to load again.
   */
  streamed?: boolean;
  /**
   * A streamed fork's: how many pages of the parent's RAM were left out of the stream as the
   * template's, which the copy had already (see template-diff-stream.ts).
   */
  pagesLeftOut?: number;
  /**
   * A snapshot's: the guest-physical address of its kernel's boot id, as its guest said it
   * (hex; see hypervisor/qemu/boot-id.ts). Its copies get a boot id of their own from it.
   */
  bootIdAddress?: string;
  /**
   * A paused template clone's: the stream holds only the pages its guest wrote, and the rest
   * are this base's, hard-linked beside it (see ram-base.ts): resumed over it, never without.
   */
  ramBase?: RamBaseRecord;
  /** With `ramBase`: the stream's bytes before the base's pages were left out (the whole RAM's save). */
  unfilteredBytes?: number;
}

export function stateFilePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/**
 * Refuses a save that would leave the disk with less than SPARE_BYTES free: the stream is at
 * most the guest's RAM plus its devices' state.
 */
export async function requireRoomFor(dir: string, bytes: number): Promise<void> {
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < bytes + SPARE_BYTES) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `not enough disk space to save the VM in ${dir}: ${Math.ceil((bytes + SPARE_BYTES) / 2 ** 20)} MiB needed, ${Math.floor(free / 2 ** 20)} MiB free`,
    );
  }
}

/**
 * Saves a running VM into `dir`: paused, its state streamed to `vm.state` (hashed on the way),
 * then the record. With `resume` the VM runs on afterwards (a snapshot); without, it is left
 * paused for the caller to stop (a pause to disk). Whatever fails leaves no state file.
 */
export async function saveVmState(
  vm: Vm,
  dir: string,
  what: Pick<SavedStateRecord, 'vmm' | 'shape' | 'memoryMiB' | 'withMemory' | 'bootIdAddress'> & {
    resume: boolean;
    /** Runs while the VM is stopped, before its state is written (a snapshot's disk copy). */
    whileStopped?: () => Promise<void>;
    /** Read once the VM is saved: calls made while it was saving took ids too. */
    streamIdsFrom: () => number;
    /**
     * Only the RAM pages this plan keeps go to the file (asked once the VM is stopped); the
     * rest are `ramBase`'s, which the record then names. No plan: the whole RAM is saved.
     */
    ramFilter?: { base: RamBaseRecord; plan: () => Promise<PageFilterPlan | undefined> };
  },
  signal: AbortSignal,
): Promise<SavedStateRecord> {
  const started = Date.now();
  if (await isStateStream(dir)) return streamVmState(vm, dir, what, started, signal);
  await requireRoomFor(dir, what.withMemory ? what.memoryMiB * 2 ** 20 : 0);
  const temporary = `${stateFilePath(dir)}.new`;
  await rm(temporary, { force: true });
  const hash = createHash('sha256');
  let bytes = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  // Pages left out as the base's: only with the base recorded, so never lost (see ram-base.ts).
  const filter = what.ramFilter && pageFilterTransform(what.ramFilter.plan);
  const file = await open(temporary, 'wx', 0o600);
  try {
    const sink = createWriteStream('', { fd: file.fd, autoClose: false });
    const flushed = filter
      ? pipeline(filter, hashing, sink, { signal })
      : pipeline(hashing, sink, { signal });
    flushed.catch(() => {});
    await vm.saveState(
      filter ?? hashing,
      { ignoreSharedMemory: !what.withMemory, resume: what.resume, whileStopped: what.whileStopped },
      signal,
    );
    await flushed;
    await file.sync();
  } catch (err) {
    filter?.destroy();
    hashing.destroy();
    await file.close();
    await rm(temporary, { force: true });
    throw new HullError('ERR_SAVED_STATE', `saving the VM failed: ${messageOf(err)}`, { cause: err });
  }
  await file.close();
  await rename(temporary, stateFilePath(dir));
  const counts = filter?.counts();
  const filtered = counts !== undefined && counts.passedThrough === undefined;
  if (filter)
    log.info(
      { dir, ...counts },
      filtered ? "VM state saved: its template's pages left out" : 'VM state saved whole',
    );
  return writeStateRecord(dir, {
    ...stateRecord(what, started, bytes, hash.digest('hex')),
    ...(filtered ? { ramBase: what.ramFilter!.base, unfilteredBytes: counts.bytesIn } : {}),
  });
}

type SaveWhat = Parameters<typeof saveVmState>[2];

/** The record of a save of `what` begun at `started` (ms), of `bytes` with that SHA-256. */
function stateRecord(what: SaveWhat, started: number, bytes: number, sha256: string): SavedStateRecord {
  return {
    format: STATE_FORMAT,
    bytes,
    sha256,
    vmm: what.vmm,
    shape: what.shape,
    memoryMiB: what.memoryMiB,
    withMemory: what.withMemory,
    streamIdsFrom: what.streamIdsFrom(),
    savedAt: new Date().toISOString(),
    saveMs: Date.now() - started,
    ...(what.bootIdAddress ? { bootIdAddress: what.bootIdAddress } : {}),
  };
}

/**
 * A save into a state stream (a fork of one copy, see state-stream.ts): the migration goes
 * into the FIFO, read by the copy's VMM as it comes. The record says how many bytes went and
 * where the copy's agent client starts its stream ids; the copy waits for it.
 */
async function streamVmState(
  vm: Vm,
  dir: string,
  what: SaveWhat,
  started: number,
  signal: AbortSignal,
): Promise<SavedStateRecord> {
  let bytes = 0;
  const sink = stateStreamSink(dir, (n) => {
    bytes += n;
  });
  // Only the pages the copy does not have already (template-diff-stream.ts).
  const filter = templateDiffStream({
    dir,
    vmmPid: vm.pid,
    ramBytes: what.memoryMiB * 2 ** 20,
    opened: () => sink.opened(),
    signal,
  });
  const flushed = pipeline(filter, sink, { signal });
  flushed.catch(() => {});
  try {
    await vm.saveState(
      filter,
      { ignoreSharedMemory: !what.withMemory, resume: what.resume, whileStopped: what.whileStopped },
      signal,
    );
    await flushed;
  } catch (err) {
    filter.destroy();
    sink.destroy();
    throw new HullError('ERR_SAVED_STATE', `saving the VM into its fork failed: ${messageOf(err)}`, {
      cause: err,
    });
  }
  const counts = filter.counts();
  log.info({ dir, bytes, ...counts }, 'VM state streamed into its fork');
  // Nothing was kept to hash: the copy read the stream as it came.
  return writeStateRecord(dir, {
    ...stateRecord(what, started, bytes, ''),
    streamed: true,
    ...(counts && !counts.passedThrough ? { pagesLeftOut: counts.pagesDropped } : {}),
  });
}

async function writeStateRecord(dir: string, record: SavedStateRecord): Promise<SavedStateRecord> {
  await writeFileAtomic(join(dir, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  return record;
}

export async function readStateRecord(dir: string): Promise<SavedStateRecord | undefined> {
  // Read only as a small regular file of the directory's own (a checkpoint's may come from
  // an archive): a symlink, FIFO or device is no record.
  const record = (await readJsonRecordOrNone(join(dir, RECORD_FILE), {
    maxBytes: MAX_RECORD_BYTES,
    why: 'the record hull writes is under a kilobyte',
    code: 'ERR_SAVED_STATE',
    missing: 'is missing',
    noFollow: true,
  })) as SavedStateRecord | undefined;
  if (record?.format !== STATE_FORMAT) return undefined;
  // A record whose base is not one hull wrote is no record to resume by.
  if (record.ramBase !== undefined && !isRamBaseRecord(record.ramBase)) return undefined;
  return record;
}

/**
 * Opens a saved state for QEMU after checking it (see the top of this file) against its record
 * and against what the caller will start (`expect`: the same VMM and VM shape). The caller
 * gives the descriptor to the VMM and closes it.
 */
export async function openCheckedState(
  dir: string,
  expect: {
    vmm: string;
    shape: string;
    /** What a refusal says is left as it was (a paused sandbox, a checkpointed container). */
    stays?: string;
  },
  signal: AbortSignal,
): Promise<{ file: FileHandle; record: SavedStateRecord }> {
  const refuse = (why: string) =>
    new HullError(
      'ERR_SAVED_STATE',
      `the saved state in ${dir} is refused: ${why}; ${expect.stays ?? 'the sandbox stays paused'}`,
    );
  const record = await readStateRecord(dir);
  if (!record) throw refuse(`no valid ${RECORD_FILE} (not a state hull saved)`);
  if (record.streamed) throw refuse('it was streamed into a fork, never kept');
  if (record.vmm !== expect.vmm) throw refuse(`it was saved by another QEMU (${record.vmm})`);
  if (record.shape !== expect.shape) throw refuse('it was saved from a VM of another shape');
  // Never through a symlink, and without waiting on a FIFO: what is opened is checked next.
  const file = await open(
    stateFilePath(dir),
    constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY,
  ).catch((err: NodeJS.ErrnoException) => {
    throw refuse(err.code === 'ELOOP' ? 'it is a symlink' : `cannot open it (${err.code})`);
  });
  try {
    const info = await file.stat();
    if (!info.isFile()) throw refuse('it is not a regular file');
    // A hardlink would be a file elsewhere on the host (another sandbox's state) read as this one.
    if (info.nlink !== 1) throw refuse(`it has ${info.nlink} links, not one of its own`);
    if (info.uid !== process.getuid?.() || (info.mode & 0o077) !== 0)
      throw refuse(
        `it must be this user's and 0600 (owner ${info.uid}, mode ${(info.mode & 0o777).toString(8)})`,
      );
    if (info.size !== record.bytes)
      throw refuse(`its size is ${info.size} bytes, ${record.bytes} were saved`);
    const head = Buffer.alloc(QEMU_MAGIC.length);
    await file.read(head, 0, head.length, 0);
    if (!head.equals(QEMU_MAGIC)) throw refuse('it is not a QEMU migration stream (wrong magic)');
    const hash = createHash('sha256');
    const chunk = Buffer.alloc(4 * 2 ** 20);
    for (let position = 0; position < info.size; ) {
      signal.throwIfAborted();
      const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) break;
      hash.update(chunk.subarray(0, bytesRead));
      position += bytesRead;
    }
    if (hash.digest('hex') !== record.sha256) throw refuse('its SHA-256 is not the one recorded at save');
    return { file, record };
  } catch (err) {
    await file.close();
    throw err;
  }
}

/** Removes a saved state (after a resume, or with its sandbox). */
export async function removeSavedState(dir: string): Promise<void> {
  await rm(join(dir, RECORD_FILE), { force: true });
  await rm(stateFilePath(dir), { force: true });
  await removeRamBase(dir);
}
