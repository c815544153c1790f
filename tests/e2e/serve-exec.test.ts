import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Sandbox } from 'hull/sdk';
import { containerDir } from '../../src/sandbox/container-id.js';
import { MonitorClient } from '../../src/sandbox/monitor-client.js';
import { raceSignal } from '../../src/util/deadline.js';
import { pushBusybox, type Registry, startRegistry } from '../fixtures/registry.js';
import { killEverySandbox, serveStateDir, startServe, stopServe } from '../fixtures/serve.js';
import { type HullRun, hull, privateDirs, qemuProcessesUsing } from './harness.js';

/**
 * What a process sees of itself that its starter decides: user and groups, capability sets,
 * no_new_privs, seccomp, cgroup, namespaces, limits, umask, working directory, environment,
 * hostname, and its place in the container's pid namespace.
 */
const PROBE = [
  'grep -E "^(Uid|Gid|Groups|Cap[A-Za-z]+|NoNewPrivs|Seccomp|SigBlk|SigIgn):" /proc/self/status',
  'cat /proc/self/cgroup',
  'for n in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$n; done',
  'ulimit -Sn; ulimit -Hn; umask; pwd; hostname',
  'env | sort',
  'cut -d" " -f5-8 /proc/self/stat',
  'tr "\\0" " " < /proc/1/cmdline; echo',
  'ls /proc/self/fd | wc -l',
].join('; ');

/**
 * serve's commands start without crun (guest/image/hull-spawn.c); `hull exec` still runs
 * crun exec. Each must give a process the same view of itself, for root and another user.
 */
