import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GUEST_STEPS_TID, type TraceFile } from '../../src/trace/boot-trace.js';
import { bundleTests, hull, hullDetached } from './harness.js';

/** Issue 13: where a start's time goes, on the host and in the guest. */
describe('hull run --trace and hull trace --svg', { timeout: 600_000 }, () => {
  const t = bundleTests('trace');

  test("the trace's phases follow each other and cover the whole run; the picture has a bar for each", async () => {
    const b = await t.bundle(['true']);
    const file = join(t.scratch, 'trace.json');
    const started = performance.now();
    // Booted, not cloned from a template: the guest's own phases are in the trace.
    const r = await hull(['--root', t.root, 'run', '--trace', file, '--bundle', b.dir, b.id], {
      input: null,
      env: { HULL_TEMPLATE: 'off' },
    });
    const wallMs = performance.now() - started;
    assert.equal(r.code, 0, r.stderr);
    const trace = JSON.parse(await readFile(file, 'utf8')) as TraceFile;
    const events = trace.traceEvents.filter((e) => e.tid !== GUEST_STEPS_TID);
    const names = events.map((e) => e.name);
    for (const phase of [
      'QEMU start',
      'guest kernel',
      'initramfs',
      'agent start (Node)',
      'container run',
      'teardown',
    ]) {
      assert.ok(names.includes(phase), `${phase} is in ${names.join(', ')}`);
    }
    assert.deepEqual([...new Set(events.map((e) => e.cat))].sort(), ['guest', 'host']);
    for (let i = 1; i < events.length; i++) {
      assert.equal(
        events[i]!.ts,
        events[i - 1]!.ts + events[i - 1]!.dur,
        `${names[i]} starts where ${names[i - 1]} ends`,
      );
    }
    const extentMs = (events.at(-1)!.ts + events.at(-1)!.dur) / 1000;
    assert.ok(
      Math.abs(wallMs - extentMs) / wallMs <= 0.05,
      `the phases cover ${extentMs.toFixed(0)} ms of a ${wallMs.toFixed(0)} ms run`,
    );

    // Inside the create, the guest's own steps: `hull run` creates and starts in one crun run.
    const create = events.find((e) => e.name === 'container create')!;
    const steps = trace.traceEvents.filter((e) => e.tid === GUEST_STEPS_TID);
    const stepNames = steps.map((e) => e.name);
    for (const step of ['container create: mount share', 'container create: crun run']) {
      assert.ok(stepNames.includes(step), `${step} is in ${stepNames.join(', ')}`);
    }
    assert.ok(!stepNames.includes('container create: crun create'), 'no separate crun create');
    for (const step of steps) {
      assert.equal(step.cat, 'guest');
      assert.ok(
        step.dur <= create.dur,
        `${step.name} (${step.dur} us) fits in the create (${create.dur} us)`,
      );
    }

    const svg = join(t.scratch, 'trace.svg');
    const drawn = await hull(['trace', file, '--svg', svg]);
    assert.equal(drawn.code, 0, drawn.stderr);
    const picture = await readFile(svg, 'utf8');
    assert.match(picture, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal((picture.match(/<rect [^>]*rx="2"/g) ?? []).length, trace.traceEvents.length);
    const slowest = trace.traceEvents.reduce((a, e) => (e.dur > a.dur ? e : a));
    const ms = (slowest.dur / 1000).toFixed(slowest.dur < 10_000 ? 1 : 0);
    assert.match(picture, new RegExp(`>${ms} ms {2}◀ slowest<`), 'the slowest phase is marked');
  });

  test("with the trace setting, a detached container's monitor writes its trace when the container ends", async () => {
    const b = await t.bundle(['true']);
    const traces = join(t.scratch, 'traces');
    const r = await hullDetached(t.root, ['--bundle', b.dir, b.id], { HULL_TRACE_DIR: traces });
    assert.equal(r.code, 0, r.stderr);
    let written: string[] = [];
    for (let i = 0; i < 300 && written.length === 0; i++) {
      written = (await readdir(traces).catch(() => [])).filter((f) => f.startsWith(`${b.id}-`));
      if (written.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await hull(['--root', t.root, 'delete', '--force', b.id]);
    assert.equal(written.length, 1, `one trace for ${b.id} in ${traces}`);
    const trace = JSON.parse(await readFile(join(traces, written[0]!), 'utf8')) as TraceFile;
    assert.equal(trace.otherData.tool, 'hull monitor');
    const names = trace.traceEvents.map((e) => e.name);
    for (const phase of ['QEMU start', 'container start', 'container run', 'teardown']) {
      assert.ok(names.includes(phase), `${phase} is in ${names.join(', ')}`);
    }
    // A detached container is created, then started: each has its guest steps.
    for (const step of ['container create: crun create', 'container start: crun start']) {
      assert.ok(names.includes(step), `${step} is in ${names.join(', ')}`);
    }
    assert.ok(
      names.includes('guest kernel') || names.includes('clone wakes'),
      `the VM booted or was cloned: ${names.join(', ')}`,
    );
    const drawn = await hull(['trace', join(traces, written[0]!), '--svg', join(t.scratch, 'monitor.svg')]);
    assert.equal(drawn.code, 0, drawn.stderr);
  });

  test('a relative trace directory: one line naming the setting', async () => {
    const b = await t.bundle(['true']);
    const r = await hull(['--root', t.root, 'run', '--bundle', b.dir, b.id], {
      input: null,
      env: { HULL_TRACE_DIR: 'traces' },
    });
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^hull: HULL_TRACE_DIR=traces is not valid: give an absolute directory, or nothing\n$/,
    );
  });

  test('a file that is not a trace: one line', async () => {
    const bad = join(t.scratch, 'not-a-trace.json');
    await writeFile(bad, '{"hello": 1}');
    const r = await hull(['trace', bad, '--svg', join(t.scratch, 'x.svg')]);
    assert.notEqual(r.code, 0);
    assert.match(
      r.stderr,
      /^hull: .*not-a-trace.json has no trace events: write one with `hull run --trace FILE`\n$/,
    );
  });
});
