import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { hostNowMs } from './boot-marks.js';
import type { TraceFile } from './boot-trace.js';
import { StepSpans } from './step-spans.js';

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('StepSpans', () => {
  it('times each step, a failed one too, and writes them as a trace under the whole', async () => {
    const spans = new StepSpans();
    const waitStarted = hostNowMs();
    await pause(5);
    spans.endSpan('queued', waitStarted);
    assert.equal(await spans.step('image', async () => 'digest'), 'digest');
    await assert.rejects(
      spans.step('container', async () => {
        await pause(20);
        throw new Error('no VM');
      }),
      /no VM/,
    );
    const { steps, totalMs } = spans.summary();
    assert.deepEqual(Object.keys(steps), ['queued', 'image', 'container']);
    assert.ok(steps.container! >= 19, `the failed step lasted until it failed: ${steps.container}`);
    assert.ok(totalMs >= steps.queued! + steps.container!);

    const dir = await mkdtemp(join(tmpdir(), 'hull-spans-'));
    try {
      const path = await spans.write(dir, 'sb-1-create', 'hull serve: create');
      const trace = JSON.parse(await readFile(path!, 'utf8')) as TraceFile;
      assert.deepEqual(
        trace.traceEvents.map((e) => [e.name, e.tid]),
        [
          ['hull serve: create', 1],
          ['queued', 3],
          ['image', 3],
          ['container', 3],
        ],
      );
      assert.equal(await spans.write('', 'x', 'y'), undefined, 'no directory: nothing written');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
