import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { IMAGE } from '../fixtures/oci-image.js';
import { bundleTests, HULL, hull, hullDetached, privateDirs, runCommand } from './harness.js';

/**
 * Lines the process writes: about 2 MB, as much as the guest and the host hold on their way,
 * so that when the process exits most of its output is still to be read.
 */
const STDOUT_LINES = 300_000;
const STDERR_LINES = 50_000;
/** The process's last act, seen on the host through a volume mounted at /marker. */
const DONE_MARKER = 'done';
const SCRIPT = `seq 1 ${STDOUT_LINES}; seq 1 ${STDERR_LINES} >&2; touch /marker/${DONE_MARKER}`;
/** How long the reader stops once the process has exited: longer than any grace period. */
const HOLD_AFTER_EXIT_MS = 5000;

/** `seq 1 n` as it prints. */
function seqText(n: number): string {
  return `${Array.from({ length: n }, (_, i) => i + 1).join('\n')}\n`;
}

/**
 * A consumer slower than the container: it takes one read (at most 64 KiB from a pipe) every
 * half second from each stream, and once the process has exited (`exited()`), it stops
 * reading for HOLD_AFTER_EXIT_MS before going on at that pace.
 */
function readSlowly(stream: Readable, exited: () => boolean): Promise<string> {
  const chunks: Buffer[] = [];
  let held = false;
  const next = () => {
    const wait = !held && exited() ? HOLD_AFTER_EXIT_MS : 500;
    if (wait === HOLD_AFTER_EXIT_MS) held = true;
    setTimeout(() => stream.resume(), wait);
  };
  stream.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    stream.pause();
    next();
  });
  return new Promise((resolve) => stream.on('end', () => resolve(Buffer.concat(chunks).toString())));
}

async function runWithSlowReader(
  file: string,
  args: string[],
  markerDir: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = false;
  const exited = () => {
    seen ||= existsSync(join(markerDir, DONE_MARKER));
    return seen;
  };
  const [stdout, stderr, code] = await Promise.all([
    readSlowly(child.stdout!, exited),
    readSlowly(child.stderr!, exited),
    new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c))),
  ]);
  assert.ok(seen, 'the reader saw the process end while output was still to be read');
  return { code, stdout, stderr };
}

/**
 * Lines for a reader that is not reading when the process exits: about 120 KB, less than
 * ctr's stdout pipe, its copy buffer and the FIFO hold together (some 144 KiB), so the whole
 * output has left the guest when the exit is seen and some 40 KB of it still wait in the FIFO.
 */
const UNREAD_LINES = 22_000;
/**
 * How long that reader waits, once the process has exited, before it reads: longer than the
 * shim takes to report the exit (0.1-0.2 s here), shorter than the shim waits for a reader
 * that reads nothing (FIFO_DRAIN_STALL_MS).
 */
const LATE_READ_S = 1;

/** What a reader should get: every line of both streams, in order, and exit 0. */
function assertComplete(r: { code: number | null; stdout: string; stderr: string }): void {
  const expected = seqText(STDOUT_LINES);
  let at = 0;
  while (at < expected.length && r.stdout[at] === expected[at]) at++;
  const context = `stdout differs at byte ${at} of ${expected.length} (${r.stdout.length} came): ${JSON.stringify(r.stdout.slice(Math.max(0, at - 20), at + 20))}; stderr ends ${JSON.stringify(r.stderr.slice(-200))}`;
  assert.ok(r.stdout === expected, `stdout arrives whole and in order: ${context}`);
  assert.ok(r.stderr === seqText(STDERR_LINES), 'stderr arrives whole and in order');
  assert.equal(r.code, 0);
}

