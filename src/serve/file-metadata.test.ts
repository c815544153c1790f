import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseStat } from './file-metadata.js';

describe("a guest's stat output", () => {
  test('a file, a directory and a symlink with its target', () => {
    assert.deepEqual(parseStat('/data/a.txt', '81a4 5 1000 100 1796417483\n'), {
      name: 'a.txt',
      path: '/data/a.txt',
      type: 'file',
      size: 5,
      mode: 0o644,
      uid: 1000,
      gid: 100,
      modifiedAt: new Date(1796417483 * 1000).toISOString(),
    });
    assert.equal(parseStat('/data/', '41ed 4096 0 0 1\n').type, 'dir');
    assert.equal(parseStat('/data/', '41ed 4096 0 0 1\n').name, 'data');
    const link = parseStat('/tmp/l', 'a1ff 12 0 0 1\n/proc/1/root\n');
    assert.deepEqual([link.type, link.symlinkTarget], ['symlink', '/proc/1/root']);
    assert.equal(parseStat('/dev/null', '21b6 0 0 0 1\n').type, 'other');
  });

  test('is refused, not trusted, when a figure is malformed or out of range', () => {
    for (const output of [
      '',
      'zz 1 0 0 1',
      '81a4 -1 0 0 1',
      '81a4 1 99999999999 0 1',
      '81a4 1 0 0',
      '181a4 1 0 0 1',
    ]) {
      assert.throws(
        () => parseStat('/x', output),
        (err) => isHullError(err) && err.code === 'ERR_AGENT',
        output,
      );
    }
  });
});
