import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HullError } from '../errors.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { toHullError } from './client.js';

test("UNAVAILABLE: the agent's channel gone, or a host process's own line about the VM passed on whole", () => {
  const agent = toHullError('StartContainer', new TtrpcError(Code.UNAVAILABLE, 'connection closed'));
  assert.ok(agent instanceof HullError && agent.code === 'ERR_VM_EXITED');
  assert.equal(agent.message, 'the guest agent is gone (StartContainer): connection closed');
  const line = 'the VM of container web ended under it: QEMU was killed by SIGKILL';
  const host = toHullError('Start', new TtrpcError(Code.UNAVAILABLE, line), 'host');
  assert.ok(host instanceof HullError && host.code === 'ERR_VM_EXITED');
  assert.equal(host.message, line, 'no second prefix');
});