describe('a slow reader gets all of the output (issue 24)', { timeout: 600_000 }, () => {
  const t = bundleTests('slow');

  /** A bundle running `args` with a volume at /marker, the host directory returned. */
  async function bundleWithMarker(args: string[]): Promise<{ dir: string; id: string; marker: string }> {
    const marker = await mkdtemp(join(t.scratch, 'marker-'));
    const b = await t.bundle(args, (spec) => {
      spec.mounts!.push({ destination: '/marker', type: 'bind', source: marker, options: ['rbind', 'rw'] });
    });
    return { ...b, marker };
  }

  test('hull run: every line of stdout and stderr, however slowly they are read', async () => {
    const b = await bundleWithMarker(['sh', '-c', SCRIPT]);
    assertComplete(
      await runWithSlowReader(process.execPath, [HULL, '--root', t.root, 'run', '-b', b.dir, b.id], b.marker),
    );
  });

  test('hull exec: every line of stdout and stderr, however slowly they are read', async () => {
    const b = await bundleWithMarker(['sleep', '600']);
    const started = await hullDetached(t.root, ['-b', b.dir, b.id]);
    assert.equal(started.code, 0, started.stderr);
    try {
      assertComplete(
        await runWithSlowReader(
          process.execPath,
          [HULL, '--root', t.root, 'exec', b.id, 'sh', '-c', SCRIPT],
          b.marker,
        ),
      );
      // What ends the copy once the exec has exited: a process it left holding its output
      // (a daemon) keeps it open for ever, and the exec still returns, a few seconds later.
      const began = Date.now();
      const daemon = await hull(['--root', t.root, 'exec', b.id, 'sh', '-c', 'sleep 300 & echo started']);
      assert.deepEqual([daemon.code, daemon.stdout], [0, 'started\n'], daemon.stderr);
      assert.ok(Date.now() - began < 30_000, `the exec returned after ${Date.now() - began} ms`);
    } finally {
      await hull(['--root', t.root, 'kill', b.id, 'KILL']);
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });
});

describe("a slow reader of the shim's FIFOs gets all of the output (issue 24)", { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let containerd: Containerd;

  before(async () => {
    dirs = await privateDirs('slow-ctr');
    containerd = await Containerd.start(join(dirs.scratch, 'c'));
    await containerd.importBusybox(join(dirs.scratch, 'image'));
  });
  after(async () => {
    await containerd?.stop();
    await dirs.cleanup();
  });

  test('ctr run: every line of stdout and stderr, however slowly they are read', async () => {
    const marker = await mkdtemp(join(dirs.scratch, 'marker-'));
    const r = await runWithSlowReader(
      'ctr',
      [
        '-a',
        containerd.socket,
        'run',
        '--rm',
        '--runtime',
        HULL_RUNTIME,
        '--mount',
        `type=bind,src=${marker},dst=/marker,options=rbind:rw`,
        IMAGE,
        'slow1',
        'sh',
        '-c',
        SCRIPT,
      ],
      marker,
    );
    assertComplete(r);
  });

  // ctr before containerd 1.6.22 closes its FIFOs as soon as it learns of the exit: the shim
  // reports the exit only once ctr has read what is left in them.
  test('ctr run: output still in the FIFO when the task exits reaches a reader that reads late', async () => {
    const marker = await mkdtemp(join(dirs.scratch, 'marker-'));
    const files = await mkdtemp(join(dirs.scratch, 'late-'));
    const out = join(files, 'stdout');
    const err = join(files, 'stderr');
    const code = join(files, 'code');
    const ctr = [
      'ctr',
      '-a',
      containerd.socket,
      'run',
      '--rm',
      '--runtime',
      HULL_RUNTIME,
      '--mount',
      `type=bind,src=${marker},dst=/marker,options=rbind:rw`,
      IMAGE,
      'late1',
      'sh',
      '-c',
      `'seq 1 ${UNREAD_LINES}; touch /marker/${DONE_MARKER}'`,
    ].join(' ');
    // ctr's stdout is a plain pipe whose reader starts only LATE_READ_S after the exit.
    const reader = `while [ ! -e ${marker}/${DONE_MARKER} ]; do sleep 0.05; done; sleep ${LATE_READ_S}; cat > ${out}`;
    const r = await runCommand('sh', ['-c', `{ ${ctr} 2>${err}; echo $? > ${code}; } | { ${reader}; }`]);
    assert.equal(r.code, 0, r.stderr);
    const expected = seqText(UNREAD_LINES);
    const stdout = await readFile(out, 'utf8');
    assert.equal(
      stdout.length,
      expected.length,
      `all of stdout came; ctr said: ${await readFile(err, 'utf8')}`,
    );
    assert.ok(stdout === expected, 'stdout came in order');
    assert.equal((await readFile(code, 'utf8')).trim(), '0');
  });
});
