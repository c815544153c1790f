import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmEndNotice } from '../hypervisor/hypervisor.js';
import { firstLossReason } from './loss-explanation.js';

const never = <T>() => new Promise<T>(() => {});
const describeAnnounced = async (notice: VmEndNotice) => `its guest ended it (${notice.reason})`;
const guestReset: VmEndNotice = { byGuest: true, reason: 'guest-reset' };
const quit: VmEndNotice = { byGuest: false, reason: 'host-qmp-quit' };

/** A deadline whose timer keeps the test running (AbortSignal.timeout's does not). */
function deadline(ms: number): AbortSignal {
  const controller = new AbortController();
  setTimeout(() => controller.abort(), ms);
  return controller.signal;
}

test('a guest end announced while the exit is held back names the loss at once', async () => {
  const started = Date.now();
  const reason = await firstLossReason(
    { exitVerdict: never(), announced: Promise.resolve(guestReset), describeAnnounced },
    AbortSignal.timeout(5000),
  );
  assert.equal(reason, 'its guest ended it (guest-reset)');
  assert.ok(Date.now() - started < 1000, 'without waiting for the exit');
});

test('an end the host announced is not a loss until the exit says so', async () => {
  let resolveExit: (verdict: string | undefined) => void = () => {};
  const exitVerdict = new Promise<string | undefined>((resolve) => {
    resolveExit = resolve;
  });
  const waiting = firstLossReason(
    { exitVerdict, announced: Promise.resolve(quit), describeAnnounced },
    AbortSignal.timeout(5000),
  );
  setTimeout(() => resolveExit('QEMU was killed by SIGKILL'), 50);
  assert.equal(await waiting, 'QEMU was killed by SIGKILL');
  assert.equal(
    await firstLossReason(
      { exitVerdict: Promise.resolve(undefined), announced: Promise.resolve(quit), describeAnnounced },
      AbortSignal.timeout(5000),
    ),
    undefined,
    "hull's own stop",
  );
});

test("the exit's verdict stands when it comes first or nothing was announced", async () => {
  assert.equal(
    await firstLossReason(
      { exitVerdict: Promise.resolve('QEMU exited with code 1'), announced: never(), describeAnnounced },
      AbortSignal.timeout(5000),
    ),
    'QEMU exited with code 1',
  );
});

test('no sign by the deadline: undefined, and the wait ends at the deadline', async () => {
  const started = Date.now();
  const reason = await firstLossReason(
    { exitVerdict: never(), announced: Promise.resolve(quit), describeAnnounced },
    deadline(200),
  );
  assert.equal(reason, undefined);
  assert.ok(Date.now() - started < 2000);
  const aborted = new AbortController();
  aborted.abort();
  assert.equal(
    await firstLossReason({ exitVerdict: never(), announced: never(), describeAnnounced }, aborted.signal),
    undefined,
  );
});
