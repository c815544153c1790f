import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentClient } from '../agent/client.js';
import { HullError, messageOf } from '../errors.js';
import { bootIdAddressText } from '../hypervisor/boot-id-address.js';
import type { Hypervisor, Vm, VmConfig } from '../hypervisor/hypervisor.js';
import { logger } from '../log.js';
import { withLock } from '../sys/lock.js';
import { buildTemplate, type TemplateBuild } from '../template/build.js';
import { type CloneSource, openCloneSource, templateConfigOf, templateKey } from '../template/clone.js';
import { liveTemplate, removeTemplate, type TemplateRecord, templatesDir } from '../template/store.js';
import { forkDisk, freezeDiskCopy } from './disks.js';
import { pauseRamFilter } from './pause-ram.js';
import { openPausedState } from './resume-base.js';
import { openCheckedState, readStateRecord, type SavedStateRecord, saveVmState } from './state-file.js';

const log = logger('snapshot');

/** A snapshot's frozen copy of its VM's writable disk, beside its state. */
export function snapshotDiskPath(dir: string): string {
  return join(dir, 'disk.raw');
}

/**
 * Running VMs saved to disk and started again: paused to disk and resumed, or snapshotted and
 * forked. The VM must be one a template mechanism could have made (its RAM a memory backend
 * of its own name, see command-line.ts templateSwitches): a sandbox cloned from a template.
 *
 *  - pause: the VM stops, its devices and RAM go to `<dir>/vm.state` (checked, see
 *    state-file.ts), and its VMM ends: a paused sandbox holds no memory and no CPU.
 *  - resume: a VMM started with `-incoming` from that file (the `restore` role), then the
 *    agent, reached again on the same port, is given the host's clock and fresh entropy.
 *  - snapshot: the same save, but the VM runs on. The file is made into a template (its RAM
 *    loaded into a held, sealed memfd; see template/build.ts `loadFrom`), which any number of
 *    forks clone copy-on-write exactly as sandboxes clone their templates: each fork gets fresh
 *    entropy, its clock, its hostname and its own cards' addresses from Sandbox.create.
 */
export interface SavableVm {
  vm: Vm;
  agent: AgentClient;
  /** The VM's configuration as it was started (Sandbox's vmConfigFor). */
  config: VmConfig;
  hypervisor: Hypervisor;
  /** The guest image's hash (part of what a saved VM must be started with again). */
  imageHash: string;
  /** Whether the VM was cloned from a template (a booted one's RAM has no name to save by). */
  cloned: boolean;
}

/** What a saved VM must be started with again: its template key (devices, sizes, image, VMM). */
export function savedShape(config: VmConfig, hypervisor: Hypervisor, imageHash: string): Promise<string> {
  return templateKey(templateConfigOf(config), hypervisor, imageHash);
}

/**
 * Saves a running VM into `dir` (made 0700 if missing). `resume: false` pauses it to disk (the
 * caller then stops its VMM); `resume: true` snapshots it and lets it run on.
 */
