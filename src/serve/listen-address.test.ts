import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseListenAddress } from './listen-address.js';

test('--listen takes a unix socket path or HOST:PORT', () => {
  assert.deepEqual(parseListenAddress('unix:/run/x.sock'), { kind: 'unix', path: '/run/x.sock' });
  assert.deepEqual(parseListenAddress('127.0.0.1:8080'), { kind: 'tcp', host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListenAddress('[::1]:9'), { kind: 'tcp', host: '::1', port: 9 });
  for (const bad of ['unix:rel.sock', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', 'host:port', '']) {
    assert.throws(
      () => parseListenAddress(bad),
      (err) => isHullError(err, 'ERR_USAGE'),
      bad,
    );
  }
});
