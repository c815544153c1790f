import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { QmpClient } from './qmp.js';
import { announcedEnd, endedByStop, noteShutdownEvent, type VmEnding } from './vm-end.js';

const exitedZero = { code: 0, signal: null };
const asked = (more: Partial<VmEnding> = {}): VmEnding => ({ stopAsked: true, killedByStop: false, ...more });
const guestReset = { guest: true, reason: 'guest-reset' };

test('a guest kernel panic (QEMU -no-reboot exits 0 after a guest reset) is never a stop, asked or not', () => {
  assert.equal(
    endedByStop(exitedZero, { stopAsked: false, killedByStop: false, shutdown: guestReset }),
    false,
  );
  assert.equal(
    endedByStop(exitedZero, asked({ shutdown: guestReset })),
    false,
    'a stop asked after the panic',
  );
  assert.equal(endedByStop(exitedZero, asked({ guestPanicked: true })), false);
});

test("QEMU's quit at stop()'s request is a stop; a quit no stop asked for is not", () => {
  const quit = { guest: false, reason: 'host-qmp-quit' };
  assert.equal(endedByStop(exitedZero, asked({ shutdown: quit })), true);
  assert.equal(endedByStop(exitedZero, { stopAsked: false, killedByStop: false, shutdown: quit }), false);
  assert.equal(endedByStop(exitedZero, asked({ shutdown: { guest: false, reason: 'host-signal' } })), false);
});

test('QEMU killed: a stop only if stop() killed it; the kernel or anyone else makes it a loss', () => {
  const killed = { code: null, signal: 'SIGKILL' as const };
  assert.equal(endedByStop(killed, asked({ killedByStop: true })), true);
  assert.equal(endedByStop(killed, asked()), false, 'killed while a stop waited for its quit');
  assert.equal(endedByStop({ ...killed, oomKilled: true }, asked({ killedByStop: true })), false);
  assert.equal(endedByStop({ ...killed, shareServerLost: 42 }, asked()), false);
  assert.equal(endedByStop({ code: 1, signal: null }, asked()), false, "QEMU's own failure");
});

test('an exit 0 after a stop was asked, without QEMU saying why, is left to the caller', () => {
  assert.equal(endedByStop(exitedZero, asked()), undefined);
  assert.equal(endedByStop(exitedZero, { stopAsked: false, killedByStop: false }), false);
});

test("QEMU's SHUTDOWN event is read before its QMP connection is told ended", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hull-qmp-'));
  const path = join(dir, 'qmp.sock');
  const server = createServer((peer) => {
    // What QEMU 7.2 writes when a guest with panic=-1 panics under -no-reboot, then exits.
    peer.end(
      '{"QMP": {"version": {}, "capabilities": []}}\n' +
        '{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "RESET", "data": {"guest": true, "reason": "guest-reset"}}\n' +
        '{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-reset"}}\n',
    );
  });
  server.listen(path);
  await once(server, 'listening');
  try {
    const socket = connect(path);
    const qmp = new QmpClient(socket);
    const ending: VmEnding = { stopAsked: false, killedByStop: false };
    qmp.on('event', (message: Record<string, unknown>) => noteShutdownEvent(ending, message));
    await qmp.ended;
    assert.deepEqual(ending.shutdown, guestReset);
    assert.equal(endedByStop(exitedZero, { ...ending, stopAsked: true }), false);
  } finally {
    server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('a SHUTDOWN event with odd data is bounded and never taken for the guest', () => {
  const ending: VmEnding = { stopAsked: true, killedByStop: false };
  noteShutdownEvent(ending, { event: 'SHUTDOWN', data: { guest: 'yes', reason: 'x'.repeat(1000) } });
  assert.equal(ending.shutdown?.guest, false);
  assert.equal(ending.shutdown?.reason.length, 64);
  noteShutdownEvent(ending, { event: 'SHUTDOWN' });
  assert.deepEqual(ending.shutdown, { guest: false, reason: 'unknown' });
});

test("QEMU's announcement of the end: the guest's (panic, reset) or the host's (quit), nothing before", () => {
  const none: VmEnding = { stopAsked: false, killedByStop: false };
  assert.equal(announcedEnd(none), undefined);
  const panicked: VmEnding = { ...none };
  noteShutdownEvent(panicked, { event: 'SHUTDOWN', data: { guest: true, reason: 'guest-reset' } });
  assert.deepEqual(announcedEnd(panicked), { byGuest: true, reason: 'guest-reset' });
  const quit: VmEnding = { ...none };
  noteShutdownEvent(quit, { event: 'SHUTDOWN', data: { guest: false, reason: 'host-qmp-quit' } });
  assert.deepEqual(announcedEnd(quit), { byGuest: false, reason: 'host-qmp-quit' });
  const pvpanic: VmEnding = { ...none };
  noteShutdownEvent(pvpanic, { event: 'GUEST_PANICKED', data: { action: 'pause' } });
  assert.deepEqual(announcedEnd(pvpanic), { byGuest: true, reason: 'guest-panic' });
  const other: VmEnding = { ...none };
  noteShutdownEvent(other, { event: 'RESUME' });
  assert.equal(announcedEnd(other), undefined);
});
