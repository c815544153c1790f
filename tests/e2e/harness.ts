import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, afterEach, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Spec } from '../../src/oci/spec.js';
import { HostMounter } from '../../src/sys/mount.js';
import { processesMentioning, statusField } from '../../src/sys/processes.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';

/** The bundled CLI, run with this very node so tests can narrow PATH without losing node. */
export const HULL = resolve(fileURLToPath(import.meta.url), '../../../bundle/hull.cjs');

export interface HullResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface HullRun {
  child: ChildProcess;
  result: Promise<HullResult>;
  /** Resolves once stdout contains `text`. */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
}

/** `input` is written to hull's stdin and closed; null gives hull /dev/null, as conmon does without -i. */
export function startHull(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | null } = {},
): HullRun {
  const child = spawn(process.execPath, [HULL, ...args], {
    env: { ...process.env, ...options.env },
    stdio: [options.input === null ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const watchers: { text: string; resolve: () => void }[] = [];
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    for (const w of watchers.filter((w) => stdout.includes(w.text))) w.resolve();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  if (typeof options.input === 'string') {
    // A hull that ends before reading its input closes the pipe (EPIPE here): how it ended is
    // in the result, which is what the test checks.
    child.stdin!.on('error', () => {});
    child.stdin!.end(options.input);
  }
  const result = new Promise<HullResult>((resolveResult) => {
    child.on('close', (code, signal) => resolveResult({ code, signal, stdout, stderr }));
  });
  return {
    child,
    result,
    waitForOutput: (text, timeoutMs = 120_000) =>
      new Promise<void>((res, rej) => {
        if (stdout.includes(text)) return res();
        const timer = setTimeout(
          () => rej(new Error(`no "${text}" on stdout; stderr: ${stderr}`)),
          timeoutMs,
        );
        watchers.push({
          text,
          resolve: () => {
            clearTimeout(timer);
            res();
          },
        });
      }),
  };
}

export function hull(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; input?: string | null } = {},
): Promise<HullResult> {
  return startHull(args, { input: '', ...options }).result;
}

/** A private runtime root and scratch directory per test file, so files can run side by side. */
export async function privateDirs(
  name: string,
): Promise<{ root: string; scratch: string; cleanup: () => Promise<void> }> {
  const base = await mkdtemp(join(tmpdir(), `hull-${name}-`));
  return {
    root: join(base, 'root'),
    scratch: base,
    cleanup: async () => {
      await sweep(base);
      await rm(base, { recursive: true, force: true });
    },
  };
}

/**
 * After a failed test: stop by pid whatever still uses `dir` (monitors, VMs) and unmount what
 * they shared, so one failure does not leak into the next test or outlive the run.
 */
async function sweep(dir: string): Promise<void> {
  for (const pid of await processesMentioning(dir)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
  }
  await new Promise((r) => setTimeout(r, 200));
  await new HostMounter().unmountTree(dir).catch(() => {});
  await rm(dir, { recursive: true, force: true });
}

/**
 * A private state directory holding the current guest image by symlinks, so a test can make
 * (or break) snapshots and files of its own without touching the machine's cache.
 * `replace` swaps named image files for the given contents.
 */
export async function privateImageState(
  dir: string,
  replace: Partial<Record<'kernel.elf' | 'initrd.cpio' | 'rootfs.erofs', string>> = {},
  /** Use the machine's agent snapshots too (a test of templates, not of snapshots). */
  options: { sharedSnapshots?: boolean } = {},
): Promise<{ state: string; imageDir: string }> {
  const realImages = join(process.env.HULL_STATE_DIR || '/var/lib/hull', 'images');
  const hash = (await readFile(join(realImages, 'current'), 'utf8')).trim();
  const imageDir = join(dir, 'images', hash);
  await mkdir(imageDir, { recursive: true });
  for (const f of ['kernel.elf', 'initrd.cpio', 'rootfs.erofs', 'manifest.json'] as const) {
    const content = f === 'manifest.json' ? undefined : replace[f];
    if (content !== undefined) await writeFile(join(imageDir, f), content);
    else await symlink(join(realImages, hash, f), join(imageDir, f));
  }
  if (options.sharedSnapshots)
    await symlink(join(realImages, hash, 'snapshots'), join(imageDir, 'snapshots'));
  await writeFile(join(dir, 'images', 'current'), `${hash}\n`);
  return { state: dir, imageDir };
}

/** Resolves once `pid` has exited; fails the test after `timeoutMs` instead of hanging it. */
export function processExit(pid: number, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      try {
        process.kill(pid, 0);
        if (Date.now() - started > timeoutMs) {
          clearInterval(poll);
          reject(new Error(`process ${pid} did not exit within ${timeoutMs / 1000}s`));
        }
      } catch {
        clearInterval(poll);
        resolve();
      }
    }, 50);
  });
}

