import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageProcessConfig } from '../container-images/store.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import type { SnapshotInfo } from './api-types.js';
import { readRecordDirs, removeRecordDir } from './record-dirs.js';
import type { SandboxRecord } from './sandbox-records.js';

/**
 * What serve keeps of each snapshot (sandbox.snapshot(), and the passing one a fork makes):
 * under `<root>/@serve/snapshots/<id>/`, the saved VM (snapshot/state-file.ts's files), the
 * frozen copy of the sandbox's writable disk (`disk.raw`), and this record, written last, so a
 * directory without one is a snapshot cut short. Root's and 0700, as sandboxes' are.
 */
export interface SnapshotRecord extends SnapshotInfo {
  /** The environment, working directory and user commands start from (the image's). */
  process: ImageProcessConfig;
  /** The image's erofs disk its sandboxes' roots read (shared per digest). */
  imageDisk: string;
  /** The MAC addresses of the parent's guest cards, by which a fork finds its own. */
  cardMacs: string[];
  /** A fork's: removed once its forks run, never listed. */
  passing?: boolean;
}

const RECORD_FILE = 'snapshot.json';

/** A snapshot of the sandbox `record`: what sandboxes started from it are made as. */
export function snapshotRecordOf(
  record: SandboxRecord,
  parts: Pick<SnapshotRecord, 'snapshotId' | 'bytes' | 'imageDisk' | 'cardMacs' | 'metadata' | 'passing'>,
): SnapshotRecord {
  const { cpus, memoryMiB } = record;
  return {
    snapshotId: parts.snapshotId,
    sandboxId: record.sandboxId,
    image: record.image,
    imageDigest: record.imageDigest,
    ...(cpus ? { cpus } : {}),
    ...(memoryMiB ? { memoryMiB } : {}),
    diskMiB: record.diskMiB,
    env: record.env,
    metadata: parts.metadata,
    network: record.network,
    createdAt: new Date().toISOString(),
    bytes: parts.bytes,
    process: record.process,
    imageDisk: parts.imageDisk,
    cardMacs: parts.cardMacs,
    ...(parts.passing ? { passing: true } : {}),
  };
}

/** What the API shows of a snapshot. */
export function snapshotInfo(record: SnapshotRecord): SnapshotInfo {
  const { process: _process, imageDisk: _disk, cardMacs: _macs, passing: _passing, ...info } = record;
  return info;
}
export const SNAPSHOT_ID_PATTERN = '^snap-[0-9a-f]{16}$';

export function snapshotsDir(root: string): string {
  return join(root, '@serve', 'snapshots');
}

export function snapshotDir(root: string, id: string): string {
  return join(snapshotsDir(root), id);
}

/** A new snapshot's ID and its directory, made 0700 and empty. */
export async function makeSnapshotDir(root: string): Promise<{ id: string; dir: string }> {
  const id = `snap-${randomBytes(8).toString('hex')}`;
  await mkdir(snapshotsDir(root), { recursive: true, mode: 0o700 });
  const dir = snapshotDir(root, id);
  await mkdir(dir, { mode: 0o700 });
  return { id, dir };
}

export async function writeSnapshotRecord(root: string, record: SnapshotRecord): Promise<void> {
  const path = join(snapshotDir(root, record.snapshotId), RECORD_FILE);
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

/** Every snapshot under the root; a directory without a record (cut short) is `incomplete`. */
export function readSnapshotRecords(
  root: string,
): Promise<{ records: SnapshotRecord[]; incomplete: string[] }> {
  return readRecordDirs<SnapshotRecord>(snapshotsDir(root), new RegExp(SNAPSHOT_ID_PATTERN), RECORD_FILE);
}

export function removeSnapshotDir(root: string, id: string): Promise<void> {
  return removeRecordDir(snapshotDir(root, id));
}
