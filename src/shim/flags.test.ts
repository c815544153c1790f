import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseShimFlags, serveArgs } from './flags.js';

test("containerd's start command line parses, and the server's round-trips", () => {
  const flags = parseShimFlags([
    '-namespace',
    'k8s.io',
    '-address',
    '/run/containerd/containerd.sock',
    '-publish-binary',
    '/usr/bin/containerd',
    '-id',
    'abc',
    '-debug',
    'start',
  ]);
  assert.equal(flags.action, 'start');
  assert.equal(flags.namespace, 'k8s.io');
  assert.equal(flags.address, '/run/containerd/containerd.sock');
  assert.equal(flags.publishBinary, '/usr/bin/containerd');
  assert.equal(flags.id, 'abc');
  assert.equal(flags.debug, true);
  const again = parseShimFlags(serveArgs(flags));
  assert.equal(again.action, 'serve');
  assert.deepEqual({ ...again, action: 'start' }, flags);
});

test('delete takes -bundle; a missing id or an unknown action is a usage error', () => {
  const flags = parseShimFlags(['-namespace', 'default', '-id', 'x', '-bundle', '/b', 'delete']);
  assert.equal(flags.bundle, '/b');
  assert.equal(flags.action, 'delete');
  assert.throws(
    () => parseShimFlags(['-namespace', 'n', 'start']),
    (e) => isHullError(e, 'ERR_USAGE'),
  );
  assert.throws(
    () => parseShimFlags(['-namespace', 'n', '-id', 'x', 'launch']),
    (e) => isHullError(e, 'ERR_USAGE'),
  );
  assert.throws(
    () => parseShimFlags(['-bogus', 'start']),
    (e) => isHullError(e, 'ERR_USAGE'),
  );
});
