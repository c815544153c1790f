import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { messageOf } from '../errors.js';
import type { Hypervisor, VmConfig, VmTemplateRole } from '../hypervisor/hypervisor.js';
import { logger } from '../log.js';
import { withLock } from '../sys/lock.js';
import { buildTemplate, type TemplateBuild } from './build.js';
import { heldMemoryPath } from './memory.js';
import {
  liveTemplate,
  removeOutdatedTemplates,
  removeTemplate,
  stateFile,
  type TemplateRecord,
  templatesDir,
} from './store.js';

/**
 * The MAC address of a template's network card `index`. A clone's cards keep the addresses
 * they had when the template was saved, whatever its command line says; the agent finds each
 * by this address and gives it its interface's own (see proto NetworkInterface.card_mac).
 */
export function templateCardMac(index: number): string {
  return `02:68:75:6c:6c:${index.toString(16).padStart(2, '0')}`;
}

/**
 * The VM a sandbox's template boots: the sandbox's own, less what is its alone (name, files,
 * cgroup, its taps and addresses, its root disks and their size). Its network cards have no
 * backend: each clone attaches its own taps to them. Root disks are there or not; the
 * template boots with placeholders of them (see build.ts), whatever image and size its
 * clones have.
 */
export function templateConfigOf(config: VmConfig): Omit<VmConfig, 'id' | 'runDir' | 'shareDir'> {
  const {
    id: _id,
    runDir: _runDir,
    shareDir: _shareDir,
    hostCgroup: _cgroup,
    template: _role,
    ...shape
  } = config;
  return {
    ...shape,
    rootfsDisks: config.rootfsDisks && { image: '', writable: '', writableBytes: 0 },
    network: config.network && {
      netns: '',
      vhost: false,
      nics: config.network.nics.map((_, index) => ({ tap: '', mac: templateCardMac(index) })),
    },
  };
}

/** The key of the template a VM can be cloned from: everything its clones share with it. */
export async function templateKey(
  config: Omit<VmConfig, 'id' | 'runDir' | 'shareDir'>,
  hypervisor: Hypervisor,
  imageHash: string,
): Promise<string> {
  const shape = await hypervisor.templateShape({
    ...config,
    id: '',
    runDir: '',
    shareDir: '',
    template: { role: 'template', memoryFd: 0, stateFd: 0 },
  });
  return createHash('sha256').update(`image ${imageHash}\n${shape}\n`).digest('hex').slice(0, 16);
}

/** What a VM is cloned from: its template's memory and state, open for the VMM to inherit. */
export interface CloneSource {
  key: string;
  role: VmTemplateRole;
  /** The MAC address each network card has in a clone (its template's). */
  cardMacs: string[];
  /**
   * Where a clone's agent client starts its stream ids, when the template is a saved running
   * VM whose agent saw ids that high (see src/snapshot/); else above a template's boot.
   */
  streamIdsFrom?: number;
  /** A clone that cannot start fails its sandbox rather than booting it (a fork). */
  noBootInstead?: boolean;
  /**
   * The VM is the sandbox's own, paused to disk and resumed (see snapshot/resume-source.ts):
   * its guest already has its network set up and its container running.
   */
  resumed?: boolean;
  /**
   * Runs once the VMM has loaded the state, before the agent is spoken to (a streamed fork
   * learns its `streamIdsFrom` then: the parent says it once its stream is sent).
   */
  loaded?(signal: AbortSignal): Promise<void>;
  /** Closes this process's descriptors once the VMM has its own. */
  close(): Promise<void>;
  /** The template cannot be used (`why`): it goes, and the next start makes it again. */
  discard(why: string): Promise<void>;
}

export interface CloneOptions {
  hypervisor: Hypervisor;
  /** What the template is made for: its image's hash is part of its key. */
  describe: TemplateBuild['describe'];
  /** How long making a template may take (a guest boot). */
  buildTimeoutMs: number;
  signal: AbortSignal;
}

function failedMarker(key: string): string {
  return join(templatesDir(), `${key}.failed`);
}

/** Why the template of `key` could not be made, if the last try failed. */
export function failedTemplateBuild(key: string): Promise<string | undefined> {
  return readFile(failedMarker(key), 'utf8').catch(() => undefined);
}

/**
 * The template to clone `config` from: the live one of its key, or one made now, once, under
 * a lock (concurrent starts make it once). A template that cannot be made is recorded, so
 * starts do not pay for it again (`hull template build` tries afresh), and gives `problem`,
 * the one notice, instead: the caller boots cold.
 */
