import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { availableParallelism, release } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { CONTAINER_BLOB } from '../../src/cli/snapshot-files.js';
import { VM_NAMESPACES_ANNOTATION } from '../../src/oci/checks.js';
import { installRoot } from '../../src/paths.js';
import { holdExit } from '../fixtures/held-exit.js';
import {
  bundleTests,
  HULL_COMMAND,
  hull,
  hullKeepingOutput,
  qemuProcessesUsing,
  runCommand,
  startHull,
} from './harness.js';

/** Waits (30 s at most) for `hull state` to say stopped, and checks it names the panic. */
async function assertStoppedByPanic(root: string, id: string): Promise<void> {
  let state: { status: string; vmLost?: string } = { status: '' };
  for (let i = 0; i < 300 && state.status !== 'stopped'; i++) {
    state = JSON.parse((await hull(['--root', root, 'state', id])).stdout);
    if (state.status !== 'stopped') await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(state.status, 'stopped');
  assert.match(
    state.vmLost ?? '',
    /the guest kernel panicked: sysrq triggered crash/,
    '`hull state` says why',
  );
}

/**
 * A `hull start` that failed as the guest panicked says so in one line. The guest may die
 * before or after the start is answered: a start that succeeded has nothing to say.
 */
function assertFailedStartNamesPanic(started: { code: number | null; stderr: string }): void {
  if (started.code === 0) return;
  assert.match(
    started.stderr,
    /^hull: the VM of container \S+ ended under it: .*the guest kernel panicked: sysrq triggered crash\n$/,
  );
}

/** `hull run` as a user of runc sees it: output, exit codes, stdin, the process's settings. */
describe('hull run: the container process', { timeout: 600_000 }, () => {
  const t = bundleTests('proc');
  const bundle = t.bundle;
  /** Root in a container allowed to write /proc/sysrq-trigger crashes the guest kernel. */
  const panicking = () =>
    bundle(['sh', '-c', 'echo c > /proc/sysrq-trigger; sleep 60'], (spec) => {
      spec.linux!.readonlyPaths = [];
      spec.linux!.maskedPaths = [];
    });

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

  test('bin/hull, through sh, runs a container from the startup snapshot; Node running bin/hull, from the source', async () => {
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const b = await bundle(['sh', '-c', 'echo hello from $0; sleep 1; exit 3']);
    // sh execs Node in its own process: while the container runs, that process's command line
    // says which blob Node was given, as ps would show it.
    const viaSh = spawn(HULL_COMMAND, ['--root', t.root, 'run', '--bundle', b.dir, b.id], { env });
    let stdout = '';
    let stderr = '';
    viaSh.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const greeted = new Promise<void>((resolve) =>
      viaSh.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk;
        if (stdout.includes('\n')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => viaSh.on('exit', (code) => resolve(code)));
    await Promise.race([greeted, exited]);
    const cmdline = (await readFile(`/proc/${viaSh.pid}/cmdline`, 'utf8')).split('\0');
    assert.equal(cmdline[1], '--snapshot-blob', cmdline.join(' '));
    assert.equal(resolve(cmdline[2] ?? ''), join(installRoot(), 'dist', 'bundle', CONTAINER_BLOB));
    assert.equal(await exited, 3, stderr);
    assert.deepEqual({ stdout, stderr }, { stdout: 'hello from sh\n', stderr: '' });
    const asScript = await runCommand(
      process.execPath,
      [HULL_COMMAND, '--root', t.root, 'run', '--bundle', b.dir, b.id],
      env,
    );
    assert.deepEqual(asScript, { code: 3, stdout: 'hello from sh\n', stderr: '' });
  });

  for (const code of [1, 42]) {
    test(`exit code ${code} is hull's exit code`, async () => {
      const b = await bundle(['sh', '-c', `exit ${code}`]);
      const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
      assert.equal(r.code, code, r.stderr);
    });
  }

  // Issue 9: nginx and httpd log to /dev/stdout; a socket there cannot be reopened (ENXIO).
  test('the process can reopen /dev/stdout, /dev/stderr and /proc/self/fd/N, as under runc', async () => {
    const b = await bundle([
      'sh',
      '-c',
      'echo out > /dev/stdout && echo err > /dev/stderr && echo fd1 > /proc/self/fd/1 && readlink /proc/self/fd/1',
    ]);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^out\nfd1\npipe:\[\d+\]\n$/);
    assert.equal(r.stderr, 'err\n');
  });

  test('without input from the client the process reads /dev/null', async () => {
    const b = await bundle(['sh', '-c', 'readlink /proc/self/fd/0; cat; echo read-all']);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], { input: null });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '/dev/null\nread-all\n');
  });

  // Issue 9: crun on the guest's cgroup v2 refused these, failing the whole create.
  test('resource fields with no meaning in a VM are ignored; a CPU set is mapped onto its vCPUs', async () => {
    const b = await bundle(
      ['sh', '-c', 'nproc; cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"'],
      (spec) => {
        spec.linux!.resources = {
          memory: { limit: 64 * 2 ** 20, kernel: 32 * 2 ** 20, swappiness: 10, disableOOMKiller: true },
          cpu: { cpus: '2-3', mems: '1', realtimeRuntime: 1000, realtimePeriod: 100_000 },
          blockIO: {
            weight: 500,
            leafWeight: 300,
            throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1 << 20 }],
          },
        };
      },
    );
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    const [cpus, memoryMax] = r.stdout.trim().split('\n');
    assert.equal(
      Number(cpus),
      Math.min(2, availableParallelism()),
      'the container has as many CPUs as its set',
    );
    assert.equal(Number(memoryMax), 64 * 2 ** 20, 'the limits that mean something still apply');
  });

  // A process that exits at once, with no input: its exit reached the host before the answer
  // to the start request, and tearing the VM down then failed the start.
  test('a process that exits at once, with no input and no output, exits 0', async () => {
    const b = await bundle(['true']);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], { input: null });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('stdin is piped through to the process', async () => {
    const b = await bundle(['sh', '-c', 'tr a-z A-Z; echo done']);
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id], {
      input: 'piped text\nsecond line\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'PIPED TEXT\nSECOND LINE\ndone\n');
  });

  // `hull run … | head -1`: hull died of the EPIPE ('error' unheard) and left its VM running.
  test('a reader that stops reading early (`| head -1`): the container runs to its end, hull exits with its status', async () => {
    const b = await bundle([
      'sh',
      '-c',
      'echo first; sleep 1; i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo finished >&2; exit 3',
    ]);
    const run = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    await run.waitForOutput('first');
    run.child.stdout!.destroy();
    const r = await run.result;
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stderr, 'finished\n', 'the container finished; hull printed nothing of its own');
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
      spec.annotations = { [VM_NAMESPACES_ANNOTATION]: 'pid' };
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
    assert.equal(r.code, 137, r.stderr);
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
    const b = await panicking();
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 137);
    assert.match(
      r.stderr.trim(),
      /^hull: the VM of container \S+ ended under it: .*the guest kernel panicked: sysrq triggered crash/,
    );
  });

  test('a guest kernel panic right after `hull start`: start or state names it (issue 12)', async () => {
    const b = await panicking();
    const created = await hullKeepingOutput(t.root, ['create', '--bundle', b.dir, b.id]);
    assert.equal(created.code, 0, created.stderr);
    try {
      const started = await hull(['--root', t.root, 'start', b.id]);
      assertFailedStartNamesPanic(started);
      await assertStoppedByPanic(t.root, b.id);
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });

  // QEMU's exit is seen a while after its sockets close; the monitor waits 5 s for it, then
  // tears the VM down, and that teardown must not make the guest's own end hull's.
  test('a guest kernel panic whose QEMU is slow to exit: start and state still name it', async () => {
    const b = await panicking();
    const created = await hullKeepingOutput(t.root, ['create', '--bundle', b.dir, b.id]);
    assert.equal(created.code, 0, created.stderr);
    const [qemu] = await qemuProcessesUsing(t.root);
    assert.ok(qemu, 'the VM runs');
    // Longer than the monitor's 5 s wait for the exit (and a start's 3 s).
    const held = await holdExit(qemu!, 8);
    try {
      const started = await hull(['--root', t.root, 'start', b.id]);
      // QEMU says the guest ended the VM before it closes the agent's channel: a start that
      // fails names the panic without waiting for the held exit.
      assertFailedStartNamesPanic(started);
      await assertStoppedByPanic(t.root, b.id);
    } finally {
      held.stop();
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });
});
