import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { parseSignal } from './signals.js';

test('signals by name with and without SIG, by number, and TERM by default', () => {
  assert.equal(parseSignal('KILL'), 9);
  assert.equal(parseSignal('SIGKILL'), 9);
  assert.equal(parseSignal('sigterm'), 15);
  assert.equal(parseSignal('15'), 15);
  assert.equal(parseSignal('9'), 9);
  assert.equal(parseSignal(undefined), 15);
});

test('unknown signals are usage errors', () => {
  for (const bad of ['NOPE', '0', '65', '-1', 'SIG']) {
    assert.throws(
      () => parseSignal(bad),
      (err: unknown) => isHullError(err, 'ERR_USAGE'),
      bad,
    );
  }
});
