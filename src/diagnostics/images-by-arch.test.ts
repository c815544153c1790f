import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatImagesByArch } from './images-by-arch.js';

test("hull env and hull check name the host's architecture and each architecture's image", () => {
  const images = [
    { arch: 'x86_64', hash: 'c20b04dc63abc899', kernel: '6.1.0-57-amd64' },
    { arch: 'arm64', hash: undefined, stale: false },
  ] as const;
  assert.equal(
    formatImagesByArch([...images], 'x86_64'),
    'host x86_64; images: x86_64 c20b04dc63abc899 (6.1.0-57-amd64), arm64 none (`hull image build --arch arm64`)',
  );
  // On an arm64 host, its own architecture's build needs no --arch; a stale image says so.
  assert.equal(
    formatImagesByArch(
      [
        { arch: 'x86_64', stale: true },
        { arch: 'arm64', hash: 'd21f3c8fd69affe6', kernel: '6.1.0-57-arm64' },
      ],
      'arm64',
    ),
    'host arm64; images: x86_64 stale (`hull image build --arch x86_64`), arm64 d21f3c8fd69affe6 (6.1.0-57-arm64)',
  );
});
