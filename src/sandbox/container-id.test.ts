import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { idDirectoryName, validateContainerId } from './container-id.js';

test('ordinary IDs pass, including runc-style punctuation', () => {
  for (const id of ['web', 'a1b2c3', 'my_box-1.2+3', 'x'.repeat(200), 'f'.repeat(64)])
    assert.equal(validateContainerId(id), id);
});

test('slashes, dots-dot, a leading dash, empty and over-long IDs are refused with ERR_INVALID_ID', () => {
  for (const id of ['', 'a/b', '../etc', '..', 'a..b', 'sp ace', 'x'.repeat(201), 'é', '-rf', '--help']) {
    assert.throws(
      () => validateContainerId(id),
      (err: unknown) => isHullError(err, 'ERR_INVALID_ID'),
      `should refuse ${JSON.stringify(id.slice(0, 20))}`,
    );
  }
});

test('long IDs get a short, stable, distinct directory name', () => {
  const a = idDirectoryName('a'.repeat(200));
  assert.equal(a, idDirectoryName('a'.repeat(200)));
  assert.notEqual(a, idDirectoryName(`${'a'.repeat(199)}b`));
  assert.ok(a.length <= 32);
  assert.match(idDirectoryName('f'.repeat(64)), /^id-[0-9a-f]{24}$/, "Docker's IDs are hashed");
  assert.equal(idDirectoryName('short'), 'short');
});
