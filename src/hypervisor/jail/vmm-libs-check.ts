import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { logger } from '../../log.js';
import { stateDir } from '../../paths.js';
import { writeFileAtomic } from '../../sys/atomic-file.js';
import { withTimeout } from '../../util/deadline.js';

/**
 * Whether a QEMU binary starts with hull's stand-in libraries (vmm-libs/) first in its loader's
 * path. Debian's QEMU binds every symbol at start, so a QEMU upgraded to import a capstone or
 * libpmem symbol a stand-in lacks would not start at all: every sandbox start would fail. Before
 * a binary runs with them, `<qemu> --version` runs once with LD_LIBRARY_PATH at them and
 * LD_BIND_NOW=1 (a missing symbol then fails it at once, as the loader would fail the VM); a
 * binary that fails runs with the system's libraries instead, after one warning. The answer is
 * kept per binary and stand-ins (their paths, devices, inodes, sizes and times): in memory, and
 * in a small file in the state directory, so it costs one run per binary, not per start.
 */

/** How long `qemu --version` may take; a loaded host still answers in well under a second. */
const CHECK_TIMEOUT_MS = 10_000;
/** The last bytes of its stderr kept for the warning (the loader's line names the symbol). */
const STDERR_LIMIT = 2048;
/** At most this many answers are kept in the file: one per QEMU binary and stand-ins seen. */
const MAX_CACHED = 32;

export function vmmLibsCacheFile(): string {
  return join(stateDir(), 'vmm-libs-check.json');
}

const answers = new Map<string, Promise<boolean>>();

/** `binary` and the stand-ins as they are now: a changed binary or rebuilt stand-in differs. */
async function identity(binary: string, libraryDir: string): Promise<string> {
  const describe = async (path: string) => {
    const s = await stat(path, { bigint: true });
    return `${path}:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}`;
  };
  const libraries = (await readdir(libraryDir).catch(() => [] as string[])).filter((name) =>
    name.includes('.so'),
  );
  const parts = await Promise.all([
    describe(binary),
    ...libraries.sort().map((name) => describe(join(libraryDir, name)).catch(() => name)),
  ]);
  return parts.join('|');
}

async function readCache(file: string): Promise<Record<string, boolean>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return {};
    return Object.fromEntries(
      Object.entries(parsed).filter((entry): entry is [string, boolean] => typeof entry[1] === 'boolean'),
    );
  } catch {
    return {}; // none yet, or malformed: checked again and rewritten
  }
}

/** Written whole to a temporary file and renamed, so a reader sees an old cache or a new one. */
async function writeCache(file: string, key: string, ok: boolean): Promise<void> {
  const cache = await readCache(file);
  delete cache[key];
  const kept = Object.entries(cache).slice(-(MAX_CACHED - 1));
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${JSON.stringify(Object.fromEntries([...kept, [key, ok]]))}\n`, {
    mode: 0o600,
  });
}

/** Runs `binary --version` with the stand-ins; its exit code (null if killed) and stderr's tail. */
function runWithLibraries(
  binary: string,
  libraryDir: string,
  signal: AbortSignal,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(binary, ['--version'], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LD_LIBRARY_PATH: libraryDir, LD_BIND_NOW: '1' },
      signal: withTimeout(signal, CHECK_TIMEOUT_MS),
      killSignal: 'SIGKILL',
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_LIMIT);
    });
    child.on('error', (err) => {
      stderr ||= err.message;
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

function warnUnusable(binary: string, libraryDir: string, reason: string): void {
  logger('qemu').warn(
    { binary, libraryDir, reason },
    `${binary} does not start with hull's stand-in libraries (${reason}): it runs with the system's, which costs each VM more memory`,
  );
}

async function check(
  binary: string,
  libraryDir: string,
  key: string,
  cacheFile: string,
  signal: AbortSignal,
): Promise<boolean> {
  const cached = (await readCache(cacheFile))[key];
  if (cached === false) warnUnusable(binary, libraryDir, `found earlier, recorded in ${cacheFile}`);
  if (cached !== undefined) return cached;
  const { code, stderr } = await runWithLibraries(binary, libraryDir, signal);
  if (code === null && signal.aborted) throw signal.reason;
  const ok = code === 0;
  if (!ok) {
    const lastLine = stderr.trim().split('\n').pop();
    warnUnusable(
      binary,
      libraryDir,
      code === null ? 'no answer to --version in time' : lastLine || `exit status ${code}`,
    );
  }
  // Killed by the deadline: no answer about the libraries, so none is kept in the file.
  if (code !== null) await writeCache(cacheFile, key, ok).catch(() => {});
  return ok;
}

/**
 * Whether `binary` starts with the stand-ins in `libraryDir` first in its library path; see the
 * top of this file. A check cut short by the deadline answers no, and is done again next time.
 */
export async function vmmLibrariesUsable(
  binary: string,
  libraryDir: string,
  signal: AbortSignal,
  cacheFile = vmmLibsCacheFile(),
): Promise<boolean> {
  const binaryKey = await identity(binary, libraryDir);
  const key = `${cacheFile}\n${binaryKey}`;
  let answer = answers.get(key);
  if (!answer) {
    answer = check(binary, libraryDir, binaryKey, cacheFile, signal);
    answers.set(key, answer);
    // An aborted check answers nothing: the next start checks again.
    answer.catch(() => answers.delete(key));
  }
  return answer;
}
