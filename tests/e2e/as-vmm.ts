import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hullJailPath, shareServerPath } from '../../src/hypervisor/jail/jail.js';

/** A user no process has: what a VMM runs as. */
export const VMM_UID = 3_000_000_099;

/** What a script printing this line waits for (a line on its stdin) while the test looks on. */
export const PAUSE = 'PAUSE';

export interface VmmScript {
  scratch: string;
  /** The share the script sees, through hull-share-server, as QEMU does. */
  share: string;
  /** Python 3 source; its first argument is the share. */
  source: string;
  /** The open-files limit of the VMM and so of its share server (prlimit), if not the usual. */
  nofile?: number;
  /** Called when the script prints PAUSE, with the VMM's pid (the share server is its child). */
  atPause?: (vmmPid: number) => Promise<void>;
}

/**
 * Runs a Python script confined by hull-jail exactly as QEMU is (its user, no capabilities,
 * seccomp, the share only through hull-share-server): what a compromised QEMU can do. Resolves
 * to its stdout; rejects if it fails or takes over two minutes.
 */
export async function runAsVmm(run: VmmScript): Promise<string> {
  const dir = await mkdtemp(join(run.scratch, 'vmm-'));
  const script = join(dir, 'script.py');
  await writeFile(script, run.source);
  const jailRoot = join(dir, 'jail');
  await mkdir(jailRoot);
  const jail = [
    hullJailPath(),
    '--root',
    jailRoot,
    ...['/lib', '/lib64', '/bin'].flatMap((p) => ['--link', p]),
    ...['/usr', '/etc/ld.so.cache', script, shareServerPath()].flatMap((p) => ['--ro', p]),
    '--share',
    run.share,
    '--share-server',
    shareServerPath(),
    '--dev',
    '/dev/null',
    '--proc',
    '--uid',
    String(VMM_UID),
    '--gid',
    String(VMM_UID),
    '--',
    '/usr/bin/python3',
    script,
    run.share,
  ];
  const argv = run.nofile === undefined ? jail : ['prlimit', `--nofile=${run.nofile}:${run.nofile}`, ...jail];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let paused = false;
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (paused || !stdout.includes(`${PAUSE}\n`)) return;
      paused = true;
      (run.atPause?.(child.pid!) ?? Promise.resolve()).then(
        () => child.stdin.write('\n'),
        (err: unknown) => {
          child.kill('SIGKILL');
          reject(err);
        },
      );
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout.replace(`${PAUSE}\n`, ''));
      else reject(new Error(`the VMM's script exited ${code ?? signal}: ${stderr}`));
    });
  });
}
