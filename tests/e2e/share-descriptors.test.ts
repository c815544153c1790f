import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { shareServerOf } from '../../src/hypervisor/jail/share-server.js';
import { PAUSE, runAsVmm } from './as-vmm.js';
import { privateDirs } from './harness.js';

/**
 * Issue 24, finding 2: the share server held one descriptor per file the kernel had looked up,
 * so past its open-files limit every lookup, open and create of the share failed (EMFILE),
 * and a create that failed left its file. A VMM (runAsVmm) makes, lists, reads and stats many
 * files; at PAUSE the test counts the server's descriptors and may change files behind it.
 */
const MANY_FILES = (count: number) => `
import os, sys, json, time
share = sys.argv[1]
d = share + '/ctr/rootfs/many'
errors = {}
def attempt(what, fn):
    try:
        return fn()
    except (OSError, AssertionError) as e:
        errors[what] = errors.get(what, '') or getattr(e, 'strerror', 'wrong size or contents')
def make(i):
    fd = os.open(d + '/f%d' % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    os.write(fd, b'%d' % i); os.close(fd)
def check(name, i):
    assert os.stat(d + '/' + name).st_size == len(b'%d' % i)
    with open(d + '/' + name, 'rb') as f: assert f.read() == b'%d' % i
os.mkdir(d)
for i in range(${count}): attempt('create', lambda: make(i))
listed = attempt('list', lambda: os.listdir(d)) or []
for i in range(${count}): attempt('stat and read', lambda: check('f%d' % i, i))
# Held as the kernel holds a file: its node, not its name.
held = os.open(d + '/f1', os.O_PATH)
print('${PAUSE}', flush=True); sys.stdin.readline()
# Renamed files are found (and read) by their new names, the old ones are gone.
for i in range(0, ${count}, 10): attempt('rename', lambda: os.rename(d + '/f%d' % i, d + '/g%d' % i))
for i in range(0, ${count}, 10): attempt('read renamed', lambda: check('g%d' % i, i))
gone = sum(1 for i in range(0, ${count}, 10) if not os.path.exists(d + '/f%d' % i))
time.sleep(1.2)  # past the kernel's attribute cache
# Either still the file it was (the server kept its descriptor) or stale, never the new one.
seen = attempt('held', lambda: os.fstat(held))
held_is = 'size %d' % seen.st_size if seen else errors.pop('held')
print(json.dumps({'listed': len(listed), 'errors': errors, 'gone': gone, 'held': held_is}))
`;

async function descriptorsOf(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length;
}

describe("the share server's descriptors", { timeout: 300_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  before(async () => {
    dirs = await privateDirs('share-fds');
  });
  after(() => dirs.cleanup());

  async function serve(name: string, count: number, nofile?: number) {
    const share = join(dirs.scratch, name);
    const rootfs = join(share, 'ctr', 'rootfs');
    await mkdir(rootfs, { recursive: true });
    // A container's rootfs is a mount below the share's read-only top, as hull makes it.
    execFileSync('mount', ['--bind', rootfs, rootfs]);
    let heldAtPause = -1;
    const out = await runAsVmm({
      scratch: dirs.scratch,
      share,
      source: MANY_FILES(count),
      nofile,
      atPause: async (vmm) => {
        const server = await shareServerOf(vmm);
        assert.ok(server, 'the share server runs beside the VMM');
        heldAtPause = await descriptorsOf(server);
        // f1, which the VMM holds, is replaced behind the server's back.
        await rename(join(rootfs, 'many', 'f1'), join(rootfs, 'f1-moved'));
        await writeFile(join(rootfs, 'many', 'f1'), 'another file');
      },
    }).finally(() => execFileSync('umount', [rootfs]));
    const result = JSON.parse(out) as { listed: number; errors: object; gone: number; held: string };
    return { ...result, heldAtPause, rootfs };
  }

  test('25,000 files, past the usual limit of 20,000 open files: each served, with at most 4,096 descriptors', async () => {
    const r = await serve('usual', 25_000);
    assert.deepEqual(r.errors, {}, 'every create, list, stat, read and rename worked');
    assert.equal(r.listed, 25_000);
    assert.equal(r.gone, 2_500, 'renamed files are no longer at their old names');
    assert.ok(r.heldAtPause <= 4_096 + 32, `the server held ${r.heldAtPause} descriptors`);
    assert.match(
      r.held,
      /^(size 1|Stale file handle)$/,
      'a file replaced behind the server is never another',
    );
    assert.equal((await readdir(join(r.rootfs, 'many'))).length, 25_000);
  });

  test('under a limit of 64 open files, 2,000 files each served and nothing failed left behind', async () => {
    const r = await serve('small', 2_000, 64);
    assert.deepEqual(r.errors, {}, 'no EMFILE for any create, list, stat, read or rename');
    assert.equal(r.listed, 2_000);
    assert.equal(r.gone, 200);
    assert.ok(r.heldAtPause <= 64);
    assert.equal(r.held, 'Stale file handle', 'evicted, and found replaced when reopened');
    assert.equal((await readdir(join(r.rootfs, 'many'))).length, 2_000, 'exactly the files made');
    assert.equal(await readFile(join(r.rootfs, 'many', 'g10'), 'utf8'), '10');
  });
});