export async function cloneSourceFor(
  config: VmConfig,
  options: CloneOptions,
): Promise<{ source?: CloneSource; problem?: string }> {
  const templateConfig = templateConfigOf(config);
  const key = await templateKey(templateConfig, options.hypervisor, options.describe.imageHash);
  let record = await liveTemplate(key);
  if (!record) {
    if ((await failedTemplateBuild(key)) !== undefined) return {};
    try {
      record = await ensureTemplate(key, templateConfig, options);
    } catch (err) {
      if (options.signal.aborted) throw err;
      await mkdir(templatesDir(), { recursive: true });
      await writeFile(failedMarker(key), messageOf(err));
      return {
        problem: `hull: notice: no VM template for this sandbox's size (${messageOf(err)}); sandboxes boot instead, slower: \`hull template build\` tries again`,
      };
    }
  }
  return openCloneSource(record, templateConfig);
}

/**
 * The clone source of the live template of `config`'s shape, if one is live: never made now
 * (a saved VM loaded over its memory does not wait for a boot to make one; see
 * VmTemplateRole.withRam).
 */
export async function liveCloneSource(
  config: VmConfig,
  options: Pick<CloneOptions, 'hypervisor' | 'describe'>,
): Promise<CloneSource | undefined> {
  const templateConfig = templateConfigOf(config);
  const record = await liveTemplate(
    await templateKey(templateConfig, options.hypervisor, options.describe.imageHash),
  );
  return record ? (await openCloneSource(record, templateConfig)).source : undefined;
}

/** The one notice of a template that could not be restored, which is then removed. */
export function restoreFailedNotice(key: string, why: string): string {
  return `hull: notice: the VM template ${key} could not be restored (${why}); this sandbox booted instead, and the next start makes the template again`;
}

/** The live template of `key`, made now if there is none. */
export async function ensureTemplate(
  key: string,
  templateConfig: Omit<VmConfig, 'id' | 'runDir' | 'shareDir'>,
  options: CloneOptions,
): Promise<TemplateRecord> {
  await mkdir(templatesDir(), { recursive: true, mode: 0o700 });
  return withLock(templatesDir(), options.signal, async () => {
    const live = await liveTemplate(key);
    if (live) return live;
    const record = await buildTemplate({
      key,
      config: templateConfig,
      hypervisor: options.hypervisor,
      describe: options.describe,
      timeoutMs: options.buildTimeoutMs,
      signal: options.signal,
    });
    await rm(failedMarker(key), { force: true });
    const outdated = await removeOutdatedTemplates(record);
    if (outdated.length)
      logger('template').info({ removed: outdated }, 'removed templates of an earlier image or QEMU');
    return record;
  });
}

export async function openCloneSource(
  seen: TemplateRecord,
  templateConfig: Omit<VmConfig, 'id' | 'runDir' | 'shareDir'>,
): Promise<{ source?: CloneSource; problem?: string }> {
  let record = seen;
  let memoryPath = await heldMemoryPath(record.key, record.memory);
  if (!memoryPath) {
    // Its holder may have just been replaced by another (see rehomeTemplateHolders).
    const now = await liveTemplate(record.key);
    if (now && now.memory.pid !== record.memory.pid) {
      record = now;
      memoryPath = await heldMemoryPath(record.key, record.memory);
    }
  }
  // Read-only here; the clone's VMM reopens it to map it private, which the seal allows.
  const memory = memoryPath ? await open(memoryPath, 'r').catch(() => undefined) : undefined;
  const state = await open(stateFile(record.key), 'r').catch((err: NodeJS.ErrnoException) => err);
  const close = async () => {
    await memory?.close();
    if (!(state instanceof Error)) await state.close();
  };
  if (!memory || state instanceof Error) {
    await close();
    await removeTemplate(record.key);
    const why = memory
      ? `its state file: ${state instanceof Error ? state.code : ''}`
      : 'its memory is no longer held';
    return { problem: restoreFailedNotice(record.key, why) };
  }
  const source: CloneSource = {
    key: record.key,
    role: { role: 'clone', memoryFd: memory.fd, stateFd: state.fd },
    cardMacs: templateConfig.network?.nics.map((nic) => nic.mac) ?? [],
    streamIdsFrom: record.streamIdsFrom,
    close,
    discard: async (why) => {
      logger('template').warn({ key: record.key, why }, 'removing the template');
      await removeTemplate(record.key);
    },
  };
  return { source };
}
