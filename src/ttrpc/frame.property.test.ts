import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { encodeFrame, type Frame, FrameDecoder, HEADER_LENGTH, MAX_PAYLOAD } from './frame.js';
import { fuzzRuns } from './fuzz-runs.js';

const frameArb = fc.record({
  streamId: fc.nat({ max: 0xffffffff }),
  type: fc.integer({ min: 0, max: 255 }),
  flags: fc.integer({ min: 0, max: 255 }),
  payload: fc.uint8Array({ maxLength: 2048 }),
});

/** Cuts `bytes` at the given points (any points, sorted and deduplicated here). */
function cut(bytes: Buffer, points: number[]): Buffer[] {
  const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const p of [...at, bytes.length]) {
    pieces.push(bytes.subarray(start, p));
    start = p;
  }
  return pieces;
}

test('frames split anywhere come out whole, in order, unchanged', () => {
  fc.assert(
    fc.property(
      fc.array(frameArb, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 12 }),
      (frames, points) => {
        const got: Frame[] = [];
        const decoder = new FrameDecoder(
          (f) => got.push(f),
          () => assert.fail('no frame here is oversized'),
        );
        const wire = Buffer.concat(frames.map((f) => encodeFrame(f.streamId, f.type, f.payload, f.flags)));
        for (const piece of cut(wire, points)) decoder.push(piece);
        assert.equal(decoder.pending, 0, 'nothing is left over');
        assert.deepEqual(
          got.map((f) => ({ ...f, payload: new Uint8Array(f.payload) })),
          frames.map((f) => ({ ...f, payload: new Uint8Array(f.payload) })),
        );
      },
    ),
    { numRuns: fuzzRuns() },
  );
});

test('any bytes: the decoder never throws, and never holds more than one frame', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 512 }), { maxLength: 16 }), (chunks) => {
      const decoder = new FrameDecoder(
        (f) => assert.ok(f.payload.length <= MAX_PAYLOAD),
        (o) => assert.ok(o.length > MAX_PAYLOAD),
      );
      for (const chunk of chunks) {
        decoder.push(Buffer.from(chunk));
        assert.ok(decoder.pending <= HEADER_LENGTH + MAX_PAYLOAD);
      }
    }),
    { numRuns: fuzzRuns() },
  );
});

test('an oversized length is skipped whatever follows, and the next frame decodes', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: MAX_PAYLOAD + 1, max: MAX_PAYLOAD + 4096 }),
      frameArb,
      fc.array(fc.nat(), { maxLength: 6 }),
      (length, next, points) => {
        const header = Buffer.alloc(HEADER_LENGTH);
        header.writeUInt32BE(length, 0);
        header.writeUInt32BE(1, 4);
        header.writeUInt8(1, 8);
        const wire = Buffer.concat([
          header,
          Buffer.alloc(length, 0xab),
          encodeFrame(next.streamId, next.type, next.payload, next.flags),
        ]);
        const got: Frame[] = [];
        const oversized: number[] = [];
        const decoder = new FrameDecoder(
          (f) => got.push(f),
          (o) => oversized.push(o.length),
        );
        for (const piece of cut(wire, points)) decoder.push(piece);
        assert.deepEqual(oversized, [length]);
        assert.equal(got.length, 1);
        assert.deepEqual(new Uint8Array(got[0]!.payload), new Uint8Array(next.payload));
      },
    ),
    { numRuns: Math.min(fuzzRuns(100), 2000) },
  );
});
