import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { agentBundlePath } from '../paths.js';
import { scratchDir } from '../testing/scratch.js';
import { currentImage, type ImageManifest, listImages, markCurrent, sha256File } from './manifest.js';

/** Images hold the agent beside this hull (or there is none in this checkout). */
const agentSha256 = await sha256File(agentBundlePath()).catch(() => 'none');

afterEach(() => {
  delete process.env.HULL_STATE_DIR;
});

async function writeImage(state: string, manifest: ImageManifest): Promise<void> {
  const dir = join(state, 'images', manifest.hash);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
}

const manifest = (hash: string, builtAt: string, arch?: 'arm64'): ImageManifest => ({
  hash,
  ...(arch ? { arch } : {}),
  kernel: {
    kind: 'debian',
    release: arch ? '6.1.0-57-arm64' : '6.1.0-57-amd64',
    source: 'x',
    deviceDiscovery: 'acpi',
  },
  agentSha256,
  builtAt,
});

test('images of both architectures live side by side, each with its own current one', async () => {
  const state = await scratchDir('hull-images-');
  process.env.HULL_STATE_DIR = state;
  await writeImage(state, manifest('1111111111111111', '2026-01-01T00:00:00Z'));
  await writeImage(state, manifest('2222222222222222', '2026-01-02T00:00:00Z', 'arm64'));
  await writeImage(state, manifest('3333333333333333', '2026-01-03T00:00:00Z', 'arm64'));
  await markCurrent('1111111111111111');
  await markCurrent('2222222222222222', 'arm64');
  assert.deepEqual(
    (await listImages()).map((i) => [i.hash.slice(0, 1), i.arch, i.current]),
    [
      ['3', 'arm64', false],
      ['2', 'arm64', true],
      ['1', 'x86_64', true],
    ],
    'an image from before there was a choice is x86_64',
  );
  assert.equal(
    (await currentImage()).manifest.hash,
    '1111111111111111',
    "x86_64's pointer is the one it was",
  );
  assert.equal((await currentImage('arm64')).manifest.hash, '2222222222222222');
});

test('no arm64 image: the error names the build to run', async () => {
  const state = await scratchDir('hull-images-');
  process.env.HULL_STATE_DIR = state;
  await writeImage(state, manifest('1111111111111111', '2026-01-01T00:00:00Z'));
  await markCurrent('1111111111111111');
  await assert.rejects(
    currentImage('arm64'),
    /no arm64 guest image in .*: run `hull image build --arch arm64` first/,
  );
});
