import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { shareServerOf } from '../../src/hypervisor/jail/share-server.js';
import { processesMentioning } from '../../src/sys/processes.js';
import { Containerd, HULL_RUNTIME } from '../fixtures/containerd.js';
import { IMAGE } from '../fixtures/oci-image.js';
import { privateDirs, processExit, qemuProcessesUsing, runCommand } from './harness.js';

/** containerd 1.6 → containerd-shim-hull-v2, driven with ctr as a user would. */
describe('containerd with runtime io.containerd.hull.v2', { timeout: 900_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let containerd: Containerd;
  const ctr = (...args: string[]) => containerd.ctr(args);
  const run = (...args: string[]) => ctr('run', '--runtime', HULL_RUNTIME, ...args);

  /** SIGKILLs a task, waits for containerd to see it stopped, then removes task and container. */
  const killAndRemove = async (id: string) => {
    const kill = await ctr('task', 'kill', '--signal', 'SIGKILL', id);
    assert.equal(kill.code, 0, kill.stderr);
    await waitFor(async () => new RegExp(`${id}\\s+\\d+\\s+STOPPED`).test((await ctr('task', 'ls')).stdout));
    const rm = await ctr('task', 'rm', id);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await ctr('containers', 'rm', id)).code, 0);
  };

  /** Follows `ctr events` until stopped; taskLines(id) are the task events of one container. */
  const watchEvents = async () => {
    const child = spawn('ctr', ['-a', containerd.socket, 'events'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let seen = '';
    child.stdout!.on('data', (c: Buffer) => {
      seen += c.toString();
    });
    await new Promise((r) => setTimeout(r, 300));
    return {
      seen: () => seen,
      taskLines: (id: string) =>
        seen.split('\n').filter((l) => l.includes('/tasks/') && l.includes(`"${id}"`)),
      stop: () => child.kill(),
    };
  };

  before(async () => {
    dirs = await privateDirs('containerd');
    containerd = await Containerd.start(join(dirs.scratch, 'c'));
    await containerd.importBusybox(join(dirs.scratch, 'image'));
  });
  after(async () => {
    await containerd?.stop();
    await dirs.cleanup();
  });
  // No shim server, VM, share or task mount outlives its task.
  afterEach(() => containerd.assertNothingLeft());

  test('run --rm: output and exit code, in its own kernel', async () => {
    const r = await run('--rm', IMAGE, 'rm1', 'sh', '-c', 'echo "hello from $(uname -r)"; exit 3');
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stdout, /^hello from 6\.1\./);
  });

  test('run -d, then task exec, kill and rm', async () => {
    const started = await run('-d', IMAGE, 'd1', 'sleep', '1000');
    assert.equal(started.code, 0, started.stderr);
    assert.match((await ctr('task', 'ls')).stdout, /d1\s+\d+\s+RUNNING/);
    const exec = await ctr('task', 'exec', '--exec-id', 'e1', 'd1', 'sh', '-c', 'echo from-exec; exit 5');
    assert.equal(exec.code, 5, exec.stderr);
    assert.equal(exec.stdout, 'from-exec\n');
    const ps = await ctr('task', 'ps', 'd1');
    assert.match(ps.stdout, /^\d+\s/m, 'task ps lists the container process');
    const pause = await ctr('task', 'pause', 'd1');
    assert.equal(pause.code, 0, pause.stderr);
    assert.match((await ctr('task', 'ls')).stdout, /d1\s+\d+\s+PAUSED/);
    assert.equal((await ctr('task', 'resume', 'd1')).code, 0);
    await killAndRemove('d1');
  });

  test('events reach containerd in order, TaskExit naming the container for its init', async () => {
    const events = await watchEvents();
    try {
      assert.equal((await run('-d', IMAGE, 'ev1', 'sleep', '1000')).code, 0);
      assert.equal((await ctr('task', 'exec', '--exec-id', 'x1', 'ev1', 'true')).code, 0);
      assert.equal((await ctr('task', 'pause', 'ev1')).code, 0);
      assert.equal((await ctr('task', 'resume', 'ev1')).code, 0);
      await killAndRemove('ev1');
      await waitFor(async () => events.seen().includes('/tasks/delete'));
    } finally {
      events.stop();
    }
    const tasks = events.taskLines('ev1');
    assert.deepEqual(
      tasks.map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0]),
      [
        '/tasks/create',
        '/tasks/start',
        '/tasks/exec-added',
        '/tasks/exec-started',
        '/tasks/exit',
        '/tasks/paused',
        '/tasks/resumed',
        '/tasks/exit',
        '/tasks/delete',
      ],
    );
    assert.match(tasks[4]!, /"id":"x1"/, 'the exec exit names the exec');
    assert.match(tasks[7]!, /"id":"ev1".*"exit_status":137/, 'the init exit names the container');
  });

  test("stdin reaches the process, and its end closes the process's stdin", async () => {
    const client = spawn(
      'ctr',
      ['-a', containerd.socket, 'run', '--rm', '--runtime', HULL_RUNTIME, IMAGE, 'in1', 'cat'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let out = '';
    client.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    client.stdin!.end('piped input\n');
    const code = await new Promise<number | null>((res) => client.on('exit', (c) => res(c)));
    assert.equal(code, 0);
    assert.equal(out, 'piped input\n');
  });

  test('the OOM killer: containerd gets the oom event and the task exits 137', async () => {
    const events = await watchEvents();
    try {
      const r = await run(
        '--rm',
        '--memory-limit',
        String(32 * 1024 * 1024),
        IMAGE,
        'oom1',
        'dd',
        'if=/dev/zero',
        'of=/dev/null',
        'bs=128M',
        'count=1',
      );
      assert.equal(r.code, 137, r.stderr);
      await waitFor(async () => events.seen().includes('/tasks/delete'));
    } finally {
      events.stop();
    }
    const topics = events.taskLines('oom1').map((l) => /\/tasks\/[a-z-]+/.exec(l)?.[0]);
    assert.deepEqual(topics, ['/tasks/create', '/tasks/start', '/tasks/oom', '/tasks/exit', '/tasks/delete']);
  });

  test("the shim killed: containerd's clean-up with delete removes the VM and its files", async () => {
    assert.equal((await run('-d', IMAGE, 'sk1', 'sleep', '1000')).code, 0);
    // sk1's own server (its arguments name the task, and no start or delete action).
    const shims = await processesMentioning(containerd.socket, (cmdline) => {
      const args = cmdline.split('\0');
      return args[args.indexOf('-id') + 1] === 'sk1' && !args.includes('start') && !args.includes('delete');
    });
    assert.equal(shims.length, 1, 'the shim server runs');
    const shim = shims[0]!;
    process.kill(shim, 'SIGKILL');
    await waitFor(async () => !/sk1\s+\d+\s+RUNNING/.test((await ctr('task', 'ls')).stdout));
    // containerd runs `containerd-shim-hull-v2 delete` on its own once it sees the shim gone.
    await waitFor(async () => (await processesMentioning(containerd.socket)).length === 0);
    await ctr('task', 'rm', 'sk1');
    assert.equal((await ctr('containers', 'rm', 'sk1')).code, 0);
    // The wait above can pass before containerd has started its clean-up's `delete` at all;
    // that one then ends on its own, soon after.
    await waitFor(async () => (await processesMentioning(containerd.socket)).length === 0);
    for (const dir of [
      '/sys/fs/cgroup/hull/sk1',
      '/sys/fs/cgroup/memory/hull/sk1',
      '/sys/fs/cgroup/pids/hull/sk1',
    ])
      assert.equal(existsSync(dir), false, `the VM's cgroup ${dir} is removed too`);
  });

  test('run -t: the process has a terminal', async () => {
    const command = `ctr -a ${containerd.socket} run -t --rm --runtime ${HULL_RUNTIME} ${IMAGE} tty1 sh -c 'tty; exit 6'`;
    const r = await runCommand('script', ['-qec', command, '/dev/null']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
  });

  test('stdout to file:// and binary:// loggers', async () => {
    const file = join(dirs.scratch, 'logs', 'out.log');
    const byFile = await run(
      '--rm',
      '--log-uri',
      `file://${file}`,
      IMAGE,
      'log1',
      'sh',
      '-c',
      'echo to-file; echo err >&2',
    );
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.equal(await readFile(file, 'utf8'), 'to-file\nerr\n');
    // A logging program reads the container's stdout on fd 3 and says it is ready on fd 5.
    const logger = join(dirs.scratch, 'logger.sh');
    const logged = join(dirs.scratch, 'logs', 'binary.log');
    await writeFile(logger, `#!/bin/sh\nexec 5>&-\necho "$CONTAINER_ID" > ${logged}\ncat <&3 >> ${logged}\n`);
    await chmod(logger, 0o755);
    const byBinary = await run('--rm', '--log-uri', `binary://${logger}`, IMAGE, 'log2', 'echo', 'to-binary');
    assert.equal(byBinary.code, 0, byBinary.stderr);
    await waitFor(async () => (await readFile(logged, 'utf8').catch(() => '')).includes('to-binary'));
    assert.equal(await readFile(logged, 'utf8'), 'log2\nto-binary\n');
  });

  test('a task keeps answering while containerd restarts', async () => {
    assert.equal((await run('-d', IMAGE, 'r1', 'sleep', '1000')).code, 0);
    await containerd.restart();
    assert.match((await ctr('task', 'ls')).stdout, /r1\s+\d+\s+RUNNING/);
    const exec = await ctr('task', 'exec', '--exec-id', 'after', 'r1', 'echo', 'still-here');
    assert.equal(exec.code, 0, exec.stderr);
    assert.equal(exec.stdout, 'still-here\n');
    await killAndRemove('r1');
  });

  test('the VM killed under a task: containerd sees the task exit', async () => {
    const client = spawn(
      'ctr',
      ['-a', containerd.socket, 'run', '--rm', '--runtime', HULL_RUNTIME, IMAGE, 'k1', 'sleep', '1000'],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((res) => client.on('exit', (code) => res(code)));
    await waitFor(async () => /k1\s+\d+\s+RUNNING/.test((await ctr('task', 'ls')).stdout));
    const [qemu] = await qemuProcessesUsing(containerd.hullRoot);
    assert.ok(qemu, 'the task has a VM');
    process.kill(qemu, 'SIGKILL');
    assert.equal(await exited, 137, 'ctr run reports the task killed');
    await processExit(client.pid!, 30_000);
  });

  test("the share server killed under a task: the task exits, and the shim's log names the share server (issue 24, item 4)", async () => {
    const client = spawn(
      'ctr',
      ['-a', containerd.socket, 'run', '--rm', '--runtime', HULL_RUNTIME, IMAGE, 'ss1', 'sleep', '1000'],
      { stdio: 'ignore' },
    );
    const exited = new Promise<number | null>((res) => client.on('exit', (code) => res(code)));
    await waitFor(async () => /ss1\s+\d+\s+RUNNING/.test((await ctr('task', 'ls')).stdout));
    const [qemu] = await qemuProcessesUsing(containerd.hullRoot);
    assert.ok(qemu, 'the task has a VM');
    const server = await shareServerOf(qemu);
    assert.ok(server, 'the VM has a share server');
    process.kill(server, 'SIGKILL');
    assert.equal(await exited, 137, 'ctr run reports the task killed');
    await processExit(client.pid!, 30_000);
    assert.match(
      await readFile(containerd.log, 'utf8'),
      /the VM has stopped under its tasks: its share server \(hull-share-server, pid \d+\) died/,
    );
  });

  test('sizing hints from annotations set the VM memory', async () => {
    const r = await run(
      '--rm',
      '--annotation',
      `io.kubernetes.cri.sandbox-memory=${256 * 1024 * 1024}`,
      IMAGE,
      'size1',
      'sh',
      '-c',
      "awk '/MemTotal/ {print $2}' /proc/meminfo",
    );
    assert.equal(r.code, 0, r.stderr);
    const kib = Number(r.stdout.trim());
    // 512 MiB default + 256 MiB hinted, less what the kernel keeps for itself.
    assert.ok(kib > 640 * 1024 && kib <= 768 * 1024, `MemTotal ${kib} kB`);
  });

  test('a checkpoint of a task on the 9p share is refused in one line and the task keeps running; a pod container without its pod is refused', async () => {
    assert.equal((await run('-d', IMAGE, 'u1', 'sleep', '1000')).code, 0);
    const checkpoint = await ctr('task', 'checkpoint', 'u1');
    assert.notEqual(checkpoint.code, 0);
    assert.match(
      checkpoint.stderr,
      /QEMU cannot save a VM while 9p is mounted; a task created with the annotation dev\.hull\.rootfs=disk/,
    );
    assert.match((await ctr('task', 'ls')).stdout, /u1\s+\d+\s+RUNNING/);
    await killAndRemove('u1');

    const orphan = await run(
      '--rm',
      '--annotation',
      'io.kubernetes.cri.container-type=container',
      '--annotation',
      'io.kubernetes.cri.sandbox-id=no-such-pod',
      IMAGE,
      'orphan',
      'true',
    );
    assert.notEqual(orphan.code, 0);
    assert.match(orphan.stderr, /pod no-such-pod has no running hull shim/);
    await ctr('containers', 'rm', 'orphan');
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
