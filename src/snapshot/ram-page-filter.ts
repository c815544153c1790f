import { HullError } from '../errors.js';

/**
 * A parser of QEMU 7.2's migration stream that drops the RAM page records of one RAM block
 * for pages the receiver already holds (see template-pages.ts: a fork's copy maps the same
 * sealed template memory its parent does, so a page the parent never wrote is there already).
 *
 * Only what the filter must understand is parsed (QEMU 7.2 migration/savevm.c, ram.c):
 *
 *   stream   := be32 magic "QEVM", be32 version 3, CONFIGURATION?, section*
 *   CONFIGURATION := 0x07, be32 length, machine name        (refused if subsections follow)
 *   START    := 0x01, be32 section id, u8 length, idstr, be32 instance, be32 version, body, footer
 *   PART/END := 0x02/0x03, be32 section id, body, footer
 *   footer   := 0x7e, be32 section id
 *   body     := record* ending with one whose flags are EOS
 *   record   := be64 (offset | flags), then by flags:
 *     MEM_SIZE 0x04 (setup only): the offset is the RAM's total size, then per RAM block
 *                                 u8 length, idstr, be64 used length, until the total is reached
 *     ZERO 0x02 / PAGE 0x08:      unless CONTINUE 0x20, u8 length + idstr of the block; then one
 *                                 fill byte (ZERO) or one 4 KiB page (PAGE)
 *     EOS 0x10:                   nothing
 *
 * The only iterative section it accepts is "ram" (block migration, dirty bitmaps, postcopy,
 * XBZRLE and compression are never turned on by hull). Once the RAM section's END is through,
 * the rest (device sections, which carry no length prefix) passes verbatim.
 *
 * Anything else is refused: before the first record is dropped the filter simply stops
 * filtering (everything it passed so far was verbatim, so the stream stays whole); after, the
 * stream cannot be made whole again and the filter fails. The input comes from a VMM running
 * a hostile guest: every length is bounded, and what is held between chunks is at most one
 * record (a page, or the setup's block list), never more.
 */

const QEMU_MAGIC = 0x5145564d;
const QEMU_VERSION = 3;
const SECTION_START = 0x01;
const SECTION_PART = 0x02;
const SECTION_END = 0x03;
const SUBSECTION = 0x05;
const CONFIGURATION = 0x07;
const SECTION_FOOTER = 0x7e;

const FLAG_ZERO = 0x02;
const FLAG_MEM_SIZE = 0x04;
const FLAG_PAGE = 0x08;
const FLAG_EOS = 0x10;
const FLAG_CONTINUE = 0x20;
/** The flags are the offset's low bits, below the target page size. */
const FLAG_BITS = 0xfff;

/** x86-64's (and this filter's only) target page: larger ones add a configuration subsection. */
export const TARGET_PAGE_BYTES = 4096;
const MAX_MACHINE_NAME_BYTES = 256;
/** microvm has five RAM blocks; a list longer than this is no VM hull starts. */
const MAX_RAM_BLOCKS = 64;
/** The longest unit read whole: the block list (a page record is 4 KiB and a name). */
const MAX_UNIT_BYTES = 8 + MAX_RAM_BLOCKS * (1 + 255 + 8);

/** Which pages of one RAM block to send (the rest the receiver has already). */
export interface PageFilterPlan {
  /** The RAM block's name in the stream (the memory backend's id). */
  block: string;
  /** Its length: the stream's block list must say the same, or nothing is dropped. */
  blockBytes: number;
  /** Whether page `index` of the block must be sent (its sender wrote it). */
  mustSend(index: number): boolean;
}

export interface PageFilterCounts {
  bytesIn: number;
  bytesOut: number;
  pagesSent: number;
  pagesDropped: number;
  /** Why the filter stopped filtering and passed the stream on as it came, if it did. */
  passedThrough?: string;
}

/** How a unit changes what the receiver gets; the rest of the input goes on verbatim. */
interface Edit {
  /** Leaves input bytes [start, end) out. */
  drop(start: number, end: number): void;
  /** Gives the receiver `bytes` before input byte `start`. */
  insert(start: number, bytes: Buffer): void;
}