describe('hull serve: a command starts as crun exec would start it', { timeout: 900_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let registry: Registry;
  let env: NodeJS.ProcessEnv;
  let server: HullRun | undefined;
  let api: string;
  let sandbox: Sandbox;

  before(async () => {
    dirs = await privateDirs('serve-exec');
    env = { HULL_STATE_DIR: await serveStateDir(dirs.scratch) };
    registry = await startRegistry(join(dirs.scratch, 'registry'));
    const image = await pushBusybox(dirs.scratch, registry);
    api = `unix:${join(dirs.scratch, 'api.sock')}`;
    server = await startServe(dirs.root, ['--listen', api], env);
    sandbox = await Sandbox.create({ api, image, network: 'none', timeoutMs: 600_000 });
  });

  after(async () => {
    await killEverySandbox(api);
    await stopServe(server);
    await registry?.stop();
    assert.deepEqual(await qemuProcessesUsing(`${dirs.root}/`), [], 'no QEMU process is left');
    await dirs?.cleanup();
  });

  async function viaHullExec(args: string[]): Promise<string> {
    const run = await hull(['--root', dirs.root, 'exec', ...args], { env, input: null });
    assert.equal(run.code, 0, run.stderr);
    return run.stdout;
  }

  test('as root: the same capabilities, cgroup, namespaces, limits and environment as hull exec gives', async () => {
    const command = await sandbox.commands.run(PROBE);
    assert.equal(command.exitCode, 0, command.stderr);
    const cli = await viaHullExec([sandbox.sandboxId, 'sh', '-c', PROBE]);
    assert.equal(command.stdout, cli);
    const lines = command.stdout.split('\n');
    // In the container's cgroup and pid namespace, beside its init (the idle sleep).
    assert.ok(lines.includes(`0::/hull/${sandbox.sandboxId}`), command.stdout);
    assert.ok(lines.includes('sleep 2147483647 '), command.stdout);
    // Docker's default capabilities, as every sandbox's process has them, and nothing else.
    assert.ok(lines.includes('CapEff:\t00000000a80425fb'), command.stdout);
    assert.ok(lines.includes('CapBnd:\t00000000a80425fb'), command.stdout);
    assert.ok(lines.includes('NoNewPrivs:\t0'), command.stdout);
    // stdin, stdout, stderr and the one ls opens: nothing of the guest's leaks in.
    assert.equal(lines.at(-2), '4');
  });

  test('as another user: its uid and gid, no capabilities, the same as hull exec --user', async () => {
    const command = await sandbox.commands.run(PROBE, { user: '1000:1000' });
    assert.equal(command.exitCode, 0, command.stderr);
    const cli = await viaHullExec(['--user', '1000:1000', sandbox.sandboxId, 'sh', '-c', PROBE]);
    assert.equal(command.stdout, cli);
    const lines = command.stdout.split('\n');
    assert.ok(lines.includes('Uid:\t1000\t1000\t1000\t1000'), command.stdout);
    assert.ok(lines.includes('Gid:\t1000\t1000\t1000\t1000'), command.stdout);
    assert.ok(lines.includes('CapEff:\t0000000000000000'), command.stdout);
    assert.ok(lines.includes('CapPrm:\t0000000000000000'), command.stdout);
  });

  test("the guest's steps: hull-spawn when asked and it applies everything, crun exec otherwise", async () => {
    const id = sandbox.sandboxId;
    const monitor = await MonitorClient.connect(
      containerDir({ root: dirs.root }, id),
      id,
      AbortSignal.timeout(30_000),
    );
    try {
      const base = {
        terminal: false,
        user: { uid: 0, gid: 0 },
        args: ['true'],
        env: ['PATH=/bin'],
        cwd: '/',
      };
      const started = async (execId: string, spec: typeof base, direct: boolean) => {
        const ref = { containerId: id, execId };
        const { steps } = await monitor.agent.execProcess(
          ref,
          spec,
          { stdin: false },
          AbortSignal.timeout(30_000),
          {
            direct,
          },
        );
        assert.equal(await monitor.agent.waitProcess(ref, AbortSignal.timeout(30_000)), 0);
        return steps.map((step) => step.name);
      };
      assert.deepEqual(await started('steps-direct', base, true), ['ask hull-spawn', 'hull-spawn']);
      assert.deepEqual(await started('steps-crun', base, false), ['crun exec']);
      // An OOM score is crun's to set: asked for direct, it still goes to crun.
      assert.deepEqual(await started('steps-oom', { ...base, oomScoreAdj: 0 } as typeof base, true), [
        'crun exec',
      ]);
    } finally {
      monitor.close();
    }
  });

  test('cwd and env given with the command, and a program that is not there fails in one line', async () => {
    const command = await sandbox.commands.run(['sh', '-c', 'pwd; echo $GREETING'], {
      cwd: '/tmp',
      env: { GREETING: 'hello' },
    });
    assert.deepEqual([command.exitCode, command.stdout], [0, '/tmp\nhello\n']);
    await assert.rejects(sandbox.commands.run(['/no/such/program']), (err: Error) => {
      assert.match(err.message, /no\/such\/program/);
      assert.ok(!err.message.includes('\n'), err.message);
      return true;
    });
    await assert.rejects(sandbox.commands.run(['true'], { cwd: '/no/such/dir' }), /no\/such\/dir/);
    assert.equal((await sandbox.commands.run('echo still here')).stdout, 'still here\n');
  });

  test('twenty commands at once: each its own output and exit code', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        sandbox.commands.run(`echo out-${i}; echo err-${i} >&2; exit ${i}`),
      ),
    );
    results.forEach((result, i) => {
      assert.deepEqual([result.exitCode, result.stdout, result.stderr], [i, `out-${i}\n`, `err-${i}\n`]);
    });
  });

  test('a background command is killed by its pid, and the sandbox reaps it', async () => {
    // Killed once it sleeps, as a user stops a command that has begun: the shell has said so.
    // (Killed at once, it could be killed before its echo: a race a loaded host loses.)
    let said = '';
    let begun!: () => void;
    const started = new Promise<void>((resolve) => {
      begun = resolve;
    });
    const handle = await sandbox.commands.run('echo started; exec sleep 600', {
      background: true,
      onStdout: (text) => {
        said += text;
        if (said.includes('started')) begun();
      },
    });
    await raceSignal(started, AbortSignal.timeout(60_000));
    await sandbox.commands.kill(handle.pid);
    const result = await handle.wait();
    assert.equal(result.exitCode, 137);
    assert.equal(result.stdout, 'started\n');
    const left = await sandbox.commands.run('ps -o comm | grep -c "^sleep" || true');
    assert.equal(left.stdout, '1\n', 'only the init sleeps');
  });
});
