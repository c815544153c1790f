import { open, read, readdir, readFile, write } from 'node:fs';
import { Duplex } from 'node:stream';
import { promisify } from 'node:util';

const readAsync = promisify(read);
const writeAsync = promisify(write);

/** The virtio-serial port name the host's QEMU driver gives the agent channel. */
export const AGENT_PORT_NAME = 'agent.0';

/** Finds /dev/vportNpM whose sysfs name is `name`. */
export async function findPort(name: string): Promise<string> {
  const base = '/sys/class/virtio-ports';
  const ports = await promisify(readdir)(base).catch(() => [] as string[]);
  for (const port of ports) {
    const portName = await promisify(readFile)(`${base}/${port}/name`, 'utf8').catch(() => '');
    if (portName.trim() === name) return `/dev/${port}`;
  }
  throw new Error(`no virtio-serial port named ${name} (ports: ${ports.join(', ') || 'none'})`);
}

/**
 * A virtio-serial port as a Duplex stream. Node cannot poll a character device, so reads
 * block in a libuv pool thread. Two quirks of the port shape this:
 *  - a read returns 0 both at "host disconnected" and before the host's open is seen; EOF
 *    counts only after data has flowed, earlier it is retried;
 *  - the driver writes at most 32 KiB per call, so writes loop until all bytes are out.
 */
export async function openPort(path: string): Promise<Duplex> {
  const fd = await promisify(open)(path, 'r+');
  let seenData = false;
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      (async () => {
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await writeAsync(fd, chunk, offset, chunk.length - offset);
          offset += bytesWritten;
        }
      })().then(() => callback(), callback);
    },
  });
  (async () => {
    const buffer = Buffer.allocUnsafe(256 * 1024);
    for (;;) {
      const { bytesRead } = await readAsync(fd, buffer, 0, buffer.length, null);
      if (bytesRead === 0) {
        if (seenData) break;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      seenData = true;
      stream.push(Buffer.from(buffer.subarray(0, bytesRead)));
    }
    stream.push(null);
  })().catch((err: Error) => stream.destroy(err));
  return stream;
}
