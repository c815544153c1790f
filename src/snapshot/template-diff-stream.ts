import { join } from 'node:path';
import { Transform } from 'node:stream';
import { messageOf } from '../errors.js';
import { logger } from '../log.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { readJsonRecordOrNone } from '../sys/regular-file.js';
import { type PageFilterCounts, type PageFilterPlan, RamPageFilter } from './ram-page-filter.js';
import {
  type MemoryIdentity,
  planFromPrivatePages,
  privatePagesOf,
  ramMappingOf,
  sameMemory,
} from './template-pages.js';

const log = logger('snapshot');

/**
 * A fork of one streams its parent's migration into its copy's VMM (state-stream.ts), whose
 * RAM is the sandboxes' template's memory mapped private with the stream loaded over it. When
 * the parent's RAM is a private mapping of that very memory, the parent's pages it never wrote
 * are the template's and the copy has them already: the stream leaves them out (see
 * template-pages.ts and ram-page-filter.ts), and the copy loads only what the parent wrote.
 *
 * The copy says which memory its base is in `stream-base.json` of the snapshot directory,
 * written before it opens its end of the stream; the parent reads it once its own end is open
 * (so after the copy wrote it, if it did). No file, another memory, or a parent whose RAM is
 * not a mapping of it: the stream goes through whole, as before.
 */
const BASE_FILE = 'stream-base.json';

/** The copy's side: the memory its VMM's RAM will be based on. */
export async function writeStreamBase(dir: string, base: MemoryIdentity): Promise<void> {
  await writeFileAtomic(join(dir, BASE_FILE), `${JSON.stringify(base)}\n`, { mode: 0o600 });
}

async function readStreamBase(dir: string): Promise<MemoryIdentity | undefined> {
  const base = (await readJsonRecordOrNone(join(dir, BASE_FILE), {
    maxBytes: 1024,
    why: 'it holds two numbers',
    code: 'ERR_SAVED_STATE',
    missing: 'is missing',
    noFollow: true,
  })) as Partial<MemoryIdentity> | undefined;
  const isNumber = (v: unknown) => typeof v === 'string' && /^\d{1,20}$/.test(v);
  return isNumber(base?.dev) && isNumber(base?.ino) ? { dev: base!.dev!, ino: base!.ino! } : undefined;
}

/**
 * The parent's side, between its VMM's migration and the FIFO: a Transform that, at the first
 * byte (the VM is stopped by then), works out which pages the copy needs and filters the
 * stream to those. `counts` says what went through once it has finished.
 */
export function templateDiffStream(parts: {
  dir: string;
  /** The parent's VMM process (hull's own child) and its RAM's size. */
  vmmPid: number;
  ramBytes: number;
  /** Opens the stream's write end: resolves once the copy has opened its end. */
  opened: () => Promise<void>;
  signal: AbortSignal;
}): PageFilterTransform {
  return pageFilterTransform(() => planFor(parts));
}

export type PageFilterTransform = Transform & { counts(): PageFilterCounts | undefined };

/**
 * A Transform that filters a migration stream by the plan `plan` gives, asked at the first
 * byte (the VM is stopped by then, so its page map holds still). No plan, or one that cannot
 * be made: the stream goes whole. `counts` says what went through once it has finished.
 */
export function pageFilterTransform(plan: () => Promise<PageFilterPlan | undefined>): PageFilterTransform {
  let filter: Promise<RamPageFilter | undefined> | undefined;
  const start = () => {
    filter ??= plan().then(
      (made) => made && new RamPageFilter(made),
      (err: unknown) => {
        log.warn(
          { err: messageOf(err) },
          "the VM's RAM pages could not be told apart: the stream goes whole",
        );
        return undefined;
      },
    );
    return filter;
  };
  let filtering: RamPageFilter | undefined;
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      start().then((f) => {
        filtering = f;
        if (!f) {
          done(null, chunk);
          return;
        }
        try {
          // One write of what a chunk keeps, not one per kept record.
          const kept: Buffer[] = [];
          f.push(chunk, (bytes) => kept.push(bytes));
          if (kept.length === 0) done();
          else done(null, kept.length === 1 ? kept[0] : Buffer.concat(kept));
        } catch (err) {
          done(err as Error);
        }
      }, done);
    },
    flush(done) {
      try {
        filtering?.end();
        done();
      } catch (err) {
        done(err as Error);
      }
    },
  });
  return Object.assign(stream, { counts: () => filtering?.counts });
}

async function planFor(parts: Parameters<typeof templateDiffStream>[0]): Promise<PageFilterPlan | undefined> {
  // The VM is stopped by its first byte: its pages are read while the copy opens its end.
  const pages = (async () => {
    const mapping = await ramMappingOf(parts.vmmPid, parts.ramBytes);
    return mapping && { mapping, bits: await privatePagesOf(parts.vmmPid, mapping, parts.signal) };
  })();
  pages.catch(() => {});
  await parts.opened();
  const base = await readStreamBase(parts.dir);
  const parent = await pages;
  if (!base || !parent || !sameMemory(parent.mapping.memory, base)) return undefined;
  return planFromPrivatePages(parent.bits, parent.mapping.bytes);
}
