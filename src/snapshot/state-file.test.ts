import assert from 'node:assert/strict';
import { chmod, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { isHullError } from '../errors.js';
import type { Vm } from '../hypervisor/hypervisor.js';
import { openCheckedState, saveVmState, stateFilePath } from './state-file.js';

/** A VM whose saved state is QEMU's magic followed by `body`. */
function fakeVm(body: Buffer, calls: string[] = []): Vm {
  return {
    saveState: async (sink: Writable, options: { resume: boolean; whileStopped?: () => Promise<void> }) => {
      calls.push('stop');
      await new Promise<void>((resolve) => sink.end(Buffer.concat([MAGIC, body]), resolve));
      await options.whileStopped?.();
      if (options.resume) calls.push('cont');
    },
  } as unknown as Vm;
}
const MAGIC = Buffer.from([0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]);
const what = {
  vmm: 'qemu 1',
  shape: 'abc',
  memoryMiB: 1,
  withMemory: true,
  resume: false,
  streamIdsFrom: () => 99,
};
const expect = { vmm: 'qemu 1', shape: 'abc' };
const signal = () => AbortSignal.timeout(10_000);

const dirs: string[] = [];
after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});
async function saved(body = Buffer.alloc(100_000, 7)): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hull-state-'));
  dirs.push(dir);
  await saveVmState(fakeVm(body), dir, what, signal());
  return dir;
}

test('a saved state is recorded (size, hash, stream ids), 0600, and opens when checked', async () => {
  const dir = await saved();
  const { file, record } = await openCheckedState(dir, expect, signal());
  await file.close();
  assert.equal(record.bytes, 100_008);
  assert.equal(record.streamIdsFrom, 99);
  assert.match(record.sha256, /^[0-9a-f]{64}$/);
  assert.equal((await import('node:fs')).statSync(stateFilePath(dir)).mode & 0o777, 0o600);
});

test('a snapshot runs its disk copy while the VM is stopped, then lets it run on', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hull-state-'));
  dirs.push(dir);
  const calls: string[] = [];
  await saveVmState(
    fakeVm(Buffer.from('x'), calls),
    dir,
    { ...what, resume: true, whileStopped: async () => void calls.push('copy') },
    signal(),
  );
  assert.deepEqual(calls, ['stop', 'copy', 'cont']);
});

async function refused(dir: string, pattern: RegExp, against = expect): Promise<void> {
  await assert.rejects(openCheckedState(dir, against, signal()), (err: unknown) => {
    assert.ok(isHullError(err, 'ERR_SAVED_STATE'), String(err));
    assert.match(err.message, pattern);
    assert.match(err.message, /; the sandbox stays paused$/);
    return true;
  });
}

test('a damaged, truncated, foreign, exposed or unrecorded state is refused in one line', async () => {
  const damaged = await saved();
  const file = await open(stateFilePath(damaged), 'r+');
  await file.write(Buffer.from([0]), 0, 1, 50_000);
  await file.close();
  await refused(damaged, /SHA-256 is not the one recorded/);

  const truncated = await saved();
  await writeFile(stateFilePath(truncated), MAGIC, { mode: 0o600 });
  await refused(truncated, /its size is 8 bytes, 100008 were saved/);

  const notQemu = await saved();
  const bytes = await readFile(stateFilePath(notQemu));
  bytes[0] = 0;
  await writeFile(stateFilePath(notQemu), bytes);
  await refused(notQemu, /not a QEMU migration stream/);

  await refused(await saved(), /saved by another QEMU/, { vmm: 'qemu 2', shape: 'abc' });
  await refused(await saved(), /a VM of another shape/, { vmm: 'qemu 1', shape: 'xyz' });

  const exposed = await saved();
  await chmod(stateFilePath(exposed), 0o644);
  await refused(exposed, /0600/);

  const unrecorded = await saved();
  await rm(join(unrecorded, 'vm-state.json'));
  await refused(unrecorded, /not a state hull saved/);
});

test('a save without room for the VM is refused before writing, leaving no file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hull-state-'));
  dirs.push(dir);
  await assert.rejects(
    saveVmState(fakeVm(Buffer.alloc(1)), dir, { ...what, memoryMiB: 2 ** 40 }, signal()),
    (err: unknown) => isHullError(err, 'ERR_SAVED_STATE') && /not enough disk space/.test(err.message),
  );
  assert.deepEqual(await readdir(dir), []);
});

test('a state that is a symlink (to another saved state), a hardlink or a FIFO is refused without waiting, and so is such a record', async () => {
  const other = await saved();
  const linked = await saved();
  await rm(stateFilePath(linked));
  await (await import('node:fs/promises')).symlink(stateFilePath(other), stateFilePath(linked));
  await refused(linked, /it is a symlink/);

  const hardlinked = await saved();
  await rm(stateFilePath(hardlinked));
  await (await import('node:fs/promises')).link(stateFilePath(other), stateFilePath(hardlinked));
  await refused(hardlinked, /it has 2 links, not one of its own/);

  const fifo = await saved();
  await rm(stateFilePath(fifo));
  await runMkfifo(stateFilePath(fifo));
  await refused(fifo, /not a regular file/);

  // The record: a FIFO would hang a plain read, /dev/zero would be read without end.
  for (const target of ['fifo', '/dev/zero', join(other, 'vm-state.json')]) {
    const dir = await saved();
    await rm(join(dir, 'vm-state.json'));
    if (target === 'fifo') await runMkfifo(join(dir, 'vm-state.json'));
    else await (await import('node:fs/promises')).symlink(target, join(dir, 'vm-state.json'));
    await refused(dir, /not a state hull saved/);
  }
});

async function runMkfifo(path: string): Promise<void> {
  const { run } = await import('../sys/exec.js');
  await run('mkfifo', ['-m', '600', path]);
}

test('a save whose pages cannot be told apart (no plan, or a stream the filter cannot read) is whole and names no base', async () => {
  const base = { bytes: 4096, sha256: 'a'.repeat(64), memory: { dev: '1', ino: '2' }, hostBoot: 'b' };
  for (const plan of [
    async () => undefined,
    async () => ({ block: 'ram', blockBytes: 4096, mustSend: () => false }),
  ]) {
    const dir = await mkdtemp(join(tmpdir(), 'hull-state-'));
    dirs.push(dir);
    const body = Buffer.alloc(100_000, 7);
    const record = await saveVmState(fakeVm(body), dir, { ...what, ramFilter: { base, plan } }, signal());
    assert.equal(record.bytes, 100_008, 'every byte is kept');
    assert.equal(record.ramBase, undefined);
    assert.equal(record.unfilteredBytes, undefined);
    const { file } = await openCheckedState(dir, expect, signal());
    await file.close();
  }
});
