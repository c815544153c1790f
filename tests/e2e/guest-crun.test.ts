import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { isHullError } from '../../src/errors.js';
import { guestCrun } from '../../src/image/crun.js';
import { currentImage, sha256File } from '../../src/image/manifest.js';
import { stateDir } from '../../src/paths.js';
import { privateDirs } from './harness.js';

const run = promisify(execFile);

/** The upstream release in a Debian version: no epoch, no Debian revision. */
function upstreamOf(debianVersion: string): string {
  return debianVersion.replace(/^\d+:/, '').replace(/-[^-]*$/, '');
}

/** Every file under `dir` whose name starts with `prefix`, as paths relative to `dir`. */
async function filesNamed(dir: string, prefix: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter((path) => basename(path).startsWith(prefix));
}

test("the guest's crun is the host crun package's release with its features but systemd, static-pie, and the current image's", async () => {
  const { stdout: version } = await run('dpkg-query', ['--show', '--showformat=$' + '{Version}', 'crun']);
  // Built by the image build (setup's); found in the cache here, not built again.
  const crun = await guestCrun(join(stateDir(), 'cache'));

  const { stdout: said } = await run(crun, ['--version']);
  assert.match(said, new RegExp(`^crun version ${upstreamOf(version).replaceAll('.', '\\.')}\\n`));
  const { stdout: debians } = await run('/usr/bin/crun', ['--version']);
  const features = (text: string) => text.trim().split('\n').pop()!.split(' ');
  assert.deepEqual(
    features(said),
    features(debians).filter((f) => f !== '+SYSTEMD'),
    "Debian's crun's features, systemd's left out",
  );

  const { stdout: header } = await run('readelf', ['--wide', '--file-header', '--program-headers', crun]);
  assert.match(header, /Type:\s+DYN/, 'position-independent (address-space randomisation)');
  assert.doesNotMatch(header, /INTERP/, 'no dynamic loader: nothing else is loaded');
  assert.match(header, /GNU_RELRO/);
  const { stdout: dynamic } = await run('readelf', ['--wide', '--dynamic', crun]);
  assert.match(dynamic, /\(FLAGS_1\)\s+Flags: NOW PIE/);
  assert.doesNotMatch(dynamic, /\(NEEDED\)/);

  // The current image's root holds that very file, and no library of systemd's.
  const dirs = await privateDirs('guest-crun');
  try {
    const tree = join(dirs.scratch, 'rootfs');
    await run('fsck.erofs', [`--extract=${tree}`, (await currentImage()).rootfs]);
    assert.equal(
      await sha256File(join(tree, 'usr/bin/crun')),
      await sha256File(crun),
      "the image's crun is another build (was the host's crun upgraded since? run `hull image build`)",
    );
    assert.ok((await filesNamed(tree, 'node')).length > 0, 'the tree was extracted');
    assert.deepEqual(await filesNamed(tree, 'libsystemd'), []);
  } finally {
    await dirs.cleanup();
  }
});

test("a crun version Debian's archive lacks: one line saying what to do, and no build left behind", async () => {
  const dirs = await privateDirs('guest-crun-missing');
  try {
    const cache = join(dirs.scratch, 'cache');
    await mkdir(cache);
    const before = await readdir(tmpdir());
    // As when a point release has replaced the crun the host installed.
    await assert.rejects(
      guestCrun(cache, { sourceVersion: '0.0.1-0', signal: AbortSignal.timeout(120_000) }),
      (err: unknown) => {
        assert.ok(isHullError(err, 'ERR_IMAGE_BUILD'), String(err));
        const message = (err as Error).message;
        assert.doesNotMatch(message, /\n/);
        assert.match(message, /crun 0\.0\.1-0/);
        assert.match(message, /apt-get update && apt-get install crun/);
        return true;
      },
    );
    assert.deepEqual(await readdir(cache), [], 'no half-built crun is kept');
    const left = (await readdir(tmpdir())).filter((f) => f.startsWith('hull-crun-') && !before.includes(f));
    assert.deepEqual(left, [], 'no work directory remains');
  } finally {
    await dirs.cleanup();
  }
});
