import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { settledWithin, withTimeout } from './deadline.js';

test('settledWithin: the value in time, undefined once the time is up or on rejection', async () => {
  assert.equal(await settledWithin(Promise.resolve(7), 1000), 7);
  assert.equal(await settledWithin(new Promise(() => {}), 20), undefined);
  assert.equal(await settledWithin(Promise.reject(new Error('no')), 1000), undefined);
});

test('withTimeout fires after a garbage collection, and follows its parent signal', async () => {
  // AbortSignal.any([signal, AbortSignal.timeout(ms)]) does not, in Node 20, when only a listener
  // on the joined signal waits for it.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const parent = new AbortController();
  const fired = new Promise<unknown>((resolve) => {
    withTimeout(parent.signal, 200).addEventListener('abort', (event) => {
      resolve((event.target as AbortSignal).reason);
    });
  });
  // A later turn: what the current one made is kept from the GC until it ends.
  await new Promise((resolve) => setImmediate(resolve));
  for (let i = 0; i < 3; i++) gc();
  // The timeout's own timer does not keep the process alive (as AbortSignal.timeout's): this one does.
  let giveUpTimer: NodeJS.Timeout | undefined;
  const giveUp = new Promise((resolve) => {
    giveUpTimer = setTimeout(() => resolve('never fired'), 3000);
  });
  const reason = await Promise.race([fired, giveUp]);
  clearTimeout(giveUpTimer);
  assert.equal((reason as Error).name, 'TimeoutError');

  const followed = withTimeout(parent.signal, 60_000);
  parent.abort(new Error('caller gave up'));
  assert.equal((followed.reason as Error).message, 'caller gave up');
});
