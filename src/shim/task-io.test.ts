import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseIoTarget } from './task-io.js';

test("containerd's stdio strings: FIFO paths, file:// and binary:// URIs", () => {
  assert.deepEqual(parseIoTarget(''), { kind: 'none' });
  assert.deepEqual(parseIoTarget('/run/containerd/fifo/1/t-stdout'), {
    kind: 'fifo',
    path: '/run/containerd/fifo/1/t-stdout',
  });
  assert.deepEqual(parseIoTarget('fifo:///tmp/a'), { kind: 'fifo', path: '/tmp/a' });
  assert.deepEqual(parseIoTarget('file:///var/log/my%20app.log'), {
    kind: 'file',
    path: '/var/log/my app.log',
  });
  assert.deepEqual(parseIoTarget('binary:///usr/bin/logger?tag=web&verbose'), {
    kind: 'binary',
    path: '/usr/bin/logger',
    args: ['tag', 'web', 'verbose'],
  });
  assert.throws(
    () => parseIoTarget('http://example.com/x'),
    (e) => isHullError(e, 'ERR_CONFIG'),
  );
  assert.throws(
    () => parseIoTarget('relative/path'),
    (e) => isHullError(e, 'ERR_CONFIG'),
  );
});
