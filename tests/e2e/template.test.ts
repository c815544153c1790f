import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { processesMentioning } from '../../src/sys/processes.js';
import type { ListedTemplate } from '../../src/template/store.js';
import type { TraceFile } from '../../src/trace/boot-trace.js';
import {
  bundleTests,
  type HullResult,
  hull,
  privateImageState,
  processExit,
  qemuProcessesUsing,
} from './harness.js';

/** Issue 11: sandboxes cloned from a booted template instead of booted. */
describe('VM templates', { timeout: 900_000 }, () => {
  const t = bundleTests('tpl');
  let env: NodeJS.ProcessEnv;

  before(async () => {
    // A template store of this file's own: its templates are made, broken and removed here.
    const { state } = await privateImageState(join(t.scratch, 'state'), {}, { sharedSnapshots: true });
    env = { HULL_STATE_DIR: state, HULL_TEMPLATE: 'on' };
  });

  after(async () => {
    const listed = await templates();
    await hull(['template', 'rm', '--all'], { env });
    for (const template of listed) await processExit(template.memory.pid, 10_000);
  });

  async function templates(): Promise<ListedTemplate[]> {
    const r = await hull(['template', 'list', '--format', 'json'], { env });
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as ListedTemplate[];
  }

  /** `hull run` of a container that prints what must differ between sandboxes. */
  async function runReporting(
    extraEnv: NodeJS.ProcessEnv = {},
    trace?: string,
  ): Promise<HullResult & { hostSeconds: number }> {
    const b = await t.bundle([
      'sh',
      '-c',
      'head -c 32 /dev/urandom | od -An -tx1 | tr -d " \\n"; echo; cat /proc/sys/kernel/random/boot_id; date +%s',
    ]);
    const r = await hull(
      ['--root', t.root, 'run', ...(trace ? ['--trace', trace] : []), '--bundle', b.dir, b.id],
      {
        env: { ...env, ...extraEnv },
        input: null,
      },
    );
    return { ...r, hostSeconds: Date.now() / 1000 };
  }

  function report(r: HullResult): { random: string; bootId: string; seconds: number } {
    const [random, bootId, seconds] = r.stdout.trim().split('\n');
    return { random: random!, bootId: bootId!, seconds: Number(seconds) };
  }

  async function sha256Of(path: string): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }

  test('hull template build makes a template, held by a process; build again finds it', async () => {
    const made = await hull(['template', 'build'], { env });
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stderr, /^template [0-9a-f]{16}: 1 vCPU, 512 MiB, 0 network cards, made in [\d.]+ s/m);
    const again = await hull(['template', 'build'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /already made/);
    const [template, ...others] = await templates();
    assert.equal(others.length, 0);
    assert.ok(template!.live, 'the template is live');
    assert.ok(
      template!.residentBytes! > 10 * 2 ** 20,
      `it holds the booted guest's memory (${template!.residentBytes} bytes)`,
    );
    const listed = await hull(['template', 'list'], { env });
    assert.match(listed.stdout, new RegExp(`^${template!.key} +1 +512 MiB +0 +`, 'm'));
  });

  test('clones are not twins: their own random numbers and boot id, the right clock', async () => {
    const trace = join(t.scratch, 'clone-trace.json');
    const first = await runReporting({}, trace);
    const second = await runReporting();
    assert.equal(first.code, 0, first.stderr);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(first.stderr, '', 'no notice: the template was used');
    const phases = (JSON.parse(await readFile(trace, 'utf8')) as TraceFile).traceEvents.map((e) => e.name);
    assert.ok(phases.includes('clone wakes'), `the VM was cloned: ${phases.join(', ')}`);
    assert.ok(!phases.includes('guest kernel'), 'and did not boot');
    const [a, b] = [report(first), report(second)];
    assert.match(a.random, /^[0-9a-f]{64}$/);
    assert.notEqual(a.random, b.random, 'two clones draw different random numbers');
    assert.match(a.bootId, /^[0-9a-f-]{36}$/);
    assert.notEqual(a.bootId, b.bootId, 'and have different boot ids');
    for (const [r, x] of [
      [first, a],
      [second, b],
    ] as const) {
      assert.ok(
        Math.abs(r.hostSeconds - x.seconds) <= 5,
        `the guest clock (${x.seconds}) is the host's (${r.hostSeconds})`,
      );
    }
  });

  test("a clone cannot change its template's memory: writing all over its own leaves it as it was", async () => {
    const [template] = await templates();
    const memory = `/proc/${template!.memory.pid}/fd/${template!.memory.fd}`;
    const before = await sha256Of(memory);
    const b = await t.bundle([
      'sh',
      '-c',
      'dd if=/dev/urandom of=/dev/shm/fill bs=1M count=200 2>/dev/null; echo filled',
    ]);
    const r = await hull(['--root', t.root, 'run', '--bundle', b.dir, b.id], { env, input: null });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'filled\n');
    assert.equal(await sha256Of(memory), before, "the template's memory is unchanged");
    // Not even root on the host can write it: it is sealed.
    const handle = await open(memory, 'r+');
    try {
      await assert.rejects(handle.write(Buffer.from('x'), 0, 1, 0), { code: 'EPERM' });
    } finally {
      await handle.close();
    }
  });

  test('a template whose memory holder is gone (a host restart) is made again by the next start', async () => {
    const [template] = await templates();
    process.kill(template!.memory.pid, 'SIGKILL');
    await processExit(template!.memory.pid, 10_000);
    const trace = join(t.scratch, 'remade-trace.json');
    const r = await runReporting({}, trace);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'no notice: nothing failed, the template was made as on first use');
    assert.match(report(r).bootId, /^[0-9a-f-]{36}$/);
    const phases = (JSON.parse(await readFile(trace, 'utf8')) as TraceFile).traceEvents.map((e) => e.name);
    assert.ok(
      phases.includes('clone wakes'),
      `the VM was cloned from the new template: ${phases.join(', ')}`,
    );
    const [made, ...others] = await templates();
    assert.equal(others.length, 0);
    assert.ok(made?.live && made.memory.pid !== template!.memory.pid, 'a new template holds its memory');
  });

  test('a template QEMU cannot restore: one notice, a booted sandbox, no VM left', async () => {
    const [template] = await templates();
    await writeFile(join(env.HULL_STATE_DIR!, 'templates', template!.key, 'state'), 'not a migration stream');
    const r = await runReporting();
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stderr,
      /^hull: notice: the VM template [0-9a-f]{16} could not be restored \(QEMU exited at start .*\); this sandbox booted instead/,
    );
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one notice');
    assert.deepEqual(await qemuProcessesUsing(t.root), []);
    assert.deepEqual(
      (await templates()).filter((x) => x.key === template!.key && x.live),
      [],
      'the broken template is gone',
    );
  });

  test('with HULL_TEMPLATE=off a sandbox boots, and no template is made', async () => {
    await hull(['template', 'rm', '--all'], { env });
    const trace = join(t.scratch, 'cold-trace.json');
    const r = await runReporting({ HULL_TEMPLATE: 'off' }, trace);
    assert.equal(r.code, 0, r.stderr);
    const phases = (JSON.parse(await readFile(trace, 'utf8')) as TraceFile).traceEvents.map((e) => e.name);
    assert.ok(phases.includes('guest kernel'), `the VM booted: ${phases.join(', ')}`);
    assert.deepEqual(await templates(), []);
  });

  test('sandboxes started side by side before there is a template make it once, and all are cloned', async () => {
    assert.deepEqual(await templates(), [], 'no template yet');
    const traces = [1, 2, 3].map((n) => join(t.scratch, `side-by-side-${n}.json`));
    const runs = await Promise.all(traces.map((trace) => runReporting({}, trace)));
    for (const r of runs) assert.equal(r.code, 0, r.stderr);
    for (const trace of traces) {
      const phases = (JSON.parse(await readFile(trace, 'utf8')) as TraceFile).traceEvents.map((e) => e.name);
      assert.ok(phases.includes('clone wakes'), `cloned: ${phases.join(', ')}`);
    }
    const made = await templates();
    assert.equal(made.length, 1, 'one template');
    const holders = await processesMentioning(join(env.HULL_STATE_DIR!, 'templates'));
    assert.deepEqual(holders, [made[0]!.memory.pid], 'held by one process');
  });

  test('bad template commands: one line, non-zero exit', async () => {
    const missing = await hull(['template', 'rm', '0123456789abcdef'], { env });
    assert.notEqual(missing.code, 0);
    assert.match(
      missing.stderr,
      /^hull: template 0123456789abcdef does not exist: `hull template list` shows them\n$/,
    );
    const size = await hull(['template', 'build', '--vcpus', '0'], { env });
    assert.notEqual(size.code, 0);
    assert.match(size.stderr, /^hull: --vcpus 0 is not valid: give a whole number from 1 to 64\n$/);
    const off = await hull(['template', 'build'], { env: { ...env, HULL_TEMPLATE: 'off' } });
    assert.notEqual(off.code, 0);
    assert.match(off.stderr, /^hull: templating is off .*: turn it on to make templates\n$/);
  });
});
