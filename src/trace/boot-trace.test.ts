import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bootMarks } from './boot-marks.js';
import { BootTraceRecorder, GUEST_STEPS_TID, traceFile } from './boot-trace.js';
import { waterfallSvg } from './waterfall-svg.js';

const publish = (mark: object) => bootMarks.publish(mark);

test('marks become consecutive phases; guest times are placed by the uptime in its answer', () => {
  const recorder = new BootTraceRecorder(1000);
  try {
    publish({ kind: 'host', name: 'vmm-spawn', atMs: 1100 });
    // The agent answered at host 3000 ms with 1.5 s of uptime: the guest booted at 1500 ms.
    publish({
      kind: 'guest',
      phases: {
        initramfs: 0.5,
        'root-mounted': 0.7,
        'hull-init': 0.75,
        'agent-start': 0.8,
        'agent-ready': 1.4,
      },
      uptimeSeconds: 1.5,
      answeredAtMs: 3000,
    });
    publish({ kind: 'host', name: 'agent-answered', atMs: 3000 });
    publish({ kind: 'host', name: 'sandbox-ready', atMs: 3050 });
    publish({ kind: 'host', name: 'container-created', atMs: 3300 });
    publish({ kind: 'host', name: 'container-started', atMs: 3400 });
    publish({ kind: 'host', name: 'container-exited', atMs: 3500 });
  } finally {
    recorder.stop();
  }
  const phases = recorder.phases(3600);
  assert.deepEqual(
    phases.map((p) => [p.name, p.where, p.startMs, p.endMs]),
    [
      ['hull start-up', 'host', 1000, 1100],
      ['QEMU start', 'host', 1100, 1500],
      ['guest kernel', 'guest', 1500, 2000],
      ['initramfs', 'guest', 2000, 2200],
      ['root switch', 'guest', 2200, 2250],
      ['hull-init', 'guest', 2250, 2300],
      ['agent start (Node)', 'guest', 2300, 2900],
      ['agent reached', 'host', 2900, 3000],
      ['sandbox set-up', 'host', 3000, 3050],
      ['container create', 'host', 3050, 3300],
      ['container start', 'host', 3300, 3400],
      ['container run', 'host', 3400, 3500],
      ['teardown', 'host', 3500, 3600],
    ],
  );
  const file = traceFile(phases);
  assert.deepEqual(file.traceEvents[2], {
    name: 'guest kernel',
    cat: 'guest',
    ph: 'X',
    ts: 500_000,
    dur: 500_000,
    pid: 1,
    tid: 2,
  });
  const svg = waterfallSvg(file);
  assert.equal((svg.match(/<rect [^>]*rx="2"/g) ?? []).length, phases.length, 'a bar per phase');
  assert.match(svg, /600 ms {2}◀ slowest/, 'the agent start, the longest phase, is marked');
});

test('a run that ended before its guest answered has host phases only', () => {
  const recorder = new BootTraceRecorder(0);
  publish({ kind: 'host', name: 'vmm-spawn', atMs: 10 });
  recorder.stop();
  publish({ kind: 'host', name: 'agent-answered', atMs: 20 });
  assert.deepEqual(
    recorder.phases(50).map((p) => [p.name, p.startMs, p.endMs]),
    [
      ['hull start-up', 0, 10],
      ['QEMU start', 10, 50],
    ],
  );
});

test("the guest's steps sit back to back inside the phase they explain, ending with its answer", () => {
  const recorder = new BootTraceRecorder(1000);
  try {
    publish({ kind: 'host', name: 'sandbox-ready', atMs: 1000 });
    publish({
      kind: 'guest-steps',
      phase: 'container create',
      steps: [
        { name: 'mount share', ms: 20 },
        { name: 'crun create', ms: 150 },
      ],
      answeredAtMs: 1200,
    });
    publish({ kind: 'host', name: 'container-created', atMs: 1200 });
    // A second create (another container of a pod) does not replace the first.
    publish({
      kind: 'guest-steps',
      phase: 'container create',
      steps: [{ name: 'x', ms: 1 }],
      answeredAtMs: 1300,
    });
  } finally {
    recorder.stop();
  }
  const steps = recorder.guestSteps();
  assert.deepEqual(
    steps.map((p) => [p.name, p.where, p.startMs, p.endMs]),
    [
      ['container create: mount share', 'guest', 1030, 1050],
      ['container create: crun create', 'guest', 1050, 1200],
    ],
  );
  const file = traceFile(recorder.phases(1250), 'hull run --trace', steps);
  const drawn = file.traceEvents.filter((e) => e.tid === GUEST_STEPS_TID);
  assert.deepEqual(
    drawn.map((e) => [e.name, e.ts, e.dur]),
    [
      ['container create: mount share', 30_000, 20_000],
      ['container create: crun create', 50_000, 150_000],
    ],
  );
  assert.ok(
    file.traceEvents.filter((e) => e.tid !== GUEST_STEPS_TID).every((e) => e.tid === 1 || e.tid === 2),
  );
});
