import assert from 'node:assert/strict';
import { copyFile, lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { DescService } from '@bufbuild/protobuf';
import { AgentClient } from '../../src/agent/client.js';
import { AgentService } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { vmmLibraryDir } from '../../src/hypervisor/jail/jail.js';
import { shareServerOf } from '../../src/hypervisor/jail/share-server.js';
import { MONITOR_SOCKET } from '../../src/sandbox/monitor-socket.js';
import { statusField } from '../../src/sys/processes.js';
import { connectUnix } from '../../src/sys/unix-socket.js';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { TtrpcError } from '../../src/ttrpc/status.js';
import { privileged } from '../fixtures/bundle.js';
import {
  bundleTests,
  hull,
  hullDetached,
  qemuProcessesUsing,
  residentBytes,
  runCommand,
  startHull,
} from './harness.js';

/** A shell that ends at SIGTERM (as PID 1 it would ignore it without a trap). */
const UNTIL_TERM_PRELUDE = 'trap "exit 0" TERM';
const WAIT_FOR_TERM = 'sleep 600 & wait';

/** Issue 12: the hypervisor wall, probed as an attacker would. */
describe('the hypervisor wall', { timeout: 600_000 }, () => {
  const t = bundleTests('wall');

  test('QEMU runs confined: its own user, no capabilities, seccomp, its own mounts and cgroup', async () => {
    const b = await t.bundle(['sh', '-c', `${UNTIL_TERM_PRELUDE}; echo up; ${WAIT_FOR_TERM}`]);
    const running = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    try {
      await running.waitForOutput('up');
      const [qemu] = await qemuProcessesUsing(t.root);
      assert.ok(qemu, 'the VM runs');
      const status = await readFile(`/proc/${qemu}/status`, 'utf8');
      for (const id of [
        ...statusField(status, 'Uid').split(/\s+/),
        ...statusField(status, 'Gid').split(/\s+/),
      ])
        assert.notEqual(
          id,
          '0',
          `QEMU runs as neither root user nor root group: ${statusField(status, 'Uid')}`,
        );
      assert.equal(statusField(status, 'Groups'), '', 'no supplementary groups');
      for (const set of ['CapEff', 'CapPrm', 'CapBnd', 'CapAmb'])
        assert.equal(
          BigInt(`0x${statusField(status, set)}`),
          0n,
          `QEMU's ${set} ${statusField(status, set)}`,
        );
      assert.equal(statusField(status, 'NoNewPrivs'), '1');
      assert.equal(statusField(status, 'Seccomp'), '2', 'a seccomp filter');
      assert.ok(Number(statusField(status, 'Seccomp_filters')) >= 2, "hull's filter and QEMU's own -sandbox");

      // The share reaches QEMU only through its server: QEMU's child, the same user, holding
      // CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER (what acting for guest root needs) only.
      const server = await shareServerOf(qemu);
      assert.ok(server, 'hull-share-server runs beside QEMU');
      const served = await readFile(`/proc/${server}/status`, 'utf8');
      assert.equal(statusField(served, 'Uid'), statusField(status, 'Uid'));
      for (const set of ['CapEff', 'CapPrm', 'CapBnd'])
        assert.equal(
          BigInt(`0x${statusField(served, set)}`),
          0b1011n,
          `server's ${set} ${statusField(served, set)}`,
        );
      assert.equal(statusField(served, 'NoNewPrivs'), '1');
      assert.equal(statusField(served, 'Seccomp'), '2');
      const qemuMounts = await readFile(`/proc/${qemu}/mounts`, 'utf8');
      assert.match(qemuMounts, /^hull-share \S+ fuse\.hull-share ro?.*nosuid,nodev,noexec/m, qemuMounts);

      assert.notEqual(await readlink(`/proc/${qemu}/ns/mnt`), await readlink('/proc/self/ns/mnt'));
      const visible = (await readdir(`/proc/${qemu}/root`)).sort();
      for (const hostDir of ['home', 'root', 'boot', 'srv', 'opt', 'mnt'])
        assert.ok(!visible.includes(hostDir), `QEMU does not see the host's /${hostDir}: ${visible}`);
      assert.deepEqual(
        await readdir(`/proc/${qemu}/root/etc`),
        ['ld.so.cache'],
        'nothing of /etc but the loader cache',
      );
      // Its environment: a PATH, and hull's stand-in libraries first in its loader's path, a
      // directory bound read-only into its root (the loader takes them; no system copy loaded).
      const environ = (await readFile(`/proc/${qemu}/environ`, 'utf8')).split('\0').filter(Boolean);
      assert.deepEqual(environ, ['PATH=/usr/bin:/bin', `LD_LIBRARY_PATH=${vmmLibraryDir()}`]);
      assert.match(qemuMounts, new RegExp(`^\\S+ ${vmmLibraryDir()} \\S+ ro[,\\s]`, 'm'), qemuMounts);
      const maps = await readFile(`/proc/${qemu}/maps`, 'utf8');
      for (const library of ['libcapstone.so.4', 'libpmem.so.1']) {
        assert.ok(maps.includes(join(vmmLibraryDir(), library)), `QEMU loaded hull's ${library}`);
        const mapped = maps.split('\n').filter((line) => line.includes(`/${library}`));
        assert.ok(
          mapped.every((line) => line.includes(`${vmmLibraryDir()}/`)),
          `QEMU loaded no other ${library}: ${mapped.join('\n')}`,
        );
      }
      assert.deepEqual((await readdir(`/proc/${qemu}/root/dev`)).sort(), [
        'null',
        'random',
        'urandom',
        'zero',
      ]);

      const cgroups = await readFile(`/proc/${qemu}/cgroup`, 'utf8');
      const memoryLine = cgroups.split('\n').find((l) => /:memory:|^0::/.test(l) && l.includes('/hull/'));
      assert.ok(memoryLine?.endsWith(`/hull/${b.id}`), `QEMU is in its own cgroup: ${cgroups}`);
      const v2 = memoryLine!.startsWith('0::');
      const limitFile = v2
        ? join('/sys/fs/cgroup/hull', b.id, 'memory.max')
        : join('/sys/fs/cgroup/memory/hull', b.id, 'memory.limit_in_bytes');
      const limit = Number(await readFile(limitFile, 'utf8'));
      assert.ok(limit > 256 * 2 ** 20 && limit < 4 * 2 ** 30, `sized to the VM: ${limit} bytes`);
    } finally {
      running.child.kill('SIGTERM');
      await running.result;
    }
  });

  test('root in a privileged container sets setuid bits and makes device nodes it sees, none reaching the host', async () => {
    const b = await t.bundle(
      [
        'sh',
        '-c',
        [
          'cp /bin/busybox /suid && chmod 4755 /suid; echo "chmod u+s: $? $(stat -c %a /suid)"',
          'cp /bin/busybox /sgid && chmod 2755 /sgid; echo "chmod g+s: $? $(stat -c %a /sgid)"',
          'mkdir /sgid-dir && chmod g+s /sgid-dir; echo "dir g+s: $? $(stat -c %a /sgid-dir)"',
          'mknod /devnull c 1 3 && echo x > /devnull; echo "mknod c: $? $(stat -c %F:%t,%T /devnull)"',
          'mknod /devblk b 7 0; echo "mknod b: $? $(stat -c %F /devblk)"',
          'mkfifo /fifo; echo "mkfifo: $? $(stat -c %F /fifo)"',
          'ln -s /etc/shadow /link; echo "symlink: $? $(readlink /link)"',
          'chown 1000:1000 /suid; echo "chown: $? $(stat -c %u:%g:%a /suid)"',
          'chmod 4755 /suid; touch /plain && chmod 750 /plain; echo "chmod 750: $? $(stat -c %a /plain)"',
          'chmod 4755 /host-id; echo "host id u+s: $? $(stat -c %a /host-id)"',
        ].join('; '),
      ],
      privileged,
    );
    // The original attack: a host program the container makes setuid root, run on the host by
    // an unprivileged user. (busybox would drop the privilege by itself; coreutils' id does not.)
    await copyFile('/usr/bin/id', join(b.dir, 'rootfs', 'host-id'));
    const r = await hull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    assert.equal(r.code, 0, r.stderr);
    // The container sees what it set, as on any Linux filesystem...
    assert.match(r.stdout, /chmod u\+s: 0 4755/);
    assert.match(r.stdout, /chmod g\+s: 0 2755/);
    assert.match(r.stdout, /dir g\+s: 0 2755/);
    assert.match(r.stdout, /mknod c: 0 character special file:1,3/, 'a device node that works in the guest');
    assert.match(r.stdout, /mknod b: 0 block special file/);
    assert.match(r.stdout, /mkfifo: 0 fifo/);
    assert.match(r.stdout, /symlink: 0 \/etc\/shadow/);
    assert.match(r.stdout, /chown: 0 1000:1000:755/, 'chown clears the setuid bit, as Linux does');
    assert.match(r.stdout, /chmod 750: 0 750/);
    // ...and the host has the same files, owners and modes, without what would be a privilege.
    const rootfs = join(b.dir, 'rootfs');
    const plain = await lstat(join(rootfs, 'plain'));
    assert.equal(plain.mode & 0o7777, 0o750);
    const suid = await lstat(join(rootfs, 'suid'));
    assert.deepEqual(
      [suid.uid, suid.gid, suid.mode & 0o7777],
      [1000, 1000, 0o755],
      'no setuid bit on the host',
    );
    assert.equal((await lstat(join(rootfs, 'sgid'))).mode & 0o7777, 0o755, 'no setgid bit on the host');
    assert.equal((await lstat(join(rootfs, 'sgid-dir'))).mode & 0o6000, 0);
    for (const name of ['devnull', 'devblk', 'fifo'])
      assert.ok((await lstat(join(rootfs, name))).isFile(), `${name} is a plain file on the host`);
    assert.equal(await readlink(join(rootfs, 'link')), '/etc/shadow', 'a symlink is a real symlink');
    assert.match(r.stdout, /host id u\+s: 0 4755/);
    const run = await runCommand('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      join(rootfs, 'host-id'),
      '-u',
    ]);
    assert.equal(run.stdout.trim(), '65534', `run on the host it gains no root: ${run.stderr}`);
  });

  test('what the guest set survives a new VM on the same files', async () => {
    const first = await t.bundle(
      ['sh', '-c', 'cp /bin/busybox /suid && chmod 4711 /suid && mknod /tty0 c 4 0'],
      privileged,
    );
    assert.equal((await hull(['--root', t.root, 'run', '-b', first.dir, first.id])).code, 0);
    const again = await t.bundle(['sh', '-c', 'stat -c "%n %a %F %t,%T" /suid /tty0'], (spec) => {
      privileged(spec);
      spec.root!.path = join(first.dir, 'rootfs');
    });
    const r = await hull(['--root', t.root, 'run', '-b', again.dir, again.id]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\/suid 4711 regular file/);
    assert.match(r.stdout, /\/tty0 \d+ character special file 4,0/);
  });

  test("the guest cannot write where the host later mounts a pod's next container", async () => {
    const shareFromContainer = '/proc/1/root/run/hull/shared';
    const b = await t.bundle(
      [
        'sh',
        '-c',
        [
          `ls ${shareFromContainer} >/dev/null && echo "share visible"`,
          `ln -s /etc ${shareFromContainer}/future-ctr; echo "symlink: $?"`,
          `mkdir ${shareFromContainer}/planted; echo "mkdir: $?"`,
          `ln -s /etc ${shareFromContainer}/*/mounts; echo "in own dir: $?"`,
          UNTIL_TERM_PRELUDE,
          'echo planted',
          WAIT_FOR_TERM,
        ].join('; '),
      ],
      privileged,
    );
    const running = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    let hostView: string[] = [];
    try {
      await running.waitForOutput('planted');
      hostView = await readdir(join(t.root, b.id, 'vm', 'shared'));
    } finally {
      running.child.kill('SIGTERM');
    }
    const out = (await running.result).stdout;
    assert.match(out, /share visible/, 'the attacker reached the share');
    assert.match(out, /symlink: 1/);
    assert.match(out, /mkdir: 1/);
    assert.match(out, /in own dir: 1/);
    assert.deepEqual(hostView, [b.id], 'the host share holds only what the host put there');
  });

  test('10,000 malformed requests to a real guest agent: each answered with an error, and it keeps serving', async () => {
    const b = await t.bundle(['sh', '-c', `${UNTIL_TERM_PRELUDE}; echo up; ${WAIT_FOR_TERM}`]);
    const running = startHull(['--root', t.root, 'run', '-b', b.dir, b.id]);
    let client: TtrpcClient | undefined;
    try {
      await running.waitForOutput('up');
      // The monitor passes the agent's API through unchanged, to the agent in the guest.
      client = new TtrpcClient(
        await connectUnix(join(t.root, b.id, MONITOR_SOCKET), AbortSignal.timeout(10_000)),
      );
      const methods = (AgentService as unknown as DescService).methods.map((m) => m.name);
      // Field number 0 is never valid protobuf: no payload below can decode as a request.
      const malformed = (n: number) => Buffer.from([0x00, n & 0xff, (n >> 8) & 0xff, 0xff, 0xff]);
      let errors = 0;
      const total = 10_000;
      let next = 0;
      const worker = async () => {
        while (next < total) {
          const n = next++;
          try {
            await client!.callRaw(AgentService.typeName, methods[n % methods.length]!, malformed(n), {
              signal: AbortSignal.timeout(60_000),
            });
          } catch (err) {
            if (err instanceof TtrpcError) errors += 1;
            else throw err;
          }
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      assert.equal(errors, total, 'every malformed request got an error status');
      const agent = new AgentClient(
        await connectUnix(join(t.root, b.id, MONITOR_SOCKET), AbortSignal.timeout(10_000)),
      );
      const pids = await agent.listProcesses(b.id, AbortSignal.timeout(30_000));
      agent.close();
      assert.ok(pids.length > 0, 'the agent still answers, and the container runs');
    } finally {
      client?.close();
      running.child.kill('SIGTERM');
    }
    const r = await running.result;
    assert.equal(r.code, 0, `the container ran on to its end: ${r.stderr}`);
  });

  test('60 connections each holding an unfinished 4 MiB frame: the monitor stays small and keeps serving (finding 5)', async () => {
    const b = await t.bundle(['sleep', '1000']);
    const started = await hullDetached(t.root, ['--bundle', b.dir, b.id]);
    assert.equal(started.code, 0, started.stderr);
    try {
      const state = JSON.parse((await hull(['--root', t.root, 'state', b.id])).stdout) as { pid: number };
      const rssMiB = async () => (await residentBytes(state.pid)) / 2 ** 20;
      const socket = join(t.root, b.id, MONITOR_SOCKET);
      // A frame header announcing 4 MiB (the most a frame may carry), then all of it but one byte.
      const header = Buffer.alloc(10);
      header.writeUInt32BE(4 << 20, 0);
      header.writeUInt32BE(1, 4);
      header.writeUInt8(1, 8);
      const unfinished = Buffer.concat([header, Buffer.alloc((4 << 20) - 1)]);
      const flood = async () => {
        const sockets = await Promise.all(
          Array.from({ length: 60 }, () => connectUnix(socket, AbortSignal.timeout(10_000))),
        );
        for (const s of sockets) {
          s.on('error', () => {});
          s.write(unfinished);
        }
        await new Promise((resolve) => setTimeout(resolve, 3000));
        const peak = await rssMiB();
        // The monitor serves its own verbs meanwhile.
        const exec = await hull(['--root', t.root, 'exec', b.id, 'true']);
        for (const s of sockets) s.destroy();
        return { peak, exec };
      };
      const before = await rssMiB();
      const first = await flood();
      assert.equal(first.exec.code, 0, `exec during the flood: ${first.exec.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const second = await flood();
      assert.equal(second.exec.code, 0, `exec during the second flood: ${second.exec.stderr}`);
      const grown = first.peak - before;
      assert.ok(grown < 32, `the monitor grew by ${grown.toFixed(0)} MiB under 240 MiB of unfinished frames`);
      assert.ok(
        second.peak - first.peak < 32,
        `what the first flood held was given back: ${first.peak.toFixed(0)} then ${second.peak.toFixed(0)} MiB`,
      );
    } finally {
      await hull(['--root', t.root, 'delete', '--force', b.id]);
    }
  });
});