export async function saveRunningVm(
  target: SavableVm,
  dir: string,
  options: { resume: boolean },
  signal: AbortSignal,
): Promise<SavedStateRecord> {
  if (!target.cloned) {
    throw new HullError(
      'ERR_UNSUPPORTED',
      'this VM was booted, not cloned from a template, and hull saves only cloned VMs: turn templates on (HULL_TEMPLATE)',
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const disks = target.config.rootfsDisks;
  // A paused VM's disk stays its own; a snapshot's VM runs on and writes it: a frozen copy.
  const whileStopped =
    options.resume && disks ? () => freezeDiskCopy(disks.writable, snapshotDiskPath(dir), signal) : undefined;
  // A snapshot's copies make their own boot id (see hypervisor/qemu/boot-id.ts); a paused VM,
  // resumed, is the same sandbox and keeps its. A guest that cannot say (or stalls: the save
  // goes on without it) gives copies that keep a boot id it had read.
  const bootIdAddress = options.resume
    ? await target.agent.bootIdAddress(signal).catch((err: unknown) => {
        signal.throwIfAborted();
        log.warn(
          { err: messageOf(err) },
          "the guest did not say where its boot id is: its copies keep the parent's",
        );
        return undefined;
      })
    : undefined;
  const shape = await savedShape(target.config, target.hypervisor, target.imageHash);
  // Paused, only what the guest wrote over its template's memory is saved (pause-ram.ts); a
  // snapshot's state is made a template of its own (snapshotTemplate): it keeps its whole RAM.
  const ramFilter = options.resume
    ? undefined
    : await pauseRamFilter(
        { vmmPid: target.vm.pid, ramBytes: target.config.memoryMiB * 2 ** 20, key: shape, dir },
        signal,
      );
  return saveVmState(
    target.vm,
    dir,
    {
      vmm: await target.hypervisor.identity(),
      shape,
      memoryMiB: target.config.memoryMiB,
      ...(ramFilter ? { ramFilter } : {}),
      withMemory: true,
      streamIdsFrom: () => target.agent.streamIdsFrom,
      ...(bootIdAddress !== undefined ? { bootIdAddress: bootIdAddressText(bootIdAddress) } : {}),
      resume: options.resume,
      whileStopped,
    },
    signal,
  );
}

/**
 * Starts the VM saved in `dir` again, as `config` (the same VM, with its own directories,
 * taps and cgroup), and makes it its sandbox again: the guest's clock set to now and its RNG
 * reseeded (CreateSandbox, as for a clone). A state that fails its checks starts nothing; a
 * VMM that cannot load it is stopped: either way the error is one line and the state stays.
 */
export async function resumeSavedVm(
  config: VmConfig,
  dir: string,
  options: { hypervisor: Hypervisor; imageHash: string; sandboxId: string; hostname?: string },
  signal: AbortSignal,
): Promise<{ vm: Vm; agent: AgentClient; record: SavedStateRecord }> {
  const expect = {
    vmm: await options.hypervisor.identity(),
    shape: await savedShape(config, options.hypervisor, options.imageHash),
  };
  // A state saved over its template's memory loads over that again (resume-base.ts).
  const { record, role, close } = await openPausedState(dir, expect, undefined, 'it stays paused', signal);
  let vm: Vm | undefined;
  try {
    vm = await options.hypervisor.start({ ...config, template: role }, signal);
  } catch (err) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `the saved VM in ${dir} could not be resumed: ${messageOf(err)}; it stays paused`,
      { cause: err },
    );
  } finally {
    await close();
  }
  const agent = new AgentClient(vm.agentChannel, { firstStreamId: record.streamIdsFrom });
  try {
    await agent.waitReady(signal);
    await agent.createSandbox({ sandboxId: options.sandboxId, hostname: options.hostname ?? '' }, signal);
    return { vm, agent, record };
  } catch (err) {
    agent.close();
    await vm.stop();
    throw new HullError(
      'ERR_SAVED_STATE',
      `the resumed VM of ${dir} did not answer: ${messageOf(err)}; it stays paused`,
      { cause: err },
    );
  }
}

/**
 * The template of the VM saved in `dir` (a snapshot), made now if it is not live: its key is
 * the saved state's hash, so one saved state gives one template however many forks ask. After
 * a host restart (its memory no longer held) it is made again from the file.
 */
export async function snapshotTemplate(
  dir: string,
  config: VmConfig,
  options: Pick<TemplateBuild, 'hypervisor' | 'describe' | 'timeoutMs'>,
  signal: AbortSignal,
): Promise<TemplateRecord> {
  const expect = {
    vmm: await options.hypervisor.identity(),
    shape: await savedShape(config, options.hypervisor, options.describe.imageHash),
  };
  await mkdir(templatesDir(), { recursive: true, mode: 0o700 });
  const { file, record } = await openCheckedState(dir, expect, signal);
  try {
    const key = snapshotTemplateKeyOf(record);
    return await withLock(templatesDir(), signal, async () => {
      const live = await liveTemplate(key);
      if (live) return live;
      return buildTemplate({
        key,
        config: templateConfigOf(config),
        ...options,
        signal,
        loadFrom: { fd: file.fd, streamIdsFrom: record.streamIdsFrom },
      });
    });
  } finally {
    await file.close();
  }
}

function snapshotTemplateKeyOf(record: SavedStateRecord): string {
  return `snap-${record.sha256.slice(0, 16)}`;
}

/**
 * Removes the template made of the snapshot in `dir`, if one was (its held memory goes; the
 * forks running from it keep their own mappings of it).
 */
export async function removeSnapshotTemplate(dir: string): Promise<void> {
  const record = await readStateRecord(dir);
  if (record && !record.streamed) await removeTemplate(snapshotTemplateKeyOf(record));
}

/**
 * A fork's writable disk, made in `forkDir` from the snapshot in `snapshotDir` (see disks.ts):
 * what to give its VM as rootfsDisks, the image the parent's.
 */
export async function forkRootfsDisks(
  parent: NonNullable<VmConfig['rootfsDisks']>,
  snapshotDir: string,
  forkDir: string,
  signal: AbortSignal,
): Promise<NonNullable<VmConfig['rootfsDisks']>> {
  const writable = join(forkDir, 'disk.qcow2');
  await forkDisk(snapshotDiskPath(snapshotDir), writable, signal);
  return {
    image: parent.image,
    writable,
    writableBytes: parent.writableBytes,
    backing: snapshotDiskPath(snapshotDir),
  };
}

/** A fork's clone source (give it to Sandbox.create as `cloneSource`). */
export async function forkSource(
  template: TemplateRecord,
  config: VmConfig,
): Promise<{ source?: CloneSource; problem?: string }> {
  const opened = await openCloneSource(template, templateConfigOf(config));
  if (!opened.source) {
    throw new HullError(
      'ERR_SAVED_STATE',
      `cannot fork: ${opened.problem ?? 'the snapshot template is gone'}`,
    );
  }
  return { source: { ...opened.source, noBootInstead: true } };
}
