import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VmExit } from '../hypervisor/hypervisor.js';
import { VmEndWitness } from './vm-end-witness.js';

type Sign = 'channel closed' | 'teardown asked' | 'exit seen';

/** Every order of the three signs of a VM's end. */
function orders(): Sign[][] {
  const signs: Sign[] = ['channel closed', 'teardown asked', 'exit seen'];
  const out: Sign[][] = [];
  const walk = (done: Sign[]) => {
    if (done.length === signs.length) out.push(done);
    for (const s of signs) if (!done.includes(s)) walk([...done, s]);
  };
  walk([]);
  return out;
}

function witness(order: Sign[], exit: VmExit): VmEndWitness {
  const w = new VmEndWitness();
  for (const sign of order) {
    if (sign === 'channel closed') w.channelClosed();
    else if (sign === 'teardown asked') w.teardown();
    else w.exited(exit);
  }
  return w;
}

const guestPanic: VmExit = { code: 0, signal: null, byStop: false, shutdownReason: 'guest-reset' };

test('a guest kernel panic is the VM ending by itself in every order of channel, teardown and exit', () => {
  for (const order of orders()) {
    assert.equal(witness(order, guestPanic).endedByItself, true, order.join(', '));
  }
});

test("hull's own stop is never a loss, whatever it saw first", () => {
  const quit: VmExit = { code: 0, signal: null, byStop: true, shutdownReason: 'host-qmp-quit' };
  for (const order of orders()) {
    assert.equal(witness(order, quit).endedByItself, false, order.join(', '));
  }
});

test("without the VMM's account, an end seen before any teardown was asked is the VM's own", () => {
  const untold: VmExit = { code: 0, signal: null };
  for (const order of orders()) {
    const ownEnd =
      order.indexOf('teardown asked') > Math.min(order.indexOf('channel closed'), order.indexOf('exit seen'));
    assert.equal(witness(order, untold).endedByItself, ownEnd, order.join(', '));
  }
  assert.equal(
    witness(['teardown asked', 'channel closed', 'exit seen'], { ...untold, shareServerLost: 7 })
      .endedByItself,
    true,
  );
});

test('nothing is said before the exit is seen', () => {
  const w = new VmEndWitness();
  w.channelClosed();
  assert.equal(w.endedByItself, false);
});