type Mode = 'header' | 'top' | 'ram' | 'footer' | 'through';

/** Not enough bytes yet for the unit being read: wait for the next chunk. */
const MORE = Symbol('more');

/** A refusal of what the stream holds: passing it on verbatim from there is still possible. */
class Unexpected extends Error {}

export class RamPageFilter {
  readonly counts: PageFilterCounts = { bytesIn: 0, bytesOut: 0, pagesSent: 0, pagesDropped: 0 };
  private mode: Mode = 'header';
  /** Unconsumed input: starts at a unit boundary, at most one unit plus the newest chunk. */
  private held: Buffer = Buffer.alloc(0);
  private ramSection: number | undefined;
  private ramEnded = false;
  private blocks: Set<string> | undefined;
  /** The block of the last record the sender named (what its CONTINUE records mean). */
  private sentBlock: string | undefined;
  /** The block the receiver last read a name for (what a CONTINUE it reads will mean). */
  private receivedBlock: string | undefined;

  constructor(private readonly plan: PageFilterPlan) {}

  /**
   * Parses `chunk` and gives `emit` what the receiver gets, in order (slices of the input
   * where kept verbatim). Throws a HullError when the stream cannot be filtered any more.
   */
  push(chunk: Buffer, emit: (bytes: Buffer) => void): void {
    this.counts.bytesIn += chunk.length;
    const out = (bytes: Buffer) => {
      if (bytes.length === 0) return;
      this.counts.bytesOut += bytes.length;
      emit(bytes);
    };
    if (this.passing()) {
      out(chunk);
      return;
    }
    let from = 0;
    if (this.held.length > 0) {
      // The held unit is finished from the chunk's first bytes (no unit is longer than
      // MAX_UNIT_BYTES), so the chunk itself is parsed where it is, never copied whole.
      const head = Buffer.concat([this.held, chunk.subarray(0, MAX_UNIT_BYTES)]);
      const heldBytes = this.held.length;
      const at = this.parse(head, 0, heldBytes, out);
      if (this.passing()) {
        out(chunk.subarray(head.length - heldBytes));
        this.held = Buffer.alloc(0);
        return;
      }
      if (at < heldBytes) {
        // Still short of a unit: only when the whole chunk was in the head.
        if (head.length - heldBytes < chunk.length)
          throw new HullError('ERR_INTERNAL', 'the migration stream filter lost its place');
        this.held = Buffer.from(head.subarray(at));
        return;
      }
      from = at - heldBytes;
    }
    const at = this.parse(chunk, from, chunk.length, out);
    // A copy: the rest of a big chunk is not kept alive by the few bytes held.
    this.held = this.passing() ? Buffer.alloc(0) : Buffer.from(chunk.subarray(at));
  }

  /**
   * Reads units of `buf` from `from` while one starts before `until`, emitting what is kept
   * (from `from` on); returns where the first unit not read starts. Once passing through, it
   * emits the rest of `buf`.
   */
  private parse(buf: Buffer, from: number, until: number, out: (bytes: Buffer) => void): number {
    let at = from;
    // Start of the bytes read but not yet emitted (kept verbatim, sent as one slice).
    let run = from;
    const edit: Edit = {
      drop(start, end) {
        out(buf.subarray(run, start));
        run = end;
      },
      insert(start, bytes) {
        out(buf.subarray(run, start));
        run = start;
        out(bytes);
      },
    };
    while (!this.passing() && at < until) {
      let next: number | typeof MORE;
      try {
        next = this.unit(buf, at, edit);
      } catch (err) {
        if (!(err instanceof Unexpected)) throw err;
        if (this.counts.pagesDropped > 0) {
          throw new HullError(
            'ERR_SAVED_STATE',
            `the VM's migration stream cannot be filtered: ${err.message} after pages were left out`,
          );
        }
        this.counts.passedThrough = err.message;
        this.mode = 'through';
        break;
      }
      if (next === MORE) break;
      at = next;
    }
    if (this.passing()) {
      out(buf.subarray(run));
      return buf.length;
    }
    out(buf.subarray(run, at));
    return at;
  }

