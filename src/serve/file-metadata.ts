import type { Writable } from 'node:stream';
import { HullError } from '../errors.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import type { FileStat } from './api-session-types.js';
import { BoundedText, execInSandbox } from './guest-process.js';
import type { SandboxRecord } from './sandbox-records.js';
import { sandboxProcess } from './sandbox-spec.js';

/**
 * `stat` and `rename` of the files API, run in the container as sandbox-files.ts runs the
 * others: constant scripts, the paths as argv elements, resolved by the guest's kernel in the
 * container's mount namespace. What the guest prints is parsed as hostile: bounded in size and
 * every figure checked against its range.
 */
const SCRIPTS = {
  // The link itself (lstat), its raw mode in hex, then its target when it is a symlink.
  stat: `if [ ! -e "$1" ] && [ ! -L "$1" ]; then exit 2; fi
stat -c '%f %s %u %g %Y' -- "$1" || exit 1
if [ -L "$1" ]; then readlink -- "$1"; fi`,
  // Exit 2: nothing to move; 5: the destination is a directory (mv would move into it).
  rename: `if [ ! -e "$1" ] && [ ! -L "$1" ]; then exit 2; fi
if [ -d "$2" ] && [ ! -L "$2" ]; then exit 5; fi
mkdir -p -- "$(dirname -- "$2")" && exec mv -f -- "$1" "$2"`,
} as const;

const MAX_STAT_OUTPUT = 8192;

export class FileMetadata {
  constructor(private readonly settings: RuntimeSettings) {}

  async stat(record: SandboxRecord, path: string): Promise<FileStat> {
    const { status, stdout, stderr } = await this.run(record, 'stat', [path]);
    if (status !== 0) throw failure('stat', path, status, stderr);
    return parseStat(path, stdout);
  }

  async rename(record: SandboxRecord, from: string, to: string): Promise<void> {
    const { status, stderr } = await this.run(record, 'rename', [from, to]);
    if (status === 5) throw new HullError('ERR_EXISTS', `cannot rename to ${shown(to)}: it is a directory`);
    if (status !== 0) throw failure('rename', from, status, stderr);
  }

  private async run(record: SandboxRecord, script: keyof typeof SCRIPTS, paths: string[]) {
    const stdout = new BoundedText(MAX_STAT_OUTPUT);
    const stderr = new BoundedText();
    const spec = sandboxProcess(record, ['/bin/sh', '-c', SCRIPTS[script], 'sh', ...paths]);
    const process = await execInSandbox(
      this.settings,
      record.sandboxId,
      spec,
      { stdout: stdout as Writable, stderr },
      AbortSignal.timeout(60_000),
    );
    const { status } = await process.exit;
    return { status, stdout: stdout.text(), stderr: stderr.text() };
  }
}

/** The file type bits of a mode (S_IFMT) and those of a file, a directory and a symlink. */
const S_IFMT = 0o170000;
const TYPE_BITS = new Map<number, FileStat['type']>([
  [0o100000, 'file'],
  [0o040000, 'dir'],
  [0o120000, 'symlink'],
]);

/** `stat -c '%f %s %u %g %Y'` (and a symlink's target) as a FileStat, or ERR_AGENT if malformed. */
export function parseStat(path: string, output: string): FileStat {
  const [line = '', ...rest] = output.split('\n');
  const fields = line.trim().split(' ');
  const number = (text: string | undefined, radix: number, max: number) => {
    const value =
      text !== undefined && /^[0-9a-fA-F]{1,16}$/.test(text) ? Number.parseInt(text, radix) : Number.NaN;
    if (!Number.isSafeInteger(value) || value < 0 || value > max) {
      throw new HullError('ERR_AGENT', `the guest described ${shown(path)} in a form hull does not read`);
    }
    return value;
  };
  const rawMode = number(fields[0], 16, 0xffff);
  const size = number(fields[1], 10, Number.MAX_SAFE_INTEGER);
  const uid = number(fields[2], 10, 2 ** 32 - 1);
  const gid = number(fields[3], 10, 2 ** 32 - 1);
  const mtime = number(fields[4], 10, 2 ** 40);
  const type = TYPE_BITS.get(rawMode & S_IFMT) ?? 'other';
  const name = path === '/' ? '/' : (path.replace(/\/+$/, '').split('/').pop() ?? '');
  return {
    name,
    path,
    type,
    size,
    mode: rawMode & 0o7777,
    uid,
    gid,
    modifiedAt: new Date(mtime * 1000).toISOString(),
    ...(type === 'symlink' ? { symlinkTarget: rest.join('\n').replace(/\n$/, '').slice(0, 4096) } : {}),
  };
}

function shown(path: string): string {
  return JSON.stringify(path.slice(0, 200));
}

function failure(what: string, path: string, status: number, stderr: string): HullError {
  if (status === 2)
    return new HullError('ERR_NOT_FOUND', `cannot ${what} ${shown(path)}: no such file or directory`);
  const said = stderr.trim().split('\n').pop()?.slice(0, 300) || `exit status ${status}`;
  return new HullError('ERR_CONFIG', `cannot ${what} ${shown(path)}: ${said}`);
}
