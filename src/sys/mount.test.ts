import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { HostMounter } from './mount.js';

test('a lone "+", which joins hull-share-mount\'s commands, is refused as a path before any helper runs', async () => {
  const mounter = new HostMounter();
  const bind = { kind: 'dir', recursive: false, readonly: true } as const;
  for (const step of [
    () => mounter.bindBeneath('/run/hull/x/vm/shared', 'c/mounts/0', '+', bind),
    () => mounter.bindBeneath('/run/hull/x/vm/shared', '+', '/var/lib/volume', bind),
  ]) {
    await assert.rejects(step(), (err: unknown) => {
      assert.ok(isHullError(err, 'ERR_MOUNT'), String(err));
      assert.match((err as Error).message, /^"\+" is not a path hull can share: give the full path$/);
      return true;
    });
  }
});
