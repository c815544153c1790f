import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { type PageFilterPlan, RamPageFilter } from './ram-page-filter.js';

// Streams built by hand in QEMU 7.2's layout (see ram-page-filter.ts), and a receiver that
// loads them the way QEMU's ram_load does, to check what the filtered stream gives a copy.

const PAGE = 4096;
const RAM_PAGES = 16;
const BIOS_PAGES = 2;

const be32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const be64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(n / 2 ** 32));
  b.writeUInt32BE(n % 2 ** 32, 4);
  return b;
};
const named = (name: string) => Buffer.concat([Buffer.of(name.length), Buffer.from(name, 'latin1')]);

const HEADER = Buffer.concat([be32(0x5145564d), be32(3)]);
const CONFIG = Buffer.concat([Buffer.of(0x07), be32(7), Buffer.from('microvm')]);
const RAM_ID = 2;
const start = () => Buffer.concat([Buffer.of(0x01), be32(RAM_ID), named('ram'), be32(0), be32(4)]);
const part = () => Buffer.concat([Buffer.of(0x02), be32(RAM_ID)]);
const end = () => Buffer.concat([Buffer.of(0x03), be32(RAM_ID)]);
const footer = () => Buffer.concat([Buffer.of(0x7e), be32(RAM_ID)]);
const eos = () => be64(0x10);
const memSize = () =>
  Buffer.concat([
    be64((RAM_PAGES + BIOS_PAGES) * PAGE + 0x04),
    named('ram'),
    be64(RAM_PAGES * PAGE),
    named('pc.bios'),
    be64(BIOS_PAGES * PAGE),
  ]);
/** A device section after the RAM: bytes that look like anything (it is passed verbatim). */
const DEVICES = Buffer.concat([
  Buffer.of(0x04),
  be32(3),
  named('dev'),
  be32(0),
  be32(1),
  be64(0x08),
  Buffer.of(0x00),
]);

/** A page record: named unless `sameBlock` (CONTINUE), PAGE with `bytes` or ZERO when all zero. */
function pageRecord(block: string, index: number, bytes: Buffer, sameBlock: boolean): Buffer {
  const zero = bytes.every((b) => b === 0);
  const flags = (zero ? 0x02 : 0x08) | (sameBlock ? 0x20 : 0);
  return Buffer.concat([
    be64(index * PAGE + flags),
    sameBlock ? Buffer.alloc(0) : named(block),
    zero ? Buffer.of(0) : bytes,
  ]);
}

function pageOf(seed: number): Buffer {
  return Buffer.alloc(PAGE, seed % 251);
}

/**
 * A parent's memory (template pages where it never wrote) and its save: the setup, then the
 * pages in two parts (bios first in each, so CONTINUE records follow a block change), then END.
 */
function scenario(written: Set<number>) {
  const template = Array.from({ length: RAM_PAGES }, (_, i) =>
    i % 3 === 0 ? Buffer.alloc(PAGE) : pageOf(i + 1),
  );
  const parent = template.map((page, i) =>
    written.has(i) ? (i % 4 === 0 ? Buffer.alloc(PAGE) : pageOf(100 + i)) : page,
  );
  const bios = [pageOf(7), pageOf(8)];
  const records: Buffer[] = [HEADER, CONFIG, start(), memSize(), eos(), footer()];
  const half = RAM_PAGES / 2;
  for (const [from, to, header] of [
    [0, half, part()],
    [half, RAM_PAGES, end()],
  ] as const) {
    records.push(header, pageRecord('pc.bios', from === 0 ? 0 : 1, bios[from === 0 ? 0 : 1]!, false));
    for (let i = from; i < to; i++) records.push(pageRecord('ram', i, parent[i]!, i !== from));
    records.push(eos(), footer());
  }
  records.push(DEVICES, Buffer.of(0x00));
  const plan: PageFilterPlan = {
    block: 'ram',
    blockBytes: RAM_PAGES * PAGE,
    mustSend: (i) => written.has(i),
  };
  return { template, parent, bios, stream: Buffer.concat(records), plan };
}

