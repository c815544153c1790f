import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError, messageOf } from '../errors.js';
import type { Hypervisor, Vm, VmConfig } from '../hypervisor/hypervisor.js';
import { logger } from '../log.js';
import { run } from '../sys/exec.js';
import { deadlineSignal, raceSignal } from '../util/deadline.js';
import { consoleCauseOrLastLine } from './console-cause.js';
import type { GuestImage } from './manifest.js';

/**
 * The agent's V8 startup snapshot. V8 stamps a snapshot with the CPU features it found when it
 * made it and refuses it on a CPU with others, so a snapshot made on the host that built the
 * image fails in a guest whose CPU differs (any TCG guest on most hosts). hull therefore makes
 * it inside a guest booted with the very QEMU, accelerator and CPU model sandboxes will use,
 * and keeps one per such guest CPU, as a small read-only erofs disk beside the image:
 *
 *   <image>/snapshots/<key>.erofs   the disk (agent.blob inside)
 *   <image>/snapshots/<key>.json    what it was made for, when, and how long it took
 *   <image>/snapshots/<key>.failed  a build that failed, so that starts do not retry it
 */
export interface SnapshotTarget {
  image: GuestImage;
  /** What decides the CPU the guest sees (hypervisor/cpu-model.ts guestCpuIdentity). */
  cpuIdentity: string;
}

export interface SnapshotRecord {
  key: string;
  cpuIdentity: string;
  builtAt: string;
  buildMs: number;
  blobBytes: number;
}

export function snapshotKey(target: SnapshotTarget): string {
  return createHash('sha256')
    .update(`image ${target.image.manifest.hash}\n${target.cpuIdentity}\n`)
    .digest('hex')
    .slice(0, 16);
}

export function snapshotsDir(image: GuestImage): string {
  return join(image.dir, 'snapshots');
}

export function snapshotDisk(image: GuestImage, key: string): string {
  return join(snapshotsDir(image), `${key}.erofs`);
}

function failedMarker(image: GuestImage, key: string): string {
  return join(snapshotsDir(image), `${key}.failed`);
}

/** The reason an earlier build for this key failed, if one did. */
export async function failedBuild(image: GuestImage, key: string): Promise<string | undefined> {
  return readFile(failedMarker(image, key), 'utf8').catch(() => undefined);
}

export async function recordFailedBuild(image: GuestImage, key: string, reason: string): Promise<void> {
  await mkdir(snapshotsDir(image), { recursive: true });
  await writeFile(failedMarker(image, key), reason);
}

/** Every snapshot made for this image, as recorded beside its disk. */
export async function listSnapshots(image: GuestImage): Promise<SnapshotRecord[]> {
  const names = await readdir(snapshotsDir(image)).catch(() => [] as string[]);
  const records: SnapshotRecord[] = [];
  for (const name of names.filter((n) => n.endsWith('.json'))) {
    try {
      records.push(JSON.parse(await readFile(join(snapshotsDir(image), name), 'utf8')) as SnapshotRecord);
    } catch {}
  }
  return records;
}

/** Forgets a snapshot (the guest refused it): the next start makes it again. */
export async function discardSnapshot(image: GuestImage, key: string): Promise<void> {
  await rm(snapshotDisk(image, key), { force: true });
  await rm(join(snapshotsDir(image), `${key}.json`), { force: true });
}

export interface SnapshotBuildOptions extends SnapshotTarget {
  hypervisor: Hypervisor;
  /** How the build guest runs: the same accelerator and CPU model as the sandboxes. */
  vm: Pick<VmConfig, 'accel' | 'cpuModel' | 'tscKhz'>;
  timeoutMs: number;
  signal?: AbortSignal;
}

/**
 * Boots a guest that builds the snapshot into a 9p share and powers off (hull-init's
 * `hull.build_snapshot`), then packs the blob into its disk. Returns the disk's path.
 */
export async function buildAgentSnapshot(options: SnapshotBuildOptions): Promise<string> {
  const { image } = options;
  const key = snapshotKey(options);
  const started = Date.now();
  await mkdir(snapshotsDir(image), { recursive: true });
  const work = await mkdtemp(join(snapshotsDir(image), '.build-'));
  const share = join(work, 'share');
  const stage = join(work, 'stage');
  const log = logger('snapshot');
  const deadline = deadlineSignal(
    options.timeoutMs,
    () =>
      new HullError(
        'ERR_IMAGE_BUILD',
        `building the agent's startup snapshot took over ${options.timeoutMs / 1000}s: is the host overloaded? HULL_AGENT_SNAPSHOT=off starts agents without one`,
      ),
    options.signal,
  );
  let vm: Vm | undefined;
  try {
    await mkdir(share);
    await mkdir(stage);
    log.debug({ key, cpu: options.vm.cpuModel }, 'building the agent snapshot in a guest');
    vm = await options.hypervisor.start(
      {
        id: `snapshot-${key}`,
        runDir: work,
        kernel: image.kernel,
        initrd: image.initrd,
        rootfs: image.rootfs,
        shareDir: share,
        shareRootWritable: true,
        vcpus: 1,
        memoryMiB: 512,
        accel: options.vm.accel,
        cpuModel: options.vm.cpuModel,
        tscKhz: options.vm.tscKhz,
        deviceDiscovery: image.manifest.kernel.deviceDiscovery,
        guestArgs: ['hull.build_snapshot'],
      },
      deadline.signal,
    );
    await raceSignal(vm.exited, deadline.signal);
    const blob = join(share, 'agent.blob');
    // lstat: a blob the guest made a symlink is no blob (the host never follows its links).
    const blobInfo = await lstat(blob).catch(() => undefined);
    const blobBytes = blobInfo?.isFile() ? blobInfo.size : 0;
    if (blobBytes === 0) {
      const cause = consoleCauseOrLastLine(await readFile(vm.consoleLog, 'utf8').catch(() => ''));
      throw new HullError('ERR_IMAGE_BUILD', `the guest made no agent snapshot: ${cause}`);
    }
    await rename(blob, join(stage, 'agent.blob'));
    const disk = join(work, 'snapshot.erofs');
    await run('mkfs.erofs', ['--quiet', '--all-root', '-T0', disk, stage], {
      signal: deadline.signal,
      errorCode: 'ERR_IMAGE_BUILD',
      purpose: "packing the agent's startup snapshot (is erofs-utils installed?)",
    });
    const record: SnapshotRecord = {
      key,
      cpuIdentity: options.cpuIdentity,
      builtAt: new Date().toISOString(),
      buildMs: Date.now() - started,
      blobBytes,
    };
    await writeFile(join(snapshotsDir(image), `${key}.json`), `${JSON.stringify(record, null, 2)}\n`);
    await rename(disk, snapshotDisk(image, key));
    await rm(failedMarker(image, key), { force: true });
    log.debug({ key, ms: record.buildMs, blobBytes }, 'agent snapshot built');
    return snapshotDisk(image, key);
  } catch (err) {
    throw err instanceof HullError
      ? err
      : new HullError('ERR_IMAGE_BUILD', `building the agent snapshot failed: ${messageOf(err)}`, {
          cause: err,
        });
  } finally {
    deadline.dispose();
    await vm?.stop();
    await rm(work, { recursive: true, force: true });
  }
}