  /** Input held between chunks (bounded: one record at most, see the top of this file). */
  get heldBytes(): number {
    return this.held.length;
  }

  /** Whether the rest of the stream goes through as it comes. */
  private passing(): boolean {
    return this.mode === 'through';
  }

  /** The stream ended: refuses one that ended inside the RAM's sections (a truncated save). */
  end(): void {
    if (this.mode === 'through' || this.counts.pagesDropped === 0) return;
    throw new HullError('ERR_SAVED_STATE', "the VM's migration stream ended before its RAM was all sent");
  }

  /**
   * Reads one unit at `at` (a header, a section's start, a record, a footer): returns where the
   * next begins, or MORE (then nothing of it was taken: it is read again with more bytes).
   */
  private unit(buf: Buffer, at: number, edit: Edit): number | typeof MORE {
    const have = buf.length - at;
    switch (this.mode) {
      case 'header': {
        if (have < 8) return MORE;
        if (buf.readUInt32BE(at) !== QEMU_MAGIC || buf.readUInt32BE(at + 4) !== QEMU_VERSION)
          throw new Unexpected('not a QEMU migration stream of version 3');
        this.mode = 'top';
        return at + 8;
      }
      case 'top':
        return this.section(buf, at);
      case 'footer': {
        if (have < 5) return MORE;
        if (buf.readUInt8(at) !== SECTION_FOOTER || buf.readUInt32BE(at + 1) !== this.ramSection)
          throw new Unexpected("the RAM section's footer is missing");
        this.mode = this.ramEnded ? 'through' : 'top';
        return at + 5;
      }
      case 'ram':
        return this.record(buf, at, edit);
      default:
        throw new Unexpected(`unexpected parser state ${this.mode}`);
    }
  }

  private section(buf: Buffer, at: number): number | typeof MORE {
    const have = buf.length - at;
    if (have < 1) return MORE;
    const kind = buf.readUInt8(at);
    if (kind === CONFIGURATION) {
      if (have < 5) return MORE;
      const length = buf.readUInt32BE(at + 1);
      if (length > MAX_MACHINE_NAME_BYTES) throw new Unexpected('a machine name too long');
      // The byte after it says whether subsections (capabilities, page size, uuid) follow.
      if (have < 5 + length + 1) return MORE;
      if (buf.readUInt8(at + 5 + length) === SUBSECTION)
        throw new Unexpected('a configuration with subsections');
      return at + 5 + length;
    }
    if (kind === SECTION_START) {
      if (have < 6) return MORE;
      const id = buf.readUInt32BE(at + 1);
      const length = buf.readUInt8(at + 5);
      if (have < 6 + length + 8) return MORE;
      const name = buf.toString('latin1', at + 6, at + 6 + length);
      if (name !== 'ram' || this.ramSection !== undefined)
        throw new Unexpected(`an iterative section ${JSON.stringify(name)}`);
      this.ramSection = id;
      this.enterRamSection();
      return at + 6 + length + 8;
    }
    if (kind === SECTION_PART || kind === SECTION_END) {
      if (have < 5) return MORE;
      if (buf.readUInt32BE(at + 1) !== this.ramSection || this.ramSection === undefined)
        throw new Unexpected('a section part that is not the RAM');
      this.ramEnded = kind === SECTION_END;
      this.enterRamSection();
      return at + 5;
    }
    throw new Unexpected(`section type 0x${kind.toString(16)} before the RAM's end`);
  }

  private enterRamSection(): void {
    this.mode = 'ram';
    // Whether a receiver remembers the last block across sections or not, a name it is given
    // again at the first kept record of a section is right either way.
    this.receivedBlock = undefined;
  }

