import assert from 'node:assert/strict';
import { readdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processesMentioning } from '../../src/sys/processes.js';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { busyboxImageArchive, IMAGE } from '../fixtures/oci-image.js';
import { privatePodman } from '../fixtures/podman.js';
import { privateDirs, privateImageState, processExit } from './harness.js';

/**
 * Issue 24: the memory holder of a template made under a client outlives the container, so it
 * must not hold the client up: not be the child of its subreaper (conmon waits for every one),
 * not sit in its cgroups, not keep its descriptors.
 */

/** The pid of the one template holder a private state directory has. */
async function holderOf(state: string): Promise<number> {
  const keys = await readdir(join(state, 'templates'));
  assert.equal(keys.length, 1, `one template was made: ${keys.join(' ')}`);
  const record = JSON.parse(await readFile(join(state, 'templates', keys[0]!, 'template.json'), 'utf8'));
  return record.memory.pid as number;
}

/** A holder on its own: in hull's cgroup everywhere, with its stdio and its memfd only. */
async function assertHolderOnItsOwn(pid: number): Promise<void> {
  const cgroups = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).trim().split('\n');
  for (const line of cgroups) assert.match(line, /:\/hull\/template-memory$/, `cgroup ${line}`);
  const fds = await readdir(`/proc/${pid}/fd`);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`)));
  const beyondStdio = targets.filter((_, i) => Number(fds[i]) > 2);
  assert.equal(beyondStdio.length, 1, `only its memory: ${beyondStdio.join(' ')}`);
  assert.match(beyondStdio[0]!, /^\/memfd:hull-template-/);
}

function stopHolder(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

describe('a new template under podman does not keep conmon alive', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  before(async () => {
    dirs = await privateDirs('holder-podman');
  });
  after(() => dirs.cleanup());

  test('conmon exits once the container is removed; the holder is in none of its cgroups', async () => {
    const d = dirs.scratch;
    // A state directory of the test's own: the template is made now, by this container.
    const { state } = await privateImageState(join(d, 'state'), {}, { sharedSnapshots: true });
    const config = join(d, 'hull.toml');
    await writeFile(config, `state_dir = "${state}"\n`);
    const { podman } = await privatePodman(join(d, 'podman'));
    const load = await podman('load', '-i', await busyboxImageArchive(join(d, 'image')));
    assert.equal(load.code, 0, load.stderr);
    let holder: number | undefined;
    try {
      const run = await podman(
        '--runtime-flag',
        `config=${config}`,
        'run',
        '-d',
        '--name',
        'h1',
        IMAGE,
        'sleep',
        '600',
      );
      assert.equal(run.code, 0, run.stderr);
      holder = await holderOf(state);
      const conmon = Number(
        (await podman('inspect', '--format', '{{.State.ConmonPid}}', 'h1')).stdout.trim(),
      );
      assert.ok(conmon > 0, 'podman names its conmon');
      assert.equal((await podman('--runtime-flag', `config=${config}`, 'rm', '-f', '-t', '0', 'h1')).code, 0);
      await processExit(conmon, 10_000);
      holder = await holderOf(state);
      await assertHolderOnItsOwn(holder);
    } finally {
      stopHolder(holder);
      await podman('rm', '-a', '-f');
    }
  });
});

describe('a new template under containerd does not keep the shim alive', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let containerd: Containerd;
  let state: string;
  before(async () => {
    dirs = await privateDirs('holder-ctr');
    ({ state } = await privateImageState(join(dirs.scratch, 'state'), {}, { sharedSnapshots: true }));
    // The shim takes containerd's environment: its state directory is the test's.
    process.env.HULL_STATE_DIR = state;
    containerd = await Containerd.start(join(dirs.scratch, 'c'));
    await containerd.importBusybox(join(dirs.scratch, 'image'));
  });
  after(async () => {
    delete process.env.HULL_STATE_DIR;
    await containerd?.stop();
    await dirs.cleanup();
  });

  test('the shim exits once the task is removed; the holder is in none of its cgroups', async () => {
    let holder: number | undefined;
    try {
      const run = await containerd.ctr(['run', '-d', '--runtime', HULL_RUNTIME, IMAGE, 'h2', 'sleep', '600']);
      assert.equal(run.code, 0, run.stderr);
      holder = await holderOf(state);
      const shims = await processesMentioning(containerd.socket);
      assert.ok(shims.length > 0, 'a shim serves the task');
      await containerd.ctr(['task', 'kill', '--signal', 'SIGKILL', 'h2']);
      for (let i = 0; i < 100 && (await containerd.ctr(['task', 'rm', 'h2'])).code !== 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      assert.equal((await containerd.ctr(['containers', 'rm', 'h2'])).code, 0);
      for (const pid of shims) await processExit(pid, 10_000);
      await assertHolderOnItsOwn(holder);
    } finally {
      stopHolder(holder);
    }
  });
});
