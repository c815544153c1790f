import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { watchShareServer } from './share-server.js';

/**
 * A stand-in VMM: a shell whose child becomes a program named as hull-share-server only after
 * `delay` seconds, as hull-jail's forked child takes that name at its exec while QEMU starts.
 */
let dir: string;
let server: string;
const started: ChildProcess[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hull-share-server-test-'));
  server = join(dir, 'hull-share-server');
  await copyFile('/bin/sleep', server);
});

after(async () => {
  // Each stand-in leads its own process group: its server child goes with it.
  for (const child of started) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {}
  }
  await rm(dir, { recursive: true, force: true });
});

function standInVmm(delay: number): ChildProcess {
  const vmm = spawn('sh', ['-c', `sh -c 'sleep ${delay}; exec "$0" 30' "$1" & exec sleep 30`, 'sh', server], {
    stdio: 'ignore',
    detached: true,
  });
  started.push(vmm);
  return vmm;
}

test('a share server named after QEMU has connected is still found, and its loss told', async () => {
  const vmm = standInVmm(0.3);
  const exited = new Promise((resolve) => vmm.once('exit', resolve));
  let lost: number | undefined;
  const watch = await watchShareServer(
    vmm.pid!,
    exited,
    (s) => {
      lost = s.pid;
    },
    { expected: true, signal: AbortSignal.timeout(5000) },
  );
  assert.ok(watch, 'the server is found once it has its name');
  process.kill(watch.server.pid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 100));
  watch.checkNow();
  assert.equal(lost, watch.server.pid);
});

test('a VMM without a share server is not waited for', async () => {
  const vmm = spawn('sleep', ['30'], { stdio: 'ignore', detached: true });
  started.push(vmm);
  const exited = new Promise((resolve) => vmm.once('exit', resolve));
  const begun = Date.now();
  const watch = await watchShareServer(vmm.pid!, exited, () => {}, {
    expected: false,
    signal: AbortSignal.timeout(5000),
  });
  assert.equal(watch, undefined);
  assert.ok(Date.now() - begun < 500, 'answered at once');
});
