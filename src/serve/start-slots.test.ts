import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StartSlots } from './start-slots.js';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('StartSlots', () => {
  it('runs at most its size at once, the rest in arrival order', async () => {
    const slots = new StartSlots(2);
    const order: number[] = [];
    let running = 0;
    let most = 0;
    const releases: (() => void)[] = [];
    const runs = [0, 1, 2, 3, 4].map((i) =>
      slots.run(AbortSignal.timeout(10_000), async () => {
        order.push(i);
        running++;
        most = Math.max(most, running);
        await new Promise<void>((resolve) => releases.push(resolve));
        running--;
        return i;
      }),
    );
    for (let done = 0; done < 5; done++) {
      await tick();
      releases.shift()!();
    }
    assert.deepEqual(await Promise.all(runs), [0, 1, 2, 3, 4]);
    assert.deepEqual(order, [0, 1, 2, 3, 4]);
    assert.equal(most, 2);
    assert.equal(slots.queued(), 0);
  });

  it('gives a slot back when the work fails, and lets an aborted waiter leave the queue', async () => {
    const slots = new StartSlots(1);
    let release!: () => void;
    const first = slots.run(AbortSignal.timeout(10_000), () => new Promise<void>((r) => (release = r)));
    const controller = new AbortController();
    const leaving = slots.run(controller.signal, async () => 'never');
    const failing = slots.run(AbortSignal.timeout(10_000), async () => {
      throw new Error('boom');
    });
    await tick();
    assert.equal(slots.queued(), 2);
    controller.abort(new Error('gave up'));
    await assert.rejects(leaving, /gave up/);
    assert.equal(slots.queued(), 1);
    release();
    await first;
    await assert.rejects(failing, /boom/);
    assert.equal(await slots.run(AbortSignal.timeout(10_000), async () => 'free again'), 'free again');
  });
});
