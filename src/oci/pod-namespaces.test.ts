import assert from 'node:assert/strict';
import { test } from 'node:test';
import { killsAllOnExit } from './pod-namespaces.js';

test("a container in its pod's PID namespace has what it leaves killed at its exit; one with its own has not", () => {
  const ofPod = { linux: { namespaces: [{ type: 'mount' }, { type: 'pid', path: '/proc/6491/ns/pid' }] } };
  const ownPid = { linux: { namespaces: [{ type: 'mount' }, { type: 'pid' }] } };
  assert.equal(killsAllOnExit(ofPod), true);
  assert.equal(killsAllOnExit(ownPid), false);
  // No PID namespace at all: it shares the VM's, as runc's containers share the host's.
  assert.equal(killsAllOnExit({ linux: { namespaces: [{ type: 'mount' }] } }), true);
  assert.equal(killsAllOnExit({}), true);
});
