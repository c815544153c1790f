import { constants } from 'node:os';
import { PassThrough, type Readable } from 'node:stream';
import { HullError } from '../errors.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import type { FileEntry } from './api-types.js';
import { BoundedText, execInSandbox } from './guest-process.js';
import type { SandboxRecord } from './sandbox-records.js';
import { sandboxProcess } from './sandbox-spec.js';

/**
 * The files API, run in the guest as execs of fixed programs whose path is one argv element
 * (`sh -c SCRIPT sh PATH`: the script is a constant here, never built from input), so every
 * path is resolved by the guest's kernel in the container's mount namespace: `..` and
 * symlinks lead, at worst, elsewhere in the guest. The block rootfs will let the host read
 * the writable disk directly; until then this is the one way in.
 */
const SCRIPTS = {
  // Exit 2: no such path; 3: a directory.
  read: 'if [ -d "$1" ]; then exit 3; elif [ ! -e "$1" ]; then exit 2; fi; exec cat -- "$1"',
  // Into a file beside it, renamed when whole: an upload cut short (TERM) leaves nothing.
  write: `if [ -d "$1" ]; then exit 3; fi
t="$1.hull-upload.$$"
trap 'rm -f -- "$t"; exit 4' TERM
mkdir -p -- "$(dirname -- "$1")" && cat > "$t" && mv -f -- "$t" "$1"`,
  // One NUL-ended record per entry: its type letter and name.
  list: `cd -- "$1" 2>/dev/null || exit 2
for f in * .[!.]* ..?*; do
  if [ -L "$f" ]; then t=l; elif [ -d "$f" ]; then t=d; elif [ -f "$f" ]; then t=f; elif [ -e "$f" ]; then t=o; else continue; fi
  printf '%s%s\\0' "$t" "$f"
done`,
  exists: 'if [ -e "$1" ] || [ -L "$1" ]; then exit 0; else exit 1; fi',
  remove: 'exec rm -rf -- "$1"',
  makeDir: 'exec mkdir -p -- "$1"',
} as const;

const TYPES: Record<string, FileEntry['type']> = { f: 'file', d: 'dir', l: 'symlink', o: 'other' };

export class SandboxFiles {
  constructor(private readonly settings: RuntimeSettings) {}

  /** Starts streaming a file; resolves with the stream once the file is known to be readable. */
  async read(record: SandboxRecord, path: string): Promise<Readable> {
    const stdout = new PassThrough();
    const stderr = new BoundedText();
    const process = await this.exec(record, 'read', path, { stdout, stderr });
    // The answer's status waits for the first byte or the exit, whichever comes first.
    const first = await Promise.race([
      new Promise<'data'>((resolve) => stdout.once('readable', () => resolve('data'))),
      process.exit,
    ]);
    if (first !== 'data' && first.status !== 0) throw failure('read', path, first.status, stderr.text());
    // The relay copies into the stream but does not end it: the exit (output drained) does.
    process.exit.then((exit) => {
      if (exit.status === 0) stdout.end();
      else stdout.destroy(failure('read', path, exit.status, stderr.text()));
    });
    return stdout;
  }

  /**
   * Streams `data` into a file, at most `maxBytes` of it: past that the writer is stopped (TERM
   * before its input ends, so it removes its partial file) and this answers 'too-large'.
   */
  async write(
    record: SandboxRecord,
    path: string,
    data: Readable,
    maxBytes: number,
  ): Promise<'written' | 'too-large'> {
    const stderr = new BoundedText();
    const stdin = new PassThrough();
    const process = await this.exec(record, 'write', path, { stdin, stderr });
    let seen = 0;
    let tooLarge = false;
    data.on('data', (chunk: Buffer) => {
      seen += chunk.length;
      if (seen <= maxBytes) {
        if (!stdin.write(chunk)) {
          data.pause();
          stdin.once('drain', () => data.resume());
        }
        return;
      }
      if (tooLarge) return;
      tooLarge = true;
      data.pause();
      void process.kill(constants.signals.SIGTERM).then(() => stdin.end());
    });
    data.once('end', () => {
      if (!tooLarge) stdin.end();
    });
    data.once('error', () => {
      tooLarge = true;
      void process.kill(constants.signals.SIGTERM).then(() => stdin.end());
    });
    const exit = await process.exit;
    if (tooLarge) return 'too-large';
    if (exit.status !== 0) throw failure('write', path, exit.status, stderr.text());
    return 'written';
  }

  async list(record: SandboxRecord, path: string): Promise<FileEntry[]> {
    const { status, stdout, stderr } = await this.collect(record, 'list', path);
    if (status !== 0) throw failure('list', path, status, stderr);
    const base = path.endsWith('/') ? path : `${path}/`;
    return stdout
      .split('\0')
      .filter(Boolean)
      .map((line) => ({
        name: line.slice(1),
        path: `${base}${line.slice(1)}`,
        type: TYPES[line[0]!] ?? 'other',
      }));
  }

  async exists(record: SandboxRecord, path: string): Promise<boolean> {
    return (await this.collect(record, 'exists', path)).status === 0;
  }

  async remove(record: SandboxRecord, path: string): Promise<void> {
    const { status, stderr } = await this.collect(record, 'remove', path);
    if (status !== 0) throw failure('remove', path, status, stderr);
  }

  async makeDir(record: SandboxRecord, path: string): Promise<void> {
    const { status, stderr } = await this.collect(record, 'makeDir', path);
    if (status !== 0) throw failure('make the directory', path, status, stderr);
  }

  private exec(
    record: SandboxRecord,
    script: keyof typeof SCRIPTS,
    path: string,
    stdio: { stdin?: Readable; stdout?: PassThrough; stderr: BoundedText },
  ) {
    const spec = sandboxProcess(record, ['/bin/sh', '-c', SCRIPTS[script], 'sh', path]);
    return execInSandbox(this.settings, record.sandboxId, spec, stdio, AbortSignal.timeout(60_000));
  }

  private async collect(record: SandboxRecord, script: keyof typeof SCRIPTS, path: string) {
    const stdout = new BoundedText(16 * 1024 * 1024);
    const stderr = new BoundedText();
    const process = await this.exec(record, script, path, {
      stdout: stdout as unknown as PassThrough,
      stderr,
    });
    const { status } = await process.exit;
    return { status, stdout: stdout.text(), stderr: stderr.text() };
  }
}

function failure(what: string, path: string, status: number, stderr: string): HullError {
  const shown = JSON.stringify(path.slice(0, 200));
  if (status === 2)
    return new HullError('ERR_NOT_FOUND', `cannot ${what} ${shown}: no such file or directory`);
  if (status === 3) return new HullError('ERR_CONFIG', `cannot ${what} ${shown}: it is a directory`);
  const said = stderr.trim().split('\n').pop()?.slice(0, 300) || `exit status ${status}`;
  return new HullError('ERR_CONFIG', `cannot ${what} ${shown}: ${said}`);
}