/** Loads a stream over `ram` (and a bios) as QEMU does; returns the bytes after the RAM's END. */
function load(stream: Buffer, ram: Buffer[]): { ram: Buffer[]; bios: Buffer[]; rest: Buffer } {
  const memory = { ram: ram.map((p) => Buffer.from(p)), bios: [Buffer.alloc(PAGE), Buffer.alloc(PAGE)] };
  let at = 8 + CONFIG.length;
  let last: 'ram' | 'pc.bios' | undefined;
  for (;;) {
    const kind = stream.readUInt8(at);
    at += kind === 0x01 ? 1 + 4 + 4 + 4 + 4 : 5;
    for (;;) {
      const flags = stream.readUInt32BE(at + 4) & 0xfff;
      const offset = stream.readUInt32BE(at + 4) - flags;
      at += 8;
      if (flags === 0x10) break;
      if (flags === 0x04) {
        at += 4 + 8 + 8 + 8;
        continue;
      }
      if (!(flags & 0x20)) {
        const length = stream.readUInt8(at);
        last = stream.toString('latin1', at + 1, at + 1 + length) as typeof last;
        at += 1 + length;
      }
      assert.ok(last, 'a CONTINUE record before any block');
      const pages = last === 'ram' ? memory.ram : memory.bios;
      const page = offset / PAGE;
      if ((flags & ~0x20) === 0x02) {
        pages[page]!.fill(0);
        at += 1;
      } else {
        stream.copy(pages[page]!, 0, at, at + PAGE);
        at += PAGE;
      }
    }
    at += 5;
    if (kind === 0x03) return { ...memory, rest: stream.subarray(at) };
  }
}

/** Runs the filter over `stream` cut into chunks of the given sizes (cycled). */
function filtered(stream: Buffer, plan: PageFilterPlan, sizes: number[] = [stream.length]) {
  const filter = new RamPageFilter(plan);
  const out: Buffer[] = [];
  let maxHeld = 0;
  for (let at = 0, i = 0; at < stream.length; i++) {
    const size = Math.max(1, sizes[i % sizes.length]!);
    filter.push(stream.subarray(at, at + size), (b) => out.push(Buffer.from(b)));
    maxHeld = Math.max(maxHeld, filter.heldBytes);
    at += size;
  }
  filter.end();
  return { bytes: Buffer.concat(out), counts: filter.counts, maxHeld };
}

const WRITTEN = new Set([1, 2, 4, 9, 10, 15]);

test('a copy loading the filtered stream over the template gets exactly the parent memory', () => {
  const s = scenario(WRITTEN);
  const { bytes, counts } = filtered(s.stream, s.plan);
  const loaded = load(bytes, s.template);
  assert.deepEqual(loaded.ram, s.parent);
  assert.deepEqual(loaded.bios, s.bios);
  assert.deepEqual(loaded.rest, Buffer.concat([DEVICES, Buffer.of(0)]));
  assert.equal(counts.pagesSent, WRITTEN.size);
  assert.equal(counts.pagesDropped, RAM_PAGES - WRITTEN.size);
  // Six of the ten dropped pages are not zero in the template: full pages left out.
  assert.ok(bytes.length <= s.stream.length - 6 * PAGE, `${bytes.length} of ${s.stream.length} bytes`);
  assert.equal(counts.bytesOut, bytes.length);
  assert.equal(counts.passedThrough, undefined);
});

test('the same output however the stream is cut into chunks (records split anywhere)', () => {
  const s = scenario(WRITTEN);
  const whole = filtered(s.stream, s.plan).bytes;
  for (const sizes of [[1], [2, 3], [4095, 1, 4097], [7, 8, 9, 4096], [17000, 20001], [65536]]) {
    const cut = filtered(s.stream, s.plan, sizes);
    assert.deepEqual(cut.bytes, whole, `chunks of ${sizes.join(',')}`);
    assert.ok(cut.maxHeld <= 2 * PAGE + 64, `held ${cut.maxHeld} bytes`);
  }
});

test('a page after a dropped one that named its block gets the name back', () => {
  // Page 0 (named, after the bios page) is dropped; page 1 (CONTINUE) is kept: without its
  // name the receiver would write it into the bios.
  const s = scenario(new Set([1]));
  const { bytes } = filtered(s.stream, s.plan);
  const loaded = load(bytes, s.template);
  assert.deepEqual(loaded.ram, s.parent);
  assert.deepEqual(loaded.bios, s.bios);
});

test('nothing written: only the setup, bios pages and devices go', () => {
  const s = scenario(new Set());
  const { bytes, counts } = filtered(s.stream, s.plan);
  assert.equal(counts.pagesSent, 0);
  assert.deepEqual(load(bytes, s.template).ram, s.template);
});

test('all written: the stream goes whole', () => {
  const all = new Set(Array.from({ length: RAM_PAGES }, (_, i) => i));
  const s = scenario(all);
  assert.deepEqual(filtered(s.stream, s.plan).bytes, s.stream);
});

