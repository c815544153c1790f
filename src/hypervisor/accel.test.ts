import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { scratchDir } from '../testing/scratch.js';
import { decideAccel, kvmPrerequisites } from './accel.js';

afterEach(() => {
  delete process.env.HULL_ACCEL;
});

test('kvm_pvm alone is not KVM a stock kernel can use', async () => {
  const sys = await scratchDir('hull-sys-');
  await mkdir(join(sys, 'kvm'));
  await mkdir(join(sys, 'kvm_pvm'));
  assert.match((await kvmPrerequisites(sys, '/dev/null')) ?? '', /no kvm_intel or kvm_amd.*kvm_pvm/);
});

test('a vendor module with an accessible device passes the prerequisites', async () => {
  const sys = await scratchDir('hull-sys-');
  await mkdir(join(sys, 'kvm_intel'));
  assert.equal(await kvmPrerequisites(sys, '/dev/null'), undefined);
});

test('HULL_ACCEL forces the choice without probing or notice', async () => {
  process.env.HULL_ACCEL = 'tcg';
  const notices: string[] = [];
  const dir = await scratchDir('hull-accel-');
  const decision = await decideAccel(
    { bootsUnderKvm: async () => assert.fail('no probe'), cacheFile: join(dir, 'a.json'), kernelId: 'k' },
    (l) => notices.push(l),
  );
  assert.deepEqual(decision, { accel: 'tcg', reason: 'set by HULL_ACCEL' });
  assert.deepEqual(notices, []);
});

test('the decision is cached per kernel: the notice comes once', async () => {
  const dir = await scratchDir('hull-accel-');
  const notices: string[] = [];
  const probe = { bootsUnderKvm: async () => false, cacheFile: join(dir, 'a.json'), kernelId: 'k1' };
  const first = await decideAccel(probe, (l) => notices.push(l));
  const second = await decideAccel(probe, (l) => notices.push(l));
  assert.deepEqual(first, second);
  // On this test host the answer depends on its modules; either way the notice is not repeated.
  assert.ok(notices.length <= 1);
  if (first.accel === 'tcg') assert.match(notices[0]!, /^hull: notice: using TCG/);
});

test('an arm64 host has KVM from its kvm module (no vendor module there)', async () => {
  const sys = await scratchDir('hull-sys-');
  await mkdir(join(sys, 'kvm'));
  const arm64 = { guest: 'arm64', host: 'arm64' } as const;
  assert.equal(await kvmPrerequisites(sys, '/dev/null', arm64), undefined);
  const empty = await scratchDir('hull-sys-');
  assert.match((await kvmPrerequisites(empty, '/dev/null', arm64)) ?? '', /no kvm module is loaded/);
});

test('a guest of another architecture than the host is emulated, whatever KVM the host has', async () => {
  const sys = await scratchDir('hull-sys-');
  await mkdir(join(sys, 'kvm_intel'));
  await mkdir(join(sys, 'kvm'));
  assert.match(
    (await kvmPrerequisites(sys, '/dev/null', { guest: 'arm64', host: 'x86_64' })) ?? '',
    /an arm64 guest on an x86_64 host is emulated/,
  );
  assert.match(
    (await kvmPrerequisites(sys, '/dev/null', { guest: 'x86_64', host: 'arm64' })) ?? '',
    /an x86_64 guest on an arm64 host is emulated/,
  );
});

test('a foreign guest gets TCG without a probe boot, and HULL_ACCEL=kvm for it is refused', async () => {
  const foreign = process.arch === 'arm64' ? 'x86_64' : 'arm64';
  const dir = await scratchDir('hull-accel-');
  const notices: string[] = [];
  const probe = {
    bootsUnderKvm: async () => assert.fail('no probe for a foreign guest'),
    cacheFile: join(dir, 'a.json'),
    kernelId: 'k',
    arch: foreign,
  } as const;
  const decision = await decideAccel(probe, (l) => notices.push(l));
  assert.equal(decision.accel, 'tcg');
  assert.match(notices[0]!, new RegExp(`an ${foreign} guest on an .* host is emulated`));
  process.env.HULL_ACCEL = 'kvm';
  await assert.rejects(
    decideAccel(probe, () => {}),
    /HULL_ACCEL=kvm cannot run an .* guest/,
  );
});
