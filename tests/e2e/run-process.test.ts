import assert from 'node:assert/strict';
import { release } from 'node:os';
import { describe, test } from 'node:test';
import { bundleTests, hull, qemuProcessesUsing, startHull } from './harness.js';

/** `hull run` as a user of runc sees it: output, exit codes, stdin, the process's settings. */
describe('hull run: the container process', { timeout: 600_000 }, () => {
  const t = bundleTests('proc');
  const bundle = t.bundle;

  test('echo prints, in a guest with its own kernel and the configured hostname', async () => {
    const b = await bundle(['sh', '-c', 'echo hello world; uname -r; hostname; echo to-stderr >&2']);
    const r = await hull(['--root', t.root, 'run', '--bundle', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    const [greeting, guestKernel, hostname] = r.stdout.trim().split('\n');
    assert.equal(greeting, 'hello world');
    assert.ok(guestKernel, 'uname -r printed something');
    assert.notEqual(guestKernel, release(), 'the guest runs its own kernel, not the host one');
    assert.equal(hostname, 'runc');
    assert.match(r.stderr, /to-stderr/);
  });

  for (const code of [1, 42]) {
    test(`exit code ${code} is hull's exit code`, async () => {
      const b = await bundle(['sh', '-c', `exit ${code}`]);
      const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
      assert.equal(r.code, code, r.stderr);
    });
  }

  test('stdin is piped through to the process', async () => {
    const b = await bundle(['sh', '-c', 'tr a-z A-Z; echo done']);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], {
      input: 'piped text\nsecond line\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'PIPED TEXT\nSECOND LINE\ndone\n');
  });

  test('env, cwd and user come from config.json', async () => {
    const b = await bundle(['sh', '-c', 'echo "$GREETING"; pwd; id -u; id -g'], (spec) => {
      spec.process!.env!.push('GREETING=hi from config');
      spec.process!.cwd = '/home/user';
      spec.process!.user = { uid: 1000, gid: 1000 };
    });
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.trim().split('\n'), ['hi from config', '/home/user', '1000', '1000']);
  });

  test('a process that crashes exits with 128 + its signal', async () => {
    // Without its own PID namespace the shell is not PID 1, which would ignore the signal.
    const b = await bundle(['sh', '-c', 'kill -SEGV $$; echo survived'], (spec) => {
      spec.linux!.namespaces = spec.linux!.namespaces!.filter((ns) => ns.type !== 'pid');
    });
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 128 + 11, r.stderr);
    assert.equal(r.stdout, '', 'the process died at the signal');
  });

  test('SIGTERM sent to hull reaches the container process', async () => {
    const b = await bundle([
      'sh',
      '-c',
      'trap "echo got TERM; exit 7" TERM; echo ready; while true; do sleep 0.1; done',
    ]);
    const run = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    await run.waitForOutput('ready');
    run.child.kill('SIGTERM');
    const r = await run.result;
    assert.match(r.stdout, /got TERM/);
    assert.equal(r.code, 7, r.stderr);
  });

  // Issue 12: a lost VM exited 137 with nothing on stderr, like a container killed by SIGKILL.
  test('a VM killed under `hull run` says so in one line; a container killed by SIGKILL does not', async () => {
    const b = await bundle(['sh', '-c', 'echo up; sleep 600']);
    const running = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    await running.waitForOutput('up');
    const [qemu] = await qemuProcessesUsing(t.root);
    assert.ok(qemu, 'the VM runs');
    process.kill(qemu!, 'SIGKILL');
    const r = await running.result;
    assert.equal(r.code, 137);
    assert.match(
      r.stderr.trim(),
      /^hull: the VM of container \S+ ended under it: QEMU was killed by SIGKILL$/,
    );

    // (PID 1 of a container ignores its own SIGKILL: a child is killed, and sh exits 137.)
    const killed = await bundle(['sh', '-c', 'sh -c "kill -9 \\$\\$"; exit $?']);
    const k = await hull(['--root', t.root, 'run', '-b', killed.dir, killed.id]);
    assert.equal(k.code, 137);
    assert.doesNotMatch(k.stderr, /hull:/, 'the container died, not its VM: hull adds nothing');
  });

  test('a guest kernel panic under `hull run` is named with the panic line', async () => {
    // Root in a container allowed to write /proc/sysrq-trigger crashes the guest kernel.
    const b = await bundle(['sh', '-c', 'echo c > /proc/sysrq-trigger; sleep 60'], (spec) => {
      spec.linux!.readonlyPaths = [];
      spec.linux!.maskedPaths = [];
    });
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 137);
    assert.match(
      r.stderr.trim(),
      /^hull: the VM of container \S+ ended under it: .*the guest kernel panicked: sysrq triggered crash/,
    );
  });
});
