import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameType,
  MAX_PAYLOAD,
  type OversizedFrame,
} from './frame.js';

function collect() {
  const frames: Frame[] = [];
  const oversized: OversizedFrame[] = [];
  const decoder = new FrameDecoder(
    (f) => frames.push(f),
    (f) => oversized.push(f),
  );
  return { frames, oversized, decoder };
}

test('header is length, stream id, type, flags in big-endian', () => {
  const frame = encodeFrame(7, FrameType.REQUEST, Buffer.from('abc'), 0);
  assert.deepEqual([...frame.subarray(0, 10)], [0, 0, 0, 3, 0, 0, 0, 7, 1, 0]);
  assert.equal(frame.subarray(10).toString(), 'abc');
});

test('a frame split into single bytes is reassembled', () => {
  const { frames, decoder } = collect();
  const bytes = encodeFrame(3, FrameType.RESPONSE, Buffer.from('hello world'));
  for (const b of bytes) decoder.push(Buffer.from([b]));
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.streamId, 3);
  assert.equal(frames[0]!.type, FrameType.RESPONSE);
  assert.equal(frames[0]!.payload.toString(), 'hello world');
});

test('several frames merged in one chunk come out in order', () => {
  const { frames, decoder } = collect();
  const merged = Buffer.concat([
    encodeFrame(1, FrameType.REQUEST, Buffer.from('one')),
    encodeFrame(3, FrameType.REQUEST, Buffer.alloc(0)),
    encodeFrame(5, FrameType.REQUEST, Buffer.from('three')),
  ]);
  // Cut the merged stream at an awkward place: inside the third header.
  decoder.push(merged.subarray(0, 26));
  decoder.push(merged.subarray(26));
  assert.deepEqual(
    frames.map((f) => [f.streamId, f.payload.toString()]),
    [
      [1, 'one'],
      [3, ''],
      [5, 'three'],
    ],
  );
});

test('an oversized frame is skipped, reported, and the next frame still decodes', () => {
  const { frames, oversized, decoder } = collect();
  const header = Buffer.alloc(10);
  header.writeUInt32BE(MAX_PAYLOAD + 5, 0);
  header.writeUInt32BE(9, 4);
  header.writeUInt8(FrameType.REQUEST, 8);
  decoder.push(header);
  decoder.push(Buffer.alloc(MAX_PAYLOAD));
  decoder.push(Buffer.concat([Buffer.alloc(5), encodeFrame(11, FrameType.REQUEST, Buffer.from('next'))]));
  assert.deepEqual(oversized, [{ streamId: 9, type: FrameType.REQUEST, length: MAX_PAYLOAD + 5 }]);
  assert.equal(frames.length, 1);
  assert.equal(frames[0]!.streamId, 11);
  assert.equal(frames[0]!.payload.toString(), 'next');
});

test('encoding refuses a payload over 4 MiB', () => {
  assert.throws(() => encodeFrame(1, FrameType.REQUEST, Buffer.alloc(MAX_PAYLOAD + 1)), RangeError);
});
