/**
 * ttRPC framing: a 10-byte header (payload length u32 BE, stream id u32 BE, type u8,
 * flags u8) followed by the payload. Byte streams split and merge frames arbitrarily, so
 * the decoder buffers until a whole frame is present.
 */
export const HEADER_LENGTH = 10;
export const MAX_PAYLOAD = 4 << 20;

export const FrameType = { REQUEST: 0x01, RESPONSE: 0x02, DATA: 0x03 } as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Buffer;
}

/** A frame whose payload exceeded MAX_PAYLOAD: its bytes were skipped, its header kept. */
export interface OversizedFrame {
  streamId: number;
  type: number;
  length: number;
}

export function encodeFrame(streamId: number, type: number, payload: Uint8Array, flags = 0): Buffer {
  if (payload.length > MAX_PAYLOAD)
    throw new RangeError(`ttrpc payload of ${payload.length} bytes exceeds 4 MiB`);
  const header = Buffer.allocUnsafe(HEADER_LENGTH);
  header.writeUInt32BE(payload.length, 0);
  header.writeUInt32BE(streamId, 4);
  header.writeUInt8(type, 8);
  header.writeUInt8(flags, 9);
  return Buffer.concat([header, payload]);
}

export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of an oversized payload still to be thrown away. */
  private skipping = 0;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    private readonly onOversized: (frame: OversizedFrame) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.skipping > 0) {
      const skip = Math.min(this.skipping, chunk.length);
      this.skipping -= skip;
      chunk = chunk.subarray(skip);
    }
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    this.drain();
  }

  /** Bytes held for a frame not yet whole: what this connection costs in memory now. */
  get pending(): number {
    return this.buffered;
  }

  private drain(): void {
    while (this.buffered >= HEADER_LENGTH) {
      const header = this.peek(HEADER_LENGTH);
      const length = header.readUInt32BE(0);
      const streamId = header.readUInt32BE(4);
      const type = header.readUInt8(8);
      const flags = header.readUInt8(9);
      if (length > MAX_PAYLOAD) {
        const data = this.take();
        const available = data.length - HEADER_LENGTH;
        const dropped = Math.min(available, length);
        this.skipping = length - dropped;
        this.keep(data.subarray(HEADER_LENGTH + dropped));
        this.onOversized({ streamId, type, length });
        continue;
      }
      // Chunks are joined once, when the frame is whole, not at every chunk of a large one.
      if (this.buffered < HEADER_LENGTH + length) return;
      const data = this.take();
      const payload = Buffer.from(data.subarray(HEADER_LENGTH, HEADER_LENGTH + length));
      this.keep(data.subarray(HEADER_LENGTH + length));
      this.onFrame({ streamId, type, flags, payload });
    }
  }

  /** The first `n` buffered bytes, joining only as many chunks as that needs. */
  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(): Buffer {
    const data = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    this.buffered = 0;
    return data;
  }

  private keep(rest: Buffer): void {
    if (rest.length === 0) return;
    this.chunks = [rest];
    this.buffered = rest.length;
  }
}
