import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { checkSettings } from './settings.js';

test('issue 24: every setting from the environment is checked at once, naming the variable', () => {
  checkSettings({});
  checkSettings({ HULL_MEMORY_MIB: '1024', HULL_ACCEL: 'tcg' });
  for (const [env, pattern] of [
    [{ HULL_MEMORY_MIB: '-1' }, /^HULL_MEMORY_MIB=-1 is not valid: give MiB from 128 to 262144$/],
    [{ HULL_ACCEL: 'bogus' }, /^HULL_ACCEL=bogus is not valid: use one of auto, kvm, tcg$/],
    [{ HULL_VCPUS: '1.5' }, /^HULL_VCPUS=1.5 is not valid/],
  ] as const) {
    assert.throws(
      () => checkSettings(env),
      (err: unknown) => isHullError(err, 'ERR_CONFIG') && pattern.test(err.message),
    );
  }
});
