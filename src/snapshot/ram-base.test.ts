import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, open, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { hostBootId } from '../sys/host-boot-id.js';
import { templateDir } from '../template/store.js';
import {
  isBaseOf,
  isRamBaseRecord,
  linkRamBase,
  openRamBase,
  type RamBaseRecord,
  ramBasePath,
  readCheckedRamBase,
  recordLoadedBase,
  savedRamBaseOf,
  templateRamBase,
} from './ram-base.js';
import { readStateRecord } from './state-file.js';

const PAGE = 4096;
const signal = () => AbortSignal.timeout(10_000);
const refuse = (why: string) => new Error(why);
let scratch: string;
let memory: string;
let content: Buffer;
const identity = { dev: '7', ino: '42' };

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'hull-ram-base-'));
  process.env.HULL_STATE_DIR = join(scratch, 'state');
  await mkdir(templateDir('k1'), { recursive: true, mode: 0o700 });
  // A "template memory" of 3 MiB with two written pages, the rest zero.
  content = Buffer.alloc(3 * 2 ** 20);
  randomBytes(PAGE).copy(content, 5 * PAGE);
  randomBytes(PAGE).copy(content, 700 * PAGE);
  memory = join(scratch, 'memory');
  await writeFile(memory, content);
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function pausedDir(): Promise<{ dir: string; record: RamBaseRecord }> {
  const base = await templateRamBase('k1', memory, identity, signal());
  const dir = await mkdtemp(join(scratch, 'saved-'));
  await linkRamBase(base.path, dir);
  return { dir, record: base.record };
}

test("a template's memory is kept once, sparse, with its size and hash; a paused directory links it", async () => {
  const { dir, record } = await pausedDir();
  assert.equal(record.bytes, content.length);
  assert.equal(record.sha256, createHash('sha256').update(content).digest('hex'));
  assert.ok(await isBaseOf(record, identity));
  assert.ok(!(await isBaseOf(record, { dev: '7', ino: '43' })), 'another memfd is another base');
  assert.ok(
    !(await isBaseOf({ ...record, hostBoot: 'another boot' }, identity)),
    'so is one of another boot',
  );
  assert.equal(record.hostBoot, await hostBootId());
  const info = await stat(ramBasePath(dir));
  assert.equal(info.nlink, 2, "the paused directory's base is the template's file, linked");
  assert.equal(info.mode & 0o777, 0o600);
  assert.ok(info.blocks * 512 <= 64 * 1024, `zero pages are holes: ${info.blocks * 512} bytes allocated`);
  assert.ok((await readFile(ramBasePath(dir))).equals(content));
  // Asked again for the same memory: the file is not written again.
  const again = await templateRamBase('k1', memory, identity, signal());
  assert.equal((await stat(again.path)).ino, info.ino);
});

test('a whole base reads back with its hash checked; a changed byte, size, mode or a symlink is refused', async () => {
  const { dir, record } = await pausedDir();
  const read = async () => {
    const file = await openRamBase(dir, record, refuse);
    try {
      let bytes = 0;
      const count = async (chunk: Buffer) => {
        bytes += chunk.length;
      };
      await readCheckedRamBase(file, record, count, refuse, signal());
      return bytes;
    } finally {
      await file.close();
    }
  };
  assert.equal(await read(), content.length);

  const file = await open(ramBasePath(dir), 'r+');
  await file.write(Buffer.from([1]), 0, 1, 100 * PAGE);
  await assert.rejects(read(), /its RAM base is not the one recorded at save \(SHA-256\)/);
  await file.write(Buffer.from([0]), 0, 1, 100 * PAGE);
  await file.truncate(content.length - PAGE);
  await assert.rejects(read(), /its RAM base is \d+ bytes, \d+ were saved/);
  await file.truncate(content.length);
  await file.close();
  assert.equal(await read(), content.length, 'made whole again, it reads');

  await chmod(ramBasePath(dir), 0o644);
  await assert.rejects(read(), /must be this user's and 0600/);
  await rm(ramBasePath(dir));
  await symlink(memory, ramBasePath(dir));
  await assert.rejects(read(), /its RAM base is a symlink/);
  await rm(ramBasePath(dir));
  await assert.rejects(read(), /cannot open its RAM base \(ENOENT\)/);
});

test('a saved-state record is one only with a well-formed base', async () => {
  const { record } = await pausedDir();
  assert.ok(isRamBaseRecord(record));
  for (const bad of [
    { ...record, sha256: 'x' },
    { ...record, bytes: -1 },
    { ...record, memory: { dev: 1, ino: 2 } },
    { ...record, hostBoot: undefined },
    null,
    'base',
  ]) {
    assert.ok(!isRamBaseRecord(bad), JSON.stringify(bad));
  }
  const dir = await mkdtemp(join(scratch, 'record-'));
  const stateRecord = {
    format: 'hull-vm-state/1',
    bytes: 8,
    sha256: 'a'.repeat(64),
    vmm: 'q',
    shape: 's',
    memoryMiB: 3,
    withMemory: true,
    streamIdsFrom: 1,
    savedAt: '',
    saveMs: 1,
  };
  await writeFile(join(dir, 'vm-state.json'), JSON.stringify({ ...stateRecord, ramBase: record }));
  assert.deepEqual((await readStateRecord(dir))?.ramBase, record);
  await writeFile(join(dir, 'vm-state.json'), JSON.stringify({ ...stateRecord, ramBase: { bytes: 1 } }));
  assert.equal(await readStateRecord(dir), undefined, 'a damaged base makes no record');
});

test("a base made memory again is that VM's base at its next pause; a new link forgets it", async () => {
  const { dir, record } = await pausedDir();
  const loaded = { dev: '9', ino: '77' };
  assert.equal(await savedRamBaseOf(dir, loaded), undefined, 'not before it was loaded');
  await recordLoadedBase(dir, record, loaded);
  assert.deepEqual(await savedRamBaseOf(dir, loaded), { ...record, memory: loaded });
  assert.equal(await savedRamBaseOf(dir, identity), undefined, 'another memory is not it');
  await linkRamBase(ramBasePath(join(templateDir('k1'))), dir);
  assert.equal(await savedRamBaseOf(dir, loaded), undefined, 'linked anew, the loaded record goes');
});
