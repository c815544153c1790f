import assert from 'node:assert/strict';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { assertNothingLeft, type HullResult, hull, privateDirs } from './harness.js';

/** A failure as a user should meet it: one line saying what to fix, non-zero exit, nothing left. */
async function assertCleanFailure(r: HullResult, pattern: RegExp, root: string): Promise<void> {
  assert.notEqual(r.code, 0, 'hull exits non-zero');
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr, got: ${r.stderr}`);
  assert.match(lines[0]!, /^hull: /);
  assert.match(lines[0]!, pattern);
  await assertNothingLeft(root);
}

describe('hull run: bad input', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let good: string;
  before(async () => {
    dirs = await privateDirs('run-errors');
    good = join(dirs.scratch, 'good');
    await mkdir(good);
    await makeBusyboxBundle(good, ['true']);
  });
  after(() => dirs.cleanup());

  const run = (args: string[], env?: NodeJS.ProcessEnv) =>
    hull(['--root', dirs.root, 'run', ...args], { env });

  test('a missing bundle directory', async () => {
    const r = await run(['--bundle', join(dirs.scratch, 'nowhere'), 'e1']);
    await assertCleanFailure(r, /bundle .*nowhere does not exist/, dirs.root);
  });

  test('with --log and --log-format json the error is also a log line callers can show', async () => {
    const log = join(dirs.scratch, 'hull.log');
    const r = await hull([
      '--root',
      dirs.root,
      '--log',
      log,
      '--log-format',
      'json',
      'run',
      '--bundle',
      join(dirs.scratch, 'nowhere'),
      'e0',
    ]);
    assert.notEqual(r.code, 0);
    const lines = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, string>);
    const last = lines.at(-1)!;
    assert.equal(last.level, 'error');
    assert.match(last.msg!, /bundle .*nowhere does not exist/);
    assert.ok(!Number.isNaN(Date.parse(last.time!)), 'time is a timestamp');
    await assertNothingLeft(dirs.root);
  });

  test('a bundle without config.json', async () => {
    const dir = join(dirs.scratch, 'empty-bundle');
    await mkdir(dir);
    const r = await run(['--bundle', dir, 'e2']);
    await assertCleanFailure(r, /config\.json is missing/, dirs.root);
  });

  test('malformed JSON in config.json', async () => {
    const dir = join(dirs.scratch, 'bad-json');
    await mkdir(dir);
    await writeFile(join(dir, 'config.json'), '{"ociVersion": "1.0.2", "process": ');
    const r = await run(['--bundle', dir, 'e3']);
    await assertCleanFailure(r, /config\.json is not valid JSON/, dirs.root);
  });

  for (const [what, id, pattern] of [
    ['a slash', 'a/b', /invalid container ID/],
    ['dot-dot', '..', /must not contain "\.\."/],
    ['over 1024 bytes', 'x'.repeat(1025), /1025 bytes long: use at most 1024/],
  ] as const) {
    test(`an ID with ${what}`, async () => {
      const r = await run(['--bundle', good, id]);
      await assertCleanFailure(r, pattern, dirs.root);
    });
  }

  test('a bind mount whose source is missing', async () => {
    const dir = join(dirs.scratch, 'bad-mount');
    await mkdir(dir);
    await makeBusyboxBundle(dir, ['true'], (spec) => {
      spec.mounts!.push({ destination: '/data', type: 'bind', source: '/no/such/dir', options: ['rbind'] });
    });
    const r = await run(['--bundle', dir, 'e4']);
    await assertCleanFailure(r, /mount source \/no\/such\/dir .*does not exist/, dirs.root);
  });

  test('no guest image', async () => {
    const empty = join(dirs.scratch, 'empty-state');
    await mkdir(empty);
    const r = await run(['--bundle', good, 'e5'], { HULL_STATE_DIR: empty });
    await assertCleanFailure(r, /no guest image .*run `hull image build`/, dirs.root);
  });

  test('no QEMU installed', async () => {
    const r = await run(['--bundle', good, 'e6'], { PATH: join(dirs.scratch, 'no-bin') });
    await assertCleanFailure(
      r,
      /qemu-system-x86_64 is not installed: run `apt-get install qemu-system-x86`/,
      dirs.root,
    );
  });

  test('a VM that does not boot', async () => {
    // The real image, but with an initramfs that is not one: the kernel panics and the VM ends.
    const state = join(dirs.scratch, 'broken-state');
    const realImages = join(process.env.HULL_STATE_DIR || '/var/lib/hull', 'images');
    const hash = (await readFile(join(realImages, 'current'), 'utf8')).trim();
    const image = join(state, 'images', hash);
    await mkdir(image, { recursive: true });
    for (const f of ['kernel.elf', 'rootfs.erofs', 'manifest.json'])
      await symlink(join(realImages, hash, f), join(image, f));
    await writeFile(join(image, 'initrd.cpio'), 'this is not an initramfs');
    await writeFile(join(state, 'images', 'current'), `${hash}\n`);
    const r = await run(['--bundle', good, 'e7'], { HULL_STATE_DIR: state, HULL_ACCEL: 'tcg' });
    await assertCleanFailure(r, /the VM stopped while booting/, dirs.root);
  });

  test('an agent that does not answer within the deadline', async () => {
    const r = await run(['--bundle', good, 'e8'], { HULL_BOOT_TIMEOUT: '0.3' });
    await assertCleanFailure(r, /agent did not answer within 0\.3s/, dirs.root);
  });

  test('an ID that is already in use', async () => {
    await mkdir(join(dirs.root, 'taken'), { recursive: true });
    const r = await run(['--bundle', good, 'taken']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /^hull: container taken already exists/);
    assert.deepEqual(await import('node:fs/promises').then((fs) => fs.readdir(join(dirs.root, 'taken'))), []);
    await import('node:fs/promises').then((fs) => fs.rmdir(join(dirs.root, 'taken')));
  });
});
