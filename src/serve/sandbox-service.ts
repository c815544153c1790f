import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setting } from '../config/settings.js';
import { makeSandboxRootfs } from '../container-images/sandbox-rootfs.js';
import type { ContainerImageStore, PulledImage } from '../container-images/store.js';
import { HullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { removeSnapshotTemplate } from '../snapshot/saved-vm.js';
import { readStateRecord } from '../snapshot/state-file.js';
import { makeStateStream, releaseStateStream } from '../snapshot/state-stream.js';
import { DEFAULT_WRITABLE_DISK_MIB } from '../storage/rootfs-disks.js';
import { hostNowMs } from '../trace/boot-marks.js';
import { StepSpans } from '../trace/step-spans.js';
import type { CreateSandboxRequest, CreateSnapshotRequest, SandboxInfo, SnapshotInfo } from './api-types.js';
import type { ContainerVerbs } from './container-lifecycle.js';
import { bundleFromSnapshot, imageDiskOfBundle } from './sandbox-from-snapshot.js';
import { diskSeedOf, noNetwork, type SandboxNetworks, withSandboxNetwork } from './sandbox-network.js';
import {
  makeSandboxDir,
  readRecords,
  removeSandboxDir,
  type SandboxRecord,
  sandboxDir,
  savedDir,
  writeRecord,
} from './sandbox-records.js';
import { sandboxSpec } from './sandbox-spec.js';
import {
  makeSnapshotDir,
  readSnapshotRecords,
  removeSnapshotDir,
  type SnapshotRecord,
  snapshotDir,
  snapshotInfo,
  snapshotRecordOf,
  writeSnapshotRecord,
} from './snapshot-records.js';
import { defaultStartSlots, StartSlots } from './start-slots.js';

/** A sandbox's time to live when the request gives none (as hosted sandbox services do). */
export const DEFAULT_TIMEOUT_MS = 5 * 60_000;
/** setTimeout's longest delay; a longer time to live is re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long saving a sandbox's VM, or starting it again, may take. */
const PAUSE_TIMEOUT_MS = 5 * 60_000;
/** How long creating a sandbox (pull, unpack, VM) may take. */
const CREATE_TIMEOUT_MS = 20 * 60_000;

const log = logger('serve');

/**
 * The sandboxes of one runtime root: made from container images by hull's own verbs, kept as
 * records beside their containers, and killed when their time to live is over, by whichever
 * server runs, including one restarted after the sandbox was made.
 */
export class SandboxService {
  private readonly records = new Map<string, SandboxRecord>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly killing = new Map<string, Promise<void>>();
  private readonly pausing = new Map<string, Promise<void>>();
  private readonly snapshots = new Map<string, SnapshotRecord>();

  constructor(
    private readonly root: string,
    private readonly images: ContainerImageStore,
    private readonly verbs: ContainerVerbs,
    private readonly networks: SandboxNetworks,
    /** Sandboxes booted at once; other creates wait their turn (see start-slots.ts). */
    private readonly startSlots = new StartSlots(defaultStartSlots()),
  ) {}

  /**
   * Finds the sandboxes already under the root (a restarted server): each is armed again,
   * and one whose time is over, whose VM ended, or whose create was cut short is removed.
   */
  async recover(): Promise<void> {
    const snapshots = await readSnapshotRecords(this.root);
    // A fork's passing snapshot, or one cut short, is of no use to anyone now.
    for (const id of snapshots.incomplete) await this.dropSnapshot(id);
    for (const snapshot of snapshots.records) {
      if (snapshot.passing) await this.dropSnapshot(snapshot.snapshotId);
      else this.snapshots.set(snapshot.snapshotId, snapshot);
    }
    const { records, incomplete } = await readRecords(this.root);
    for (const id of incomplete) await this.remove(id);
    for (const record of records) {
      this.records.set(record.sandboxId, record);
      // A paused sandbox has no VM to find and no time running: it waits for its resume.
      if (record.paused) continue;
      if (record.expiresAtMs <= Date.now() || !(await this.verbs.running(record.sandboxId))) {
        await this.kill(record.sandboxId);
      } else {
        this.arm(record);
      }
    }
    await this.networks.recover([...this.records.values()]);
    for (const record of this.records.values()) if (record.ports) await writeRecord(this.root, record);
  }

  async create(request: CreateSandboxRequest): Promise<SandboxInfo> {
    if (request.fromSnapshot) return this.createFromSnapshot(request, request.fromSnapshot);
    const reference = request.image;
    if (!reference) {
      throw new HullError(
        'ERR_CONFIG',
        'a sandbox is made from an image or a snapshot: give image or fromSnapshot',
      );
    }
    const signal = AbortSignal.timeout(CREATE_TIMEOUT_MS);
    const spans = new StepSpans();
    const image = await spans.step('image', () => this.images.pull(reference, signal));
    const id = `sb-${randomBytes(8).toString('hex')}`;
    const dir = await makeSandboxDir(this.root, id);
    const record: SandboxRecord = {
      sandboxId: id,
      image: reference,
      imageDigest: image.digest,
      cpus: request.cpus,
      memoryMiB: request.memoryMiB,
      diskMiB: request.diskMiB ?? DEFAULT_WRITABLE_DISK_MIB,
      env: request.env ?? {},
      metadata: request.metadata ?? {},
      network: request.network ?? 'internet',
      createdAt: new Date().toISOString(),
      expiresAtMs: Date.now() + (request.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      process: image.config,
    };
    const asked = hostNowMs();
    try {
      await this.startSlots.run(signal, () => {
        spans.endSpan('queued', asked);
        return this.makeSandbox(record, image, dir, spans, signal);
      });
      // Written last: a directory without a record is a create cut short (see recover).
      await writeRecord(this.root, record);
    } catch (err) {
      log.info({ sandbox: id, ...spans.summary() }, 'sandbox create failed');
      await this.remove(id);
      throw err;
    }
    this.records.set(id, record);
    this.arm(record);
    log.info(
      { sandbox: id, image: request.image, digest: image.digest, ...spans.summary() },
      'sandbox created',
    );
    await spans.write(setting('traceDir'), `${id}-create`, 'hull serve: create');
    return this.info(record);
  }

  /** The sandbox's network, disks and container (its VM), each a span of the create. */
  private async makeSandbox(
    record: SandboxRecord,
    image: PulledImage,
    dir: string,
    spans: StepSpans,
    signal: AbortSignal,
  ): Promise<void> {
    const id = record.sandboxId;
    if (record.network === 'internet') {
      record.internet = await spans.step('network', () => this.networks.attach(id, dir, signal));
    }
    const bundle = join(dir, 'bundle');
    await mkdir(bundle, { mode: 0o700 });
    const annotations = await spans.step('disks', async () => {
      const seed = await diskSeedOf(record, dir);
      const made = await makeSandboxRootfs(image, dir, { bundle, diskMiB: record.diskMiB, signal, seed });
      if (seed) await rm(seed, { recursive: true, force: true });
      return made;
    });
    const spec = withSandboxNetwork(sandboxSpec(record, annotations), record, dir);
    await writeFile(join(bundle, 'config.json'), `${JSON.stringify(spec, null, 2)}\n`);
    await spans.step('container', () =>
      this.verbs.create(id, bundle, { cpus: record.cpus, memoryMiB: record.memoryMiB }, signal),
    );
  }

  /**
   * A sandbox started from a snapshot, running as the snapshot's sandbox was: the same image,
   * size and network (a request asking another is refused), its own disk, address and time.
   */
  private async createFromSnapshot(request: CreateSandboxRequest, snapshotId: string): Promise<SandboxInfo> {
    const snapshot = this.snapshotRecord(snapshotId);
    const differs = (['image', 'cpus', 'memoryMiB', 'diskMiB', 'network'] as const).filter(
      (key) => request[key] !== undefined && request[key] !== snapshot[key],
    );
    if (differs.length) {
      throw new HullError(
        'ERR_CONFIG',
        `a sandbox from snapshot ${snapshotId} has its ${differs.join(', ')}: leave ${differs.length > 1 ? 'them' : 'it'} out`,
      );
    }
    return this.startFromSnapshot(snapshot, {
      env: { ...snapshot.env, ...request.env },
      metadata: request.metadata ?? {},
      expiresAtMs: Date.now() + (request.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
  }

  /**
   * Keeps a snapshot of a running sandbox, which runs on: its VM saved (memory and devices)
   * and its writable disk copied while the VM stands still (see snapshot/saved-vm.ts).
   */
  async snapshot(id: string, request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    const record = this.runningRecord(id);
    const { id: snapshotId, dir } = await makeSnapshotDir(this.root);
    try {
      const snapshot = await this.oneAtATime(id, () =>
        this.takeSnapshot(record, snapshotId, dir, { metadata: request.metadata ?? {} }),
      );
      this.snapshots.set(snapshotId, snapshot);
      log.info({ sandbox: id, snapshot: snapshotId }, 'snapshot kept');
      return snapshotInfo(snapshot);
    } catch (err) {
      await this.dropSnapshot(snapshotId);
      throw err;
    }
  }

  /**
   * `count` running copies of a running sandbox, which runs on: a passing snapshot, made a
   * template once, that every fork clones copy-on-write, each with its own disk, address and
   * identity (see snapshot/fork-source.ts); removed once they run. All or none: a fork that
   * fails to start takes the others with it.
   */
  async fork(id: string, count: number): Promise<SandboxInfo[]> {
    const record = this.runningRecord(id);
    const spans = new StepSpans();
    const { id: snapshotId, dir } = await makeSnapshotDir(this.root);
    try {
      if (count === 1) return [await this.forkOne(record, snapshotId, dir, spans)];
      const snapshot = await spans.step('save', () =>
        this.oneAtATime(id, () =>
          this.takeSnapshot(record, snapshotId, dir, { metadata: record.metadata, passing: true }),
        ),
      );
      const started = await Promise.allSettled(
        Array.from({ length: count }, (_, n) =>
          this.startFromSnapshot(
            snapshot,
            { env: record.env, metadata: record.metadata, expiresAtMs: record.expiresAtMs },
            spans.prefixed(`copy ${n}: `),
          ),
        ),
      );
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) {
        for (const s of started) if (s.status === 'fulfilled') await this.kill(s.value.sandboxId);
        throw failed.reason;
      }
      log.info({ sandbox: id, count, ...spans.summary() }, 'sandbox forked');
      return started.map((s) => (s as PromiseFulfilledResult<SandboxInfo>).value);
    } finally {
      await spans.step('drop snapshot', () => this.dropSnapshot(snapshotId));
      await spans.write(setting('traceDir'), `${id}-fork`, 'hull serve: fork');
    }
  }

  listSnapshots(): SnapshotInfo[] {
    return [...this.snapshots.values()]
      .map(snapshotInfo)
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  describeSnapshot(id: string): SnapshotInfo {
    return snapshotInfo(this.snapshotRecord(id));
  }

  /** A kept snapshot's record, or ERR_NOT_FOUND. */
  snapshotRecord(id: string): SnapshotRecord {
    const snapshot = this.snapshots.get(id);
    if (!snapshot) {
      throw new HullError('ERR_NOT_FOUND', `snapshot ${id} does not exist: list them with GET /v1/snapshots`);
    }
    return snapshot;
  }

  /** Removes a snapshot (its saved VM, its disk's copy, its template); sandboxes from it live on. */
  async removeSnapshot(id: string): Promise<void> {
    this.snapshotRecord(id);
    this.snapshots.delete(id);
    await this.dropSnapshot(id);
  }

  /** A live sandbox that runs (not paused), or ERR_NOT_FOUND / ERR_STATE. */
  private runningRecord(id: string): SandboxRecord {
    const record = this.record(id);
    if (record.paused) {
      throw new HullError('ERR_STATE', `sandbox ${id} is paused: resume it first`);
    }
    return record;
  }

  private async takeSnapshot(
    record: SandboxRecord,
    snapshotId: string,
    dir: string,
    options: { metadata: Record<string, string>; passing?: boolean },
  ): Promise<SnapshotRecord> {
    const signal = AbortSignal.timeout(PAUSE_TIMEOUT_MS);
    const snapshot = await this.snapshotRecordFor(record, snapshotId, options, signal);
    await this.verbs.snapshot(record.sandboxId, dir, signal);
    snapshot.bytes = (await readStateRecord(dir))?.bytes ?? 0;
    await writeSnapshotRecord(this.root, snapshot);
    return snapshot;
  }

  /** What a snapshot of a running sandbox keeps of it (its image disk, its card's MAC). */
  private async snapshotRecordFor(
    record: SandboxRecord,
    snapshotId: string,
    options: { metadata: Record<string, string>; passing?: boolean },
    signal: AbortSignal,
  ): Promise<SnapshotRecord> {
    const id = record.sandboxId;
    if (!(await this.verbs.running(id))) {
      throw new HullError('ERR_STATE', `sandbox ${id} is not running: only a running sandbox is snapshotted`);
    }
    const imageDisk = await imageDiskOfBundle(join(sandboxDir(this.root, id), 'bundle'));
    const cardMacs = record.internet ? [await this.networks.guestMac(id, signal)] : [];
    return snapshotRecordOf(record, { snapshotId, bytes: 0, imageDisk, cardMacs, ...options });
  }

  /**
   * A fork of one copy: the parent's VM migrates straight into the copy's VMM through a state
   * stream (see snapshot/state-stream.ts), the copy's monitor and VMM starting while the parent
   * saves; no state file, no template, and the disk the parent copies while stopped becomes
   * the copy's. A side that fails wakes the other; a copy whose parent's save failed goes.
   */
  private async forkOne(
    record: SandboxRecord,
    snapshotId: string,
    dir: string,
    spans: StepSpans,
  ): Promise<SandboxInfo> {
    const id = record.sandboxId;
    const signal = AbortSignal.timeout(PAUSE_TIMEOUT_MS);
    const snapshot = await spans.step('prepare', async () => {
      const made = await this.snapshotRecordFor(
        record,
        snapshotId,
        { metadata: record.metadata, passing: true },
        signal,
      );
      await makeStateStream(dir, signal);
      // A passing snapshot's record: a server that stops now drops it at its next start.
      await writeSnapshotRecord(this.root, made);
      return made;
    });
    let settled = 0;
    const side = <T>(act: () => Promise<T>): Promise<T> =>
      act()
        .catch((err: unknown) => {
          void releaseStateStream(dir, () => settled === 2, signal);
          throw err;
        })
        .finally(() => {
          settled += 1;
        });
    const [saved, started] = await Promise.allSettled([
      side(() => spans.step('save', () => this.oneAtATime(id, () => this.verbs.snapshot(id, dir, signal)))),
      side(() =>
        this.startFromSnapshot(
          snapshot,
          { env: record.env, metadata: record.metadata, expiresAtMs: record.expiresAtMs },
          spans.prefixed('copy 0: '),
          { streamed: true },
        ),
      ),
    ]);
    if (started.status === 'rejected') throw started.reason;
    if (saved.status === 'rejected') {
      await this.kill(started.value.sandboxId);
      throw saved.reason;
    }
    // What went from parent to copy: only the pages the parent wrote when both are clones of
    // the same template (snapshot/template-diff-stream.ts).
    const stream = await readStateRecord(dir).catch(() => undefined);
    log.info(
      {
        sandbox: id,
        count: 1,
        streamBytes: stream?.bytes,
        pagesLeftOut: stream?.pagesLeftOut ?? 0,
        ...spans.summary(),
      },
      'sandbox forked',
    );
    return started.value;
  }

  /** One sandbox from a snapshot: its own directory, network, disk copy and container. */
  private async startFromSnapshot(
    snapshot: SnapshotRecord,
    parts: { env: Record<string, string>; metadata: Record<string, string>; expiresAtMs: number },
    spans: Pick<StepSpans, 'step'> = new StepSpans(),
    options: { streamed?: boolean } = {},
  ): Promise<SandboxInfo> {
    const signal = AbortSignal.timeout(CREATE_TIMEOUT_MS);
    const id = `sb-${randomBytes(8).toString('hex')}`;
    const dir = await makeSandboxDir(this.root, id);
    const { cpus, memoryMiB } = snapshot;
    const record: SandboxRecord = {
      sandboxId: id,
      image: snapshot.image,
      imageDigest: snapshot.imageDigest,
      ...(cpus ? { cpus } : {}),
      ...(memoryMiB ? { memoryMiB } : {}),
      diskMiB: snapshot.diskMiB,
      env: parts.env,
      metadata: parts.metadata,
      network: snapshot.network,
      createdAt: new Date().toISOString(),
      expiresAtMs: parts.expiresAtMs,
      process: snapshot.process,
    };
    const fromDir = snapshotDir(this.root, snapshot.snapshotId);
    try {
      if (record.network === 'internet') {
        record.internet = await spans.step('network', () => this.networks.attach(id, dir, signal));
      }
      const bundle = await spans.step('disk', () =>
        bundleFromSnapshot(
          { record: snapshot, dir: fromDir },
          dir,
          (annotations) => withSandboxNetwork(sandboxSpec(record, annotations), record, dir),
          signal,
          options,
        ),
      );
      // A copy's VM is cloned as any sandbox's is: it waits its turn with the creates.
      await this.startSlots.run(signal, () =>
        spans.step('container', () =>
          this.verbs.create(id, bundle, { cpus, memoryMiB }, signal, {
            dir: fromDir,
            cardMacs: snapshot.cardMacs,
          }),
        ),
      );
      await writeRecord(this.root, record);
    } catch (err) {
      await this.remove(id);
      throw err;
    }
    this.records.set(id, record);
    this.arm(record);
    return this.info(record);
  }

  /** A snapshot's files and template gone (whatever of them there is). */
  private async dropSnapshot(id: string): Promise<void> {
    await removeSnapshotTemplate(snapshotDir(this.root, id)).catch((err: unknown) =>
      log.error({ snapshot: id, err: messageOf(err) }, "removing a snapshot's template failed"),
    );
    await removeSnapshotDir(this.root, id);
  }

  /** How many sandboxes the server holds (live, or being killed): what its limit counts. */
  count(): number {
    return this.records.size;
  }

  /** A live sandbox's record, or ERR_NOT_FOUND. */
  record(id: string): SandboxRecord {
    const record = this.records.get(id);
    if (!record || this.killing.has(id)) {
      throw new HullError(
        'ERR_NOT_FOUND',
        `sandbox ${id} does not exist (or its time ran out): list them with GET /v1/sandboxes`,
      );
    }
    return record;
  }

  async info(record: SandboxRecord): Promise<SandboxInfo> {
    const {
      expiresAtMs,
      process: _process,
      internet: _internet,
      ports: _ports,
      paused,
      cpus,
      memoryMiB,
      ...rest
    } = record;
    return {
      ...rest,
      ...(cpus ? { cpus } : {}),
      ...(memoryMiB ? { memoryMiB } : {}),
      expiresAt: new Date(paused ? Date.now() + paused.remainingMs : expiresAtMs).toISOString(),
      status: paused ? 'paused' : (await this.verbs.running(record.sandboxId)) ? 'running' : 'stopped',
    };
  }

  /**
   * Pauses a sandbox to disk: its VM saved beside its disk (see snapshot/saved-vm.ts), its QEMU
   * and monitor ended, its time to live stopped. Pausing a paused sandbox changes nothing.
   */
  async pause(id: string): Promise<SandboxInfo> {
    return this.oneAtATime(id, async () => {
      const record = this.record(id);
      if (record.paused) return this.info(record);
      if (!(await this.verbs.running(id))) {
        throw new HullError('ERR_STATE', `sandbox ${id} is not running: only a running sandbox is paused`);
      }
      const remainingMs = Math.max(0, record.expiresAtMs - Date.now());
      clearTimeout(this.timers.get(id));
      this.timers.delete(id);
      try {
        await this.verbs.save(id, savedDir(this.root, id), AbortSignal.timeout(PAUSE_TIMEOUT_MS));
      } catch (err) {
        this.arm(record);
        throw err;
      }
      record.paused = { at: new Date().toISOString(), remainingMs };
      await writeRecord(this.root, record);
      log.info({ sandbox: id }, 'sandbox paused to disk');
      return this.info(record);
    });
  }

  /**
   * Resumes a paused sandbox: a new monitor starts its VM from the saved state and takes up its
   * container. A state refused (damaged, foreign) or a VM that does not come back leaves it
   * paused, with one line. Resuming a running sandbox changes nothing.
   */
  async resume(id: string): Promise<SandboxInfo> {
    return this.oneAtATime(id, async () => {
      const record = this.record(id);
      if (!record.paused) return this.info(record);
      const dir = sandboxDir(this.root, id);
      await this.verbs.resume(
        id,
        join(dir, 'bundle'),
        savedDir(this.root, id),
        AbortSignal.timeout(PAUSE_TIMEOUT_MS),
      );
      record.expiresAtMs = Date.now() + record.paused.remainingMs;
      record.paused = undefined;
      await writeRecord(this.root, record);
      this.arm(record);
      log.info({ sandbox: id }, 'sandbox resumed');
      return this.info(record);
    });
  }

  /** Pause and resume of one sandbox, one after the other. */
  private oneAtATime<T>(id: string, act: () => Promise<T>): Promise<T> {
    const before = this.pausing.get(id) ?? Promise.resolve();
    const next = before.catch(() => {}).then(act);
    const settled = next.then(
      () => {},
      () => {},
    );
    this.pausing.set(id, settled);
    void settled.then(() => {
      if (this.pausing.get(id) === settled) this.pausing.delete(id);
    });
    return next;
  }

  /** A base URL on the host reaching `port` of the sandbox, made on the first request. */
  async portUrl(id: string, port: number): Promise<string> {
    const record = this.record(id);
    if (!record.internet) throw noNetwork(id);
    const url = await this.networks.ports.url(record, port);
    // Killed meanwhile: its listeners were closed before this one was made.
    if (this.killing.has(id) || !this.records.has(id)) {
      this.networks.ports.closeAll(id);
      throw new HullError('ERR_NOT_FOUND', `sandbox ${id} was killed while its port was being opened`);
    }
    await writeRecord(this.root, record);
    return url;
  }

  /** Live sandboxes whose metadata has every pair of `metadata`. */
  async list(metadata: Record<string, string> = {}): Promise<SandboxInfo[]> {
    const matching = [...this.records.values()].filter(
      (r) =>
        !this.killing.has(r.sandboxId) && Object.entries(metadata).every(([k, v]) => r.metadata[k] === v),
    );
    const infos = await Promise.all(matching.map((r) => this.info(r)));
    return infos.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async setTimeout(id: string, timeoutMs: number): Promise<SandboxInfo> {
    const record = this.record(id);
    record.expiresAtMs = Date.now() + timeoutMs;
    // Paused, its time starts running when it is resumed.
    if (record.paused) record.paused.remainingMs = timeoutMs;
    await writeRecord(this.root, record);
    if (!record.paused) this.arm(record);
    return this.info(record);
  }

  /** Kills a sandbox and removes everything of it; a second kill waits for the first. */
  kill(id: string): Promise<void> {
    let killing = this.killing.get(id);
    if (!killing) {
      clearTimeout(this.timers.get(id));
      this.timers.delete(id);
      killing = this.remove(id).finally(() => {
        this.records.delete(id);
        this.killing.delete(id);
      });
      this.killing.set(id, killing);
    }
    return killing;
  }

  /** Digests of the images live sandboxes were made from (kept by an image prune). */
  digestsInUse(): Set<string> {
    return new Set([...this.records.values(), ...this.snapshots.values()].map((r) => r.imageDigest));
  }

  /** Stops the timers (the server is closing); the sandboxes live on. */
  close(): void {
    this.networks.close();
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private arm(record: SandboxRecord): void {
    clearTimeout(this.timers.get(record.sandboxId));
    const delay = Math.max(0, Math.min(record.expiresAtMs - Date.now(), MAX_TIMER_MS));
    const timer = setTimeout(() => {
      if (record.expiresAtMs > Date.now()) return this.arm(record);
      log.info({ sandbox: record.sandboxId }, 'time to live over: killing the sandbox');
      this.kill(record.sandboxId).catch((err: unknown) =>
        log.error({ sandbox: record.sandboxId, err: messageOf(err) }, 'killing an expired sandbox failed'),
      );
    }, delay);
    timer.unref();
    this.timers.set(record.sandboxId, timer);
  }

  private async remove(id: string): Promise<void> {
    await this.verbs.delete(id, AbortSignal.timeout(60_000));
    // After the VM: the namespace is the container's until it is deleted.
    await this.networks.detach(id, this.records.get(id)?.internet?.bridge);
    await removeSandboxDir(this.root, id);
  }
}
