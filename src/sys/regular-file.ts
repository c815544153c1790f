import { constants, type Stats } from 'node:fs';
import { lstat, open, stat } from 'node:fs/promises';
import { type ErrorCode, HullError } from '../errors.js';

/**
 * A small JSON record read as readRegularFile reads it and parsed, or undefined when it is
 * missing, refused by those checks or not JSON: for records whose absence or damage means
 * only "none here", never an error to report. What the value holds is the caller's to check.
 */
export async function readJsonRecordOrNone(
  path: string,
  limits: Parameters<typeof readRegularFile>[1],
): Promise<unknown> {
  const text = await readRegularFile(path, limits).catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Reads a small file a user names (config.json, a process spec) as text, only if it is a
 * regular file of at most `maxBytes`: a FIFO would hang the reader, a device such as
 * /dev/zero would be read without end, a directory is not a configuration. The file is opened
 * non-blocking (so a FIFO swapped in after the first look cannot hang the open) and checked
 * again by its descriptor, and never more than `maxBytes` + 1 are read.
 */
export async function readRegularFile(
  path: string,
  limits: {
    maxBytes: number;
    why: string;
    code: ErrorCode;
    missing: string;
    /** Refuse a symlink (a file that must be the directory's own, e.g. one from an archive). */
    noFollow?: boolean;
    /** What a refusal of a file that is not regular advises (default: name the JSON file). */
    notRegularHint?: string;
  },
): Promise<string> {
  const refuse = (what: string): never => {
    throw new HullError(limits.code, `${path} ${what}`);
  };
  const first = await (limits.noFollow ? lstat : stat)(path).catch((err: NodeJS.ErrnoException) =>
    err.code === 'ENOENT' || err.code === 'ENOTDIR'
      ? refuse(limits.missing)
      : refuse(`cannot be read: ${err.code}`),
  );
  if (first.isSymbolicLink()) refuse('is a symlink, not a regular file of its own');
  checkKind(first, refuse, limits.notRegularHint);
  // Node opens every file close-on-exec.
  const noFollow = limits.noFollow ? constants.O_NOFOLLOW : 0;
  const handle = await open(
    path,
    constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY | noFollow,
  ).catch((err: NodeJS.ErrnoException) => refuse(`cannot be opened: ${err.code}`));
  try {
    const info = await handle.stat();
    checkKind(info, refuse, limits.notRegularHint);
    const tooBig = () =>
      refuse(`is larger than ${limits.maxBytes} bytes (${limits.why}): is it the right file?`);
    if (info.size > limits.maxBytes) tooBig();
    // A regular file may still grow while it is read: stop one byte past the limit.
    const chunks: Buffer[] = [];
    let length = 0;
    for (;;) {
      const chunk = Buffer.alloc(Math.min(64 * 1024, limits.maxBytes + 1 - length));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, length);
      if (bytesRead === 0) break;
      chunks.push(chunk.subarray(0, bytesRead));
      length += bytesRead;
      if (length > limits.maxBytes) tooBig();
    }
    return Buffer.concat(chunks).toString('utf8');
  } finally {
    await handle.close();
  }
}

function checkKind(
  info: Stats,
  refuse: (what: string) => never,
  hint = ': point it at the JSON file itself',
): void {
  if (info.isFile()) return;
  const kind = info.isDirectory()
    ? 'a directory'
    : info.isFIFO()
      ? 'a FIFO'
      : info.isCharacterDevice() || info.isBlockDevice()
        ? 'a device'
        : info.isSocket()
          ? 'a socket'
          : 'not a file';
  refuse(`is ${kind}, not a regular file${hint}`);
}
