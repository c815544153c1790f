import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { identityOf } from '../sys/process-identity.js';
import { scratchDir } from '../testing/scratch.js';
import {
  allows,
  type ContainerState,
  effectiveState,
  readState,
  requireAllowed,
  writeState,
} from './state.js';

test('the runtime-spec lifecycle: what each status allows', () => {
  assert.ok(allows('created', 'start'));
  assert.ok(!allows('running', 'start'), 'start on a started container fails');
  assert.ok(!allows('stopped', 'start'));
  for (const s of ['created', 'running', 'paused'] as const) assert.ok(allows(s, 'kill'));
  assert.ok(!allows('stopped', 'kill'), 'kill only when created or running');
  assert.ok(allows('stopped', 'delete'));
  for (const s of ['created', 'running', 'paused'] as const)
    assert.ok(!allows(s, 'delete'), 'delete only when stopped');
  assert.ok(allows('running', 'pause') && !allows('paused', 'pause'));
  assert.ok(allows('paused', 'resume') && !allows('running', 'resume'));
  assert.ok(allows('running', 'exec') && !allows('stopped', 'exec'));
});

test('an illegal transition is ERR_STATE and says what is needed', () => {
  assert.throws(
    () => requireAllowed('web', 'running', 'delete'),
    (err: unknown) =>
      isHullError(err, 'ERR_STATE') && /it is running, and delete needs it stopped/.test(err.message),
  );
});

const sample = (pid: number): ContainerState => ({
  ociVersion: '1.0.2',
  id: 'web',
  pid,
  status: 'running',
  bundle: '/b',
  rootfs: '/b/rootfs',
  created: new Date(0).toISOString(),
  owner: '',
  annotations: {},
});

test('state is written atomically and read back; a missing one is ERR_NOT_FOUND', async () => {
  const dir = await scratchDir('hull-state-');
  await writeState(dir, sample(process.pid));
  assert.deepEqual(await readState(dir, 'web'), sample(process.pid));
  assert.deepEqual(await readdir(dir), ['state.json'], 'no temporary file is left');
  await assert.rejects(readState(join(dir, 'nope'), 'nope'), (err: unknown) =>
    isHullError(err, 'ERR_NOT_FOUND'),
  );
});

test('a container whose monitor is gone is stopped', () => {
  assert.equal(effectiveState(sample(process.pid)).status, 'running');
  assert.equal(effectiveState(sample(2 ** 22 + 12345)).status, 'stopped');
});

test('a container whose monitor pid was reused by another process is stopped (issue 24, item 3)', () => {
  const own = identityOf(process.pid)!;
  const monitor = { ...sample(process.pid), pidStartTime: own.startTime };
  assert.equal(effectiveState(monitor).status, 'running');
  const reused = { ...monitor, pidStartTime: String(Number(own.startTime) - 1) };
  assert.equal(effectiveState(reused).status, 'stopped');
  assert.equal(effectiveState({ ...reused, status: 'creating' }).status, 'stopped');
});