test('what it does not know before any drop, it passes on verbatim', () => {
  const s = scenario(WRITTEN);
  const cases: [string, Buffer][] = [
    ['not QEMU', Buffer.concat([Buffer.from('GARBAGE!'), s.stream.subarray(8)])],
    [
      'configuration subsections',
      Buffer.concat([
        HEADER,
        CONFIG,
        Buffer.of(0x05),
        named('configuration/capabilities'),
        s.stream.subarray(8 + CONFIG.length),
      ]),
    ],
    [
      'another iterative section',
      Buffer.concat([
        HEADER,
        CONFIG,
        Buffer.of(0x01),
        be32(9),
        named('block'),
        s.stream.subarray(8 + CONFIG.length),
      ]),
    ],
    [
      'XBZRLE',
      Buffer.concat([
        HEADER,
        CONFIG,
        start(),
        be64(0x40),
        s.stream.subarray(8 + CONFIG.length + start().length),
      ]),
    ],
    ['another block size', Buffer.from(s.stream)],
  ];
  const plans = [s.plan, s.plan, s.plan, s.plan, { ...s.plan, blockBytes: 8 * PAGE }];
  cases.forEach(([what, stream], i) => {
    for (const sizes of [[stream.length], [3]]) {
      const result = filtered(stream, plans[i]!, sizes);
      assert.deepEqual(result.bytes, stream, what);
      assert.ok(result.counts.passedThrough, what);
      assert.equal(result.counts.pagesDropped, 0, what);
    }
  });
});

test('what it does not know after a drop fails the stream, in one line', () => {
  const s = scenario(WRITTEN);
  // A compressed page where the second part's records are.
  const at = s.stream.indexOf(end());
  const bad = Buffer.concat([s.stream.subarray(0, at), end(), be64(0x100), Buffer.alloc(64)]);
  assert.throws(
    () => filtered(bad, s.plan),
    (err: unknown) =>
      isHullError(err, 'ERR_SAVED_STATE') && /0x100 after pages were left out/.test(err.message),
  );
});

test('a stream cut short after a drop is refused at its end', () => {
  const s = scenario(WRITTEN);
  const short = s.stream.subarray(0, s.stream.indexOf(end()) + 3);
  assert.throws(
    () => filtered(short, s.plan),
    (err: unknown) => isHullError(err, 'ERR_SAVED_STATE'),
  );
});

test('a page beyond its block, a ZERO with a fill byte, an unknown block are not dropped', () => {
  const s = scenario(WRITTEN);
  const setup = Buffer.concat([HEADER, CONFIG, start(), memSize(), eos(), footer(), part()]);
  for (const record of [
    pageRecord('ram', RAM_PAGES, pageOf(1), false),
    Buffer.concat([be64(0x02), named('ram'), Buffer.of(9)]),
    pageRecord('nvram', 0, pageOf(1), false),
    Buffer.concat([be64(0x28), pageOf(1)]),
  ]) {
    const stream = Buffer.concat([setup, record, eos(), footer()]);
    const result = filtered(stream, s.plan, [5]);
    assert.deepEqual(result.bytes, stream);
    assert.ok(result.counts.passedThrough);
  }
});

test('garbled streams end (a pass or one error), holding at most one record', () => {
  const s = scenario(WRITTEN);
  let seed = 42;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let round = 0; round < 300; round++) {
    const stream = Buffer.from(s.stream);
    const flips = 1 + Math.floor(random() * 4);
    for (let f = 0; f < flips; f++) {
      // Mostly where the structure is (the first records), some anywhere.
      const at = Math.floor(random() * (random() < 0.7 ? 400 : stream.length));
      stream.writeUInt8(Math.floor(random() * 256), at);
    }
    const sizes = [1 + Math.floor(random() * 5000)];
    try {
      const result = filtered(stream, s.plan, sizes);
      assert.ok(result.maxHeld <= 20 * 1024, `held ${result.maxHeld}`);
    } catch (err) {
      assert.ok(isHullError(err, 'ERR_SAVED_STATE'), String(err));
    }
  }
});

test('a block list that never adds up is refused within its bound', () => {
  const s = scenario(WRITTEN);
  const blocks = Array.from({ length: 100 }, (_, i) => Buffer.concat([named(`b${i}`), be64(PAGE)]));
  const stream = Buffer.concat([HEADER, CONFIG, start(), be64(2 ** 40 + 0x04), ...blocks]);
  const result = filtered(stream, s.plan, [100]);
  assert.deepEqual(result.bytes, stream);
  assert.match(result.counts.passedThrough ?? '', /too many RAM blocks/);
});
