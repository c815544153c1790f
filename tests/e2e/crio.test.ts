import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NamespaceMode, RuntimeService } from '../../src/gen/runtime/v1/cri_pb.js';
import { processesMentioning } from '../../src/sys/processes.js';
import { CriClient } from '../fixtures/cri-client.js';
import { Crio, crioMissing, OCI_HANDLER, VM_HANDLER } from '../fixtures/crio.js';
import { IMAGE } from '../fixtures/oci-image.js';
import { assertNothingLeft, privateDirs, qemuProcessesUsing, runCommand } from './harness.js';

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

  /** kubelet's default: the pod's network and IPC, each container its own PID namespace. */
  const namespaceOptions = {
    network: NamespaceMode.POD,
    pid: NamespaceMode.CONTAINER,
    ipc: NamespaceMode.POD,
  };

  /** Runs a pod with `handler`, its logs in a directory of its own. */
  async function runPod(handler: string) {
    const logDirectory = join(dirs.scratch, `logs-${handler}`);
    await mkdir(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: { name: `web-${handler}`, uid: `uid-${handler}`, namespace: 'default' },
      hostname: `web-${handler}`,
      logDirectory,
      linux: { securityContext: { namespaceOptions } },
    };
    const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
      config: sandboxConfig,
      runtimeHandler: handler,
    });
    return {
      podSandboxId,
      log: (name: string) => readFile(join(logDirectory, `${name}.log`), 'utf8').catch(() => ''),
      /** CreateContainer for a SERVICE container called `name`. */
      container: (name: string) => ({
        podSandboxId,
        config: {
          metadata: { name },
          image: { image: IMAGE },
          command: SERVICE,
          envs: [{ key: 'NAME', value: name }],
          logPath: `${name}.log`,
          linux: { securityContext: { namespaceOptions } },
        },
        sandboxConfig,
      }),
    };
  }

  /**
   * `crictl exec -it` on a pseudo-terminal of script(1), as `kubectl exec -it`; the tty it saw.
   * The command prints, then waits a second before it exits: CRI-O 1.26 closes the stream
   * once the runtime's exec has exited, without waiting for its own copy of the terminal's
   * last output (internal/oci/oci_unix.go, ttyCmd), so output printed as the exec ends can be
   * lost there whatever the runtime, runc's too.
   */
  async function execWithTerminal(containerId: string): Promise<string> {
    const crictl = `${join(crio.dir, 'bin', 'crictl')} --timeout 120s --runtime-endpoint unix://${crio.socket}`;
    const tty = await runCommand('script', [
      '-qec',
      `${crictl} exec -it ${containerId} sh -c 'tty; sleep 1'`,
      '/dev/null',
    ]);
    assert.equal(tty.code, 0, tty.stdout + tty.stderr);
    return tty.stdout;
  }

  /** Stops a container with a grace period: its TERM handler runs, and its exit code is kept. */
  async function stopGracefully(containerId: string): Promise<void> {
    const stopped = await crio.crictl(['stop', '--timeout', '30', containerId]);
    assert.equal(stopped.code, 0, stopped.stderr);
    const status = JSON.parse((await crio.crictl(['inspect', containerId])).stdout) as {
      status: { state: string; exitCode: number };
    };
    assert.deepEqual([status.status.state, status.status.exitCode], ['CONTAINER_EXITED', 0]);
  }

  /** Stops and removes a pod, then checks that nothing of hull is left: no process, state or mount. */
  async function removePodLeavingNothing(podSandboxId: string): Promise<void> {
    for (const args of [
      ['stopp', podSandboxId],
      ['rmp', podSandboxId],
    ]) {
      const r = await crio.crictl(args);
      assert.equal(r.code, 0, r.stderr);
    }
    // A shim stops its VM and exits once CRI-O has shut it down, a moment after rmp returns.
    let left = await hullProcesses();
    for (let i = 0; i < 100 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await hullProcesses();
    }
    const commandLines = await Promise.all(
      left.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')),
    );
    assert.deepEqual(commandLines, [], 'no VM, shim or monitor is left');
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    for (const root of [crio.shimRoot, crio.ociRoot]) {
      await assertNothingLeft(root);
      assert.ok(!mountinfo.includes(root), `nothing under ${root} stays mounted`);
    }
  }

  /** Creates and starts the pod's two SERVICE containers, app and side. */
  async function startTwo(pod: Awaited<ReturnType<typeof runPod>>): Promise<[string, string]> {
    const containers: string[] = [];
    for (const name of ['app', 'side']) {
      const { containerId } = await cri.call(RuntimeService.method.createContainer, pod.container(name));
      await cri.call(RuntimeService.method.startContainer, { containerId });
      containers.push(containerId);
    }
    return containers as [string, string];
  }

  /**
   * What a user checks of a pod of two containers in one VM: one VM under `root`, one guest
   * kernel, one localhost, one IPC and UTS namespace (the pod's hostname), the logs, an exec
   * with a terminal.
   */
  async function checkOneVm(
    pod: Awaited<ReturnType<typeof runPod>>,
    [app, side]: [string, string],
    handler: string,
    root: string,
  ): Promise<void> {
    const [qemu, ...more] = await qemuProcessesUsing(root);
    assert.ok(qemu, 'the pod runs in a VM');
    assert.deepEqual(more, [], 'one VM for the whole pod');

    const bootIds = [await execSync(app, ['cat', '/proc/sys/kernel/random/boot_id'])];
    bootIds.push(await execSync(side, ['cat', '/proc/sys/kernel/random/boot_id']));
    assert.match(bootIds[0]!, /^[0-9a-f-]{36}\n$/);
    assert.equal(bootIds[0], bootIds[1], 'both containers run on the same guest kernel');
    const hostBootId = await readFile('/proc/sys/kernel/random/boot_id', 'utf8');
    assert.notEqual(bootIds[0], hostBootId, "the pod's kernel is not the host's");

    // The pod's network: one localhost. Its IPC and UTS: one namespace each.
    await execSync(app, [
      'sh',
      '-c',
      'mkdir -p /tmp/www && echo from-app > /tmp/www/index.html && httpd -p 127.0.0.1:8080 -h /tmp/www',
    ]);
    assert.equal(await execSync(side, ['wget', '-q', '-O-', 'http://127.0.0.1:8080/']), 'from-app\n');
    const ns = async (id: string) =>
      execSync(id, ['stat', '-L', '-c', '%i', '/proc/self/ns/ipc', '/proc/self/ns/uts']);
    assert.equal(await ns(app), await ns(side), 'the containers share the IPC and UTS namespaces');
    assert.equal((await execSync(side, ['hostname'])).trim(), `web-${handler}`);

    assert.match(await pod.log('app'), /stdout F hello-app\n/);
    assert.match(await pod.log('side'), /stdout F hello-side\n/);
    assert.match(await execWithTerminal(side), /\/dev\/pts\/\d+/);
  }

  test('runtime_type vm: CRI-O speaks shim v2 to containerd-shim-hull-v2: a two-container pod in one VM; logs, exec, a terminal, stats, stop with a grace period, removal', async () => {
    const pod = await runPod(VM_HANDLER);
    let passed = false;
    try {
      const [app, side] = await startTwo(pod);
      await checkOneVm(pod, [app, side], VM_HANDLER, crio.dir);

      const { stats } = await cri.call(RuntimeService.method.containerStats, { containerId: app });
      assert.ok((stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, 'memory working set reaches CRI-O');
      assert.ok((stats?.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n, 'CPU usage reaches CRI-O');

      await stopGracefully(side);
      assert.match(await pod.log('side'), /stdout F got TERM\n/);
      assert.match(await execSync(app, ['echo', 'still']), /still/, 'the other container runs on');
      passed = true;
    } finally {
      // After a failure, the pod is removed still, but the failure is what the test reports.
      await removePodLeavingNothing(pod.podSandboxId).catch((err: unknown) => {
        if (passed) throw err;
      });
    }
  });

  test("runtime_type oci: conmon drives bin/hull with no PATH: a two-container pod in one VM that takes the pod's network; logs, exec, a terminal, the first container stopped and removed while the other runs, removal", async () => {
    const pod = await runPod(OCI_HANDLER);
    let passed = false;
    try {
      const [app, side] = await startTwo(pod);
      await checkOneVm(pod, [app, side], OCI_HANDLER, crio.ociRoot);
      const [qemu] = await qemuProcessesUsing(crio.ociRoot);
      // The VM took over the pod's network namespace: the pod's address is the guest's.
      const { stdout: podStatus } = await crio.crictl(['inspectp', pod.podSandboxId]);
      const podIp = (JSON.parse(podStatus) as { status: { network: { ip: string } } }).status.network.ip;
      assert.match(
        await execSync(side, ['ip', '-o', 'addr', 'show', 'eth0']),
        new RegExp(`inet ${podIp.replaceAll('.', '\\.')}/`),
      );

      // The pod's first container ends and goes; the VM stays for the other.
      await stopGracefully(app);
      assert.match(await pod.log('app'), /stdout F got TERM\n/);
      const removed = await crio.crictl(['rm', app]);
      assert.equal(removed.code, 0, removed.stderr);
      assert.match(await execSync(side, ['echo', 'still']), /still/, 'the other container runs on');
      assert.deepEqual(await qemuProcessesUsing(crio.ociRoot), [qemu], 'in the same VM');

      await stopGracefully(side);
      assert.match(await pod.log('side'), /stdout F got TERM\n/);
      passed = true;
    } finally {
      // After a failure, the pod is removed still, but the failure is what the test reports.
      await removePodLeavingNothing(pod.podSandboxId).catch((err: unknown) => {
        if (passed) throw err;
      });
    }
  });
});
