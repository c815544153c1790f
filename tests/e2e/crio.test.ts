import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NamespaceMode, RuntimeService } from '../../src/gen/runtime/v1/cri_pb.js';
import { processesMentioning } from '../../src/sys/processes.js';
import { CriClient } from '../fixtures/cri-client.js';
import { Crio, crioMissing, OCI_HANDLER, VM_HANDLER } from '../fixtures/crio.js';
import { IMAGE } from '../fixtures/oci-image.js';
import {
  assertNothingLeft,
  type CommandResult,
  privateDirs,
  qemuProcessesUsing,
  runCommand,
} from './harness.js';

const missing = await crioMissing();
if (missing) console.log(`# skipped: ${missing}`);

/** The CNI bridge of this test's pods, on the host. */
const BRIDGE = `hullcrio${process.pid % 10000}`;

/** A container that prints a line, then serves until it gets SIGTERM, which it reports. */
const SERVICE = [
  'sh',
  '-c',
  'trap "echo got TERM; exit 0" TERM; echo hello-$NAME; while true; do sleep 0.1; done',
];

/** Kubernetes on CRI-O 1.26 (a CRI client as kubelet), with hull as either of its handler types. */
describe('a Kubernetes pod through CRI-O', { timeout: 900_000, skip: missing }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let crio: Crio;
  let cri: CriClient;

  before(async () => {
    dirs = await privateDirs('crio');
    crio = await Crio.start(join(dirs.scratch, 'crio'), {
      images: join(dirs.scratch, 'image'),
      bridge: BRIDGE,
      subnet: '10.231.9.0/24',
      leases: join(dirs.scratch, 'cni-leases'),
    });
    cri = new CriClient(crio.socket);
  });
  after(async () => {
    cri?.close();
    await crio?.stop();
    await runCommand('ip', ['link', 'del', BRIDGE]);
    await dirs?.cleanup();
  });

  const execSync = async (containerId: string, cmd: string[]) => {
    const r = await cri.call(RuntimeService.method.execSync, { containerId, cmd, timeout: 60n });
    assert.equal(r.exitCode, 0, `${cmd.join(' ')}: ${Buffer.from(r.stderr).toString()}`);
    return Buffer.from(r.stdout).toString();
  };

  /** Every QEMU and hull process of the test's CRI-O (its shims, monitors and VMs). */
  const hullProcesses = () =>
    processesMentioning(crio.dir, (cmdline) =>
      /qemu-system|containerd-shim-hull|hull\.mjs|conmon/.test(cmdline),
    );

  {
    const handler = VM_HANDLER;
    test('runtime_type vm: CRI-O speaks shim v2 to containerd-shim-hull-v2: a two-container pod in one VM; logs, exec, a terminal, stats, stop with a grace period, removal', async () => {
      const logDirectory = join(dirs.scratch, `logs-${handler}`);
      await mkdir(logDirectory, { recursive: true });
      const sandboxConfig = {
        metadata: { name: `web-${handler}`, uid: `uid-${handler}`, namespace: 'default' },
        hostname: `web-${handler}`,
        logDirectory,
        linux: {
          securityContext: {
            // kubelet's default: each container its own PID namespace, the pod's network and IPC.
            namespaceOptions: {
              network: NamespaceMode.POD,
              pid: NamespaceMode.CONTAINER,
              ipc: NamespaceMode.POD,
            },
          },
        },
      };
      const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
        config: sandboxConfig,
        runtimeHandler: handler,
      });
      let removed: CommandResult[] = [];
      try {
        const containers: Record<string, string> = {};
        for (const name of ['app', 'side']) {
          const { containerId } = await cri.call(RuntimeService.method.createContainer, {
            podSandboxId,
            config: {
              metadata: { name },
              image: { image: IMAGE },
              command: SERVICE,
              envs: [{ key: 'NAME', value: name }],
              logPath: `${name}.log`,
            },
            sandboxConfig,
          });
          await cri.call(RuntimeService.method.startContainer, { containerId });
          containers[name] = containerId;
        }
        const { app, side } = containers as { app: string; side: string };
        const [qemu, ...more] = await qemuProcessesUsing(crio.dir);
        assert.ok(qemu, 'the pod runs in a VM');
        assert.deepEqual(more, [], 'one VM for the whole pod');

        const bootIds = [await execSync(app, ['cat', '/proc/sys/kernel/random/boot_id'])];
        bootIds.push(await execSync(side, ['cat', '/proc/sys/kernel/random/boot_id']));
        assert.match(bootIds[0]!, /^[0-9a-f-]{36}\n$/);
        assert.equal(bootIds[0], bootIds[1], 'both containers run on the same guest kernel');
        const hostBootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8');
        assert.notEqual(bootIds[0], hostBootId, "the pod's kernel is not the host's");

        // The pod's network: one localhost. Its IPC: one namespace, where a segment made by one is seen by the other.
        await execSync(app, [
          'sh',
          '-c',
          'mkdir -p /tmp/www && echo from-app > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www',
        ]);
        assert.equal(await execSync(side, ['wget', '-q', '-O-', 'http://127.0.0.1:8080/']), 'from-app\n');
        const ipc = async (id: string) =>
          (await execSync(id, ['stat', '-L', '-c', '%i', '/proc/self/ns/ipc'])).trim();
        assert.equal(await ipc(app), await ipc(side), 'the containers share the IPC namespace');
        assert.equal((await execSync(side, ['hostname'])).trim(), `web-${handler}`);

        const log = async (name: string) =>
          readFile(join(logDirectory, `${name}.log`), 'utf8').catch(() => '');
        assert.match(await log('app'), /stdout F hello-app\n/);

        // exec with a terminal, as `kubectl exec -it`: crictl's on a pseudo-terminal of script(1).
        const crictl = `${join(crio.dir, 'bin', 'crictl')} --timeout 120s --runtime-endpoint unix://${crio.socket}`;
        const tty = await runCommand('script', ['-qec', `${crictl} exec -it ${side} tty`, '/dev/null']);
        assert.equal(tty.code, 0, tty.stdout + tty.stderr);
        assert.match(tty.stdout, /\/dev\/pts\/\d+/);

        const { stats } = await cri.call(RuntimeService.method.containerStats, { containerId: app });
        assert.ok((stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, 'memory working set reaches CRI-O');
        assert.ok((stats?.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n, 'CPU usage reaches CRI-O');

        // Stop with a grace period: the container's TERM handler runs and its exit code is kept.
        const stopped = await crio.crictl(['stop', '--timeout', '30', side]);
        assert.equal(stopped.code, 0, stopped.stderr);
        const status = JSON.parse((await crio.crictl(['inspect', side])).stdout) as {
          status: { state: string; exitCode: number };
        };
        assert.deepEqual([status.status.state, status.status.exitCode], ['CONTAINER_EXITED', 0]);
        assert.match(await log('side'), /stdout F got TERM\n/);
        assert.match(await execSync(app, ['echo', 'still']), /still/, 'the other container runs on');
      } finally {
        removed = [await crio.crictl(['stopp', podSandboxId]), await crio.crictl(['rmp', podSandboxId])];
      }
      for (const r of removed) assert.equal(r.code, 0, r.stderr);
      // The shim stops its VM and exits once CRI-O has shut it down, a moment after rmp returns.
      let left = await hullProcesses();
      for (let i = 0; i < 100 && left.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        left = await hullProcesses();
      }
      const commandLines = await Promise.all(
        left.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')),
      );
      assert.deepEqual(commandLines, [], 'no VM, shim or monitor is left');
      await assertNothingLeft(crio.shimRoot);
      await assertNothingLeft(crio.ociRoot);
      const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
      for (const root of [crio.shimRoot, crio.ociRoot])
        assert.ok(!mountinfo.includes(root), `nothing under ${root} stays mounted`);
    });
  }

  /** Stops and removes a pod through crictl; the results, to be checked once the test's own checks ran. */
  const removePod = async (podSandboxId: string) => [
    await crio.crictl(['stopp', podSandboxId]),
    await crio.crictl(['rmp', podSandboxId]),
  ];

  /** Waits for every hull process of the test's CRI-O to end; their command lines if some do not. */
  async function leftProcesses(): Promise<string[]> {
    let left = await hullProcesses();
    for (let i = 0; i < 100 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await hullProcesses();
    }
    return Promise.all(left.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  }

  test("runtime_type oci: conmon drives bin/hull with no PATH; a pod's container runs in a VM that takes the pod's pinned namespaces; a second container of the pod is refused in one line", async () => {
    const logDirectory = join(dirs.scratch, 'logs-oci');
    await mkdir(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: { name: 'web-oci', uid: 'uid-oci', namespace: 'default' },
      hostname: 'web-oci',
      logDirectory,
      linux: {
        securityContext: {
          namespaceOptions: {
            network: NamespaceMode.POD,
            pid: NamespaceMode.CONTAINER,
            ipc: NamespaceMode.POD,
          },
        },
      },
    };
    const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
      config: sandboxConfig,
      runtimeHandler: OCI_HANDLER,
    });
    const container = (name: string) => ({
      podSandboxId,
      config: {
        metadata: { name },
        image: { image: IMAGE },
        command: SERVICE,
        envs: [{ key: 'NAME', value: name }],
        logPath: `${name}.log`,
        // kubelet's default: the pod's network and IPC, the container's own PID namespace.
        linux: {
          securityContext: {
            namespaceOptions: {
              network: NamespaceMode.POD,
              pid: NamespaceMode.CONTAINER,
              ipc: NamespaceMode.POD,
            },
          },
        },
      },
      sandboxConfig,
    });
    let removed: CommandResult[] = [];
    try {
      const { containerId: app } = await cri.call(RuntimeService.method.createContainer, container('app'));
      await cri.call(RuntimeService.method.startContainer, { containerId: app });
      const [qemu, ...more] = await qemuProcessesUsing(crio.ociRoot);
      assert.ok(qemu, 'the container runs in a VM');
      assert.deepEqual(more, []);
      const bootId = await execSync(app, ['cat', '/proc/sys/kernel/random/boot_id']);
      assert.notEqual(bootId, await readFile('/proc/sys/kernel/random/boot_id', 'utf8'));
      assert.equal((await execSync(app, ['hostname'])).trim(), 'web-oci');
      // The VM took over the pod's network namespace: the pod's address is the guest's.
      const { stdout: podStatus } = await crio.crictl(['inspectp', podSandboxId]);
      const podIp = (JSON.parse(podStatus) as { status: { network: { ip: string } } }).status.network.ip;
      assert.match(
        await execSync(app, ['ip', '-o', 'addr', 'show', 'eth0']),
        new RegExp(`inet ${podIp.replaceAll('.', '\\.')}/`),
      );

      const log = async (name: string) => readFile(join(logDirectory, `${name}.log`), 'utf8').catch(() => '');
      assert.match(await log('app'), /stdout F hello-app\n/);
      const crictl = `${join(crio.dir, 'bin', 'crictl')} --timeout 120s --runtime-endpoint unix://${crio.socket}`;
      const tty = await runCommand('script', ['-qec', `${crictl} exec -it ${app} tty`, '/dev/null']);
      assert.equal(tty.code, 0, tty.stdout + tty.stderr);
      assert.match(tty.stdout, /\/dev\/pts\/\d+/);

      await assert.rejects(
        cri.call(RuntimeService.method.createContainer, container('side')),
        /the pod namespaces it names are those of container [0-9a-f]{64}, whose VM has them; hull's OCI command runs one container per pod: run pods of several containers through hull's shim \(CRI-O runtime_type "vm"/,
      );
      assert.deepEqual(await qemuProcessesUsing(crio.ociRoot), [qemu], 'the refusal started no VM');

      const stopped = await crio.crictl(['stop', '--timeout', '30', app]);
      assert.equal(stopped.code, 0, stopped.stderr);
      const status = JSON.parse((await crio.crictl(['inspect', app])).stdout) as {
        status: { state: string; exitCode: number };
      };
      assert.deepEqual([status.status.state, status.status.exitCode], ['CONTAINER_EXITED', 0]);
      assert.match(await log('app'), /stdout F got TERM\n/);
    } finally {
      removed = await removePod(podSandboxId);
    }
    for (const r of removed) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await leftProcesses(), [], 'no VM or monitor is left');
    await assertNothingLeft(crio.ociRoot);
    assert.ok(
      !(await readFile('/proc/self/mountinfo', 'utf8')).includes(crio.ociRoot),
      'nothing stays mounted',
    );
  });
});
