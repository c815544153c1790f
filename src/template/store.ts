import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { stateDir } from '../paths.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { type HeldMemory, heldMemoryBytes, heldMemoryPath, releaseHeldMemory } from './memory.js';

/**
 * The template store: one directory per template under the state directory,
 *
 *   <state>/templates/<key>/template.json   what it was made for, its holder, when, how long
 *   <state>/templates/<key>/state           its saved device state (its memory is the holder's)
 *
 * A template is live while the holder recorded still holds its memory; after a host reboot (or
 * `hull template rm`) the record is stale and the next start makes the template again.
 */
export interface TemplateRecord {
  key: string;
  /** What a user tells templates apart by (`hull template list`). */
  vcpus: number;
  memoryMiB: number;
  nics: number;
  accel: string;
  cpuModel: string;
  imageHash: string;
  /** The VMM binary it was made with (Hypervisor.identity). */
  vmm: string;
  memory: HeldMemory;
  builtAt: string;
  buildMs: number;
  stateBytes: number;
  /** A template made from a saved running VM: where its clones' agent clients start ids. */
  streamIdsFrom?: number;
}

export function templatesDir(): string {
  return join(stateDir(), 'templates');
}

export function templateDir(key: string): string {
  return join(templatesDir(), key);
}

export function stateFile(key: string): string {
  return join(templateDir(key), 'state');
}

function recordFile(key: string): string {
  return join(templateDir(key), 'template.json');
}

export async function readRecord(key: string): Promise<TemplateRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordFile(key), 'utf8')) as TemplateRecord;
  } catch {
    return undefined;
  }
}

/** Writes the record last, atomically: a template without one is not there. */
export async function writeRecord(record: TemplateRecord): Promise<void> {
  await writeFileAtomic(recordFile(record.key), `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

/** The template of `key` if it can be cloned now: recorded, and its memory still held. */
export async function liveTemplate(key: string): Promise<TemplateRecord | undefined> {
  const record = await readRecord(key);
  return record && (await heldMemoryPath(key, record.memory)) ? record : undefined;
}

export interface ListedTemplate extends TemplateRecord {
  live: boolean;
  /** What its memory costs the host now (pages held), when live. */
  residentBytes?: number;
}

export async function listTemplates(): Promise<ListedTemplate[]> {
  const keys = await readdir(templatesDir()).catch(() => [] as string[]);
  const listed: ListedTemplate[] = [];
  for (const key of keys) {
    const record = await readRecord(key);
    if (!record) continue;
    const residentBytes = await heldMemoryBytes(key, record.memory);
    listed.push({ ...record, live: residentBytes !== undefined, residentBytes });
  }
  return listed.sort((a, b) => a.builtAt.localeCompare(b.builtAt));
}

/** Makes the directory of a template about to be built (an old one's files go first). */
export async function prepareTemplateDir(key: string): Promise<void> {
  await removeTemplate(key);
  await mkdir(templateDir(key), { recursive: true, mode: 0o700 });
}

/**
 * Removes a template: its holder ends (its memory is freed once no clone maps it any more;
 * running clones keep theirs) and its files go. Absent is fine.
 */
export async function removeTemplate(key: string): Promise<void> {
  const record = await readRecord(key);
  if (record) await releaseHeldMemory(key, record.memory);
  await rm(templateDir(key), { recursive: true, force: true });
}

/**
 * Removes the templates made for another image or VMM than the current ones: no start can
 * use them again, and each holds a booted guest's memory.
 */
export async function removeOutdatedTemplates(current: {
  imageHash: string;
  vmm: string;
}): Promise<string[]> {
  const removed: string[] = [];
  for (const template of await listTemplates()) {
    if (template.imageHash !== current.imageHash || template.vmm !== current.vmm) {
      await removeTemplate(template.key);
      removed.push(template.key);
    }
  }
  return removed;
}
