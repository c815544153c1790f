import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isHullError } from '../errors.js';
import { Admission } from './admission.js';

describe("the server's admission", () => {
  test('counts creates in flight with the live sandboxes against --max-sandboxes', async () => {
    const admission = new Admission({ maxSandboxes: 2, maxRequests: 10, maxStreams: 10 });
    let release!: () => void;
    const first = admission.createSandbox(
      1,
      () =>
        new Promise<string>((resolve) => {
          release = () => resolve('made');
        }),
    );
    await assert.rejects(
      admission.createSandbox(1, async () => 'never'),
      (err) => isHullError(err) && err.code === 'ERR_LIMIT',
    );
    release();
    assert.equal(await first, 'made');
    // Its place is given back however the create ended.
    await assert.rejects(admission.createSandbox(0, async () => Promise.reject(new Error('failed'))));
    assert.equal(await admission.createSandbox(1, async () => 'again'), 'again');
  });

  test('a fork of N counts N sandboxes, and is refused whole when they do not fit', async () => {
    const admission = new Admission({ maxSandboxes: 5, maxRequests: 10, maxStreams: 10 });
    await assert.rejects(
      admission.createSandbox(1, async () => 'never', 5),
      (err) => isHullError(err) && err.code === 'ERR_LIMIT',
    );
    assert.equal(await admission.createSandbox(1, async () => 'four', 4), 'four');
  });
});