  private record(buf: Buffer, at: number, edit: Edit): number | typeof MORE {
    const have = buf.length - at;
    if (have < 8) return MORE;
    const high = buf.readUInt32BE(at);
    const low = buf.readUInt32BE(at + 4);
    const flags = low & FLAG_BITS;
    const offset = high * 2 ** 32 + (low - flags);
    const kind = flags & ~FLAG_CONTINUE;
    if (kind === FLAG_EOS) {
      this.mode = 'footer';
      return at + 8;
    }
    if (kind === FLAG_MEM_SIZE) return this.blockList(buf, at, offset);
    if (kind !== FLAG_ZERO && kind !== FLAG_PAGE)
      throw new Unexpected(`RAM record flags 0x${flags.toString(16)}`);
    if (!this.blocks) throw new Unexpected('a page before the block list');
    let end = at + 8;
    let block: string;
    const named = (flags & FLAG_CONTINUE) === 0;
    if (named) {
      if (have < 9) return MORE;
      const length = buf.readUInt8(at + 8);
      end += 1 + length;
      if (buf.length < end) return MORE;
      block = buf.toString('latin1', at + 9, end);
      if (!this.blocks.has(block))
        throw new Unexpected(`a page of an unknown block ${JSON.stringify(block)}`);
    } else {
      if (this.sentBlock === undefined) throw new Unexpected('a CONTINUE record before any block');
      block = this.sentBlock;
    }
    const payload = kind === FLAG_ZERO ? 1 : TARGET_PAGE_BYTES;
    if (buf.length < end + payload) return MORE;
    this.sentBlock = block;
    if (kind === FLAG_ZERO && buf.readUInt8(end) !== 0)
      throw new Unexpected('a ZERO record with a fill byte');
    if (block === this.plan.block) {
      if (offset >= this.plan.blockBytes) throw new Unexpected('a page beyond its block');
      const index = offset / TARGET_PAGE_BYTES;
      if (!this.plan.mustSend(index)) {
        this.counts.pagesDropped += 1;
        edit.drop(at, end + payload);
        return end + payload;
      }
      this.counts.pagesSent += 1;
    }
    if (!named && this.receivedBlock !== block) {
      // The receiver's last named block is another (the record naming this one was dropped):
      // the same record, its block named again.
      const header = Buffer.from(buf.subarray(at, at + 8));
      header.writeUInt8(header.readUInt8(7) & ~FLAG_CONTINUE, 7);
      const name = Buffer.from(block, 'latin1');
      edit.insert(at, Buffer.concat([header, Buffer.of(name.length), name]));
      edit.drop(at, at + 8);
    }
    this.receivedBlock = block;
    return end + payload;
  }

  /** The setup's list of RAM blocks: read whole (bounded), the filtered block's length checked. */
  private blockList(buf: Buffer, at: number, total: number): number | typeof MORE {
    if (this.blocks) throw new Unexpected('a second block list');
    const blocks = new Map<string, number>();
    let sum = 0;
    let p = at + 8;
    while (sum < total) {
      if (blocks.size >= MAX_RAM_BLOCKS) throw new Unexpected('too many RAM blocks');
      if (buf.length < p + 1) return MORE;
      const length = buf.readUInt8(p);
      if (buf.length < p + 1 + length + 8) return MORE;
      const name = buf.toString('latin1', p + 1, p + 1 + length);
      const bytes = buf.readUInt32BE(p + 1 + length) * 2 ** 32 + buf.readUInt32BE(p + 5 + length);
      if (length === 0 || blocks.has(name)) throw new Unexpected('a malformed block list');
      blocks.set(name, bytes);
      sum += bytes;
      p += 1 + length + 8;
    }
    if (sum !== total) throw new Unexpected("the block list's sizes do not add up");
    if (blocks.get(this.plan.block) !== this.plan.blockBytes)
      throw new Unexpected(
        `block ${JSON.stringify(this.plan.block)} is ${blocks.get(this.plan.block) ?? 'missing'}, not ${this.plan.blockBytes} bytes`,
      );
    this.blocks = new Set(blocks.keys());
    return p;
  }
}
