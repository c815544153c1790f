import assert from 'node:assert/strict';
import { test } from 'node:test';
import { settledWithin } from './deadline.js';

test('settledWithin: the value in time, undefined once the time is up or on rejection', async () => {
  assert.equal(await settledWithin(Promise.resolve(7), 1000), 7);
  assert.equal(await settledWithin(new Promise(() => {}), 20), undefined);
  assert.equal(await settledWithin(Promise.reject(new Error('no')), 1000), undefined);
});
