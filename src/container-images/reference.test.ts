import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseImageReference } from './reference.js';

test('short names get the default registry, library/ and :latest', () => {
  assert.equal(parseImageReference('busybox').canonical, 'docker.io/library/busybox:latest');
  assert.equal(parseImageReference('python:3.12-slim').canonical, 'docker.io/library/python:3.12-slim');
  assert.equal(parseImageReference('quay.io/a/b').canonical, 'quay.io/a/b:latest');
});

test('only a registry on this machine is reached without TLS', () => {
  assert.equal(parseImageReference('127.0.0.1:5000/busybox:latest').insecure, true);
  assert.equal(parseImageReference('localhost:5000/busybox').insecure, true);
  assert.equal(parseImageReference('localhost/busybox').insecure, true);
  assert.equal(parseImageReference('registry.example:5000/busybox').insecure, false);
  assert.equal(parseImageReference('127.0.0.1.example.com/busybox').insecure, false);
});

test('options, transports and paths are not references', () => {
  for (const bad of [
    '--src-creds=x:y',
    'docker://busybox',
    'oci:/tmp/x',
    '../busybox',
    'busybox:latest;rm -rf /',
    'Busybox',
    '',
    `a${'b'.repeat(600)}`,
  ]) {
    assert.throws(
      () => parseImageReference(bad),
      (err) => isHullError(err, 'ERR_CONFIG'),
      bad,
    );
  }
});