/** Stops a daemon the test started (containerd, CRI-O) by its own pid: SIGTERM, then waits for it. */
export async function stopDaemon(pid: number | undefined): Promise<void> {
  if (!pid) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {}
  await processExit(pid, 60_000);
}

/** QEMU processes whose command line mentions `marker` (a test's private root). */
export function qemuProcessesUsing(marker: string): Promise<number[]> {
  return processesMentioning(marker, (cmdline) => cmdline.includes('qemu-system'));
}

/** The value of one sample line (`name{labels} value`) in Prometheus text, if present. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A process's resident memory in bytes (VmRSS), as `ps` shows it. */
export async function residentBytes(pid: number): Promise<number> {
  const kib = statusField(await readFile(`/proc/${pid}/status`, 'utf8'), 'VmRSS').split(/\s+/)[0];
  return Number(kib) * 1024;
}

/** What a user would check after hull returns: no VM, no socket, no mount, no state left. */
export async function assertNothingLeft(root: string): Promise<void> {
  try {
    await checkNothingLeft(root);
  } catch (err) {
    await sweep(root);
    throw err;
  }
}

async function checkNothingLeft(root: string): Promise<void> {
  assert.deepEqual(await qemuProcessesUsing(root), [], 'no QEMU process is left');
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(root));
  assert.deepEqual(mounts, [], 'no mount is left');
  const entries = await readdir(root).catch(() => [] as string[]);
  assert.deepEqual(entries, [], `the runtime root ${root} is empty`);
}

/**
 * The usual set-up of a test file: private directories for the whole file, a check after each
 * test that nothing is left, and numbered busybox bundles with IDs of their own.
 */
export function bundleTests(name: string) {
  let dirs: Awaited<ReturnType<typeof privateDirs>> | undefined;
  let n = 0;
  before(async () => {
    dirs = await privateDirs(name);
  });
  after(() => dirs?.cleanup());
  afterEach(() => assertNothingLeft(dirs!.root));
  return {
    get root() {
      return dirs!.root;
    },
    get scratch() {
      return dirs!.scratch;
    },
    async bundle(args: string[], edit?: (spec: Spec) => void): Promise<{ dir: string; id: string }> {
      // Numbered before any wait: bundles made side by side each keep their own number.
      const number = ++n;
      const dir = join(dirs!.scratch, `bundle-${number}`);
      await mkdir(dir);
      await makeBusyboxBundle(dir, args, edit);
      return { dir, id: `${name}-${number}` };
    },
  };
}

/** The repository's bin/hull, the path container clients are configured with. */
export const HULL_COMMAND = resolve(fileURLToPath(import.meta.url), '../../../../bin/hull');

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a client command (podman, docker, script) to completion, never rejecting. */
export function runCommand(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return new Promise((res) => {
    execFile(file, args, { env, timeout: 180_000 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/**
 * `hull --root ROOT VERB ARGS…` as conmon runs create, its output to a file: the monitor keeps
 * the command's stdout and stderr for the container's life, as a detached runc container keeps
 * runc's, so pipes would stay open. Fails with the command's output on stderr.
 */
export function hullKeepingOutput(
  root: string,
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<CommandResult> {
  const out = `${root}.detached.out`;
  return runCommand(
    'sh',
    [
      '-c',
      `"$0" "$@" > ${out} 2>&1 < /dev/null || { cat ${out} >&2; exit 1; }`,
      process.execPath,
      HULL,
      '--root',
      root,
      ...args,
    ],
    env && { ...process.env, ...env },
  );
}

/** `hull --root ROOT run --detach ARGS…` (see hullKeepingOutput). */
export function hullDetached(root: string, args: string[], env?: NodeJS.ProcessEnv): Promise<CommandResult> {
  return hullKeepingOutput(root, ['run', '--detach', ...args], env);
}
