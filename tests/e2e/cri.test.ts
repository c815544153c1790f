import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NamespaceMode, RuntimeService } from '../../src/gen/runtime/v1/cri_pb.js';
import { processesMentioning } from '../../src/sys/processes.js';
import type { TraceFile } from '../../src/trace/boot-trace.js';
import { writeBridgeNetwork } from '../fixtures/cni.js';
import { Containerd } from '../fixtures/containerd.js';
import { CriClient } from '../fixtures/cri-client.js';
import { SERVER_IMAGE, serverImageArchive } from '../fixtures/debian-image.js';
import { busyboxImageArchive, IMAGE, pauseImageArchive } from '../fixtures/oci-image.js';
import { ACCESS_LOG_LINE, fetchFromHost, fetchFromInside, SERVER_PAGE } from '../fixtures/web-server.js';
import {
  assertNothingLeft,
  HULL,
  metricValue,
  privateDirs,
  qemuProcessesUsing,
  runCommand,
} from './harness.js';

/** The cgroup parent kubelet would give the pod (a cgroupfs path), private to this test. */
const POD_CGROUP_PARENT = `/hull-cri-${process.pid}/pod-1`;
const v1 = !(await readFile('/sys/fs/cgroup/cgroup.controllers').then(
  () => true,
  () => false,
));

/**
 * How long StopPodSandbox of the nginx pod may take: killing its containers and the VM takes a
 * few seconds under TCG; waiting for the copy of an output left open to give up took 16.
 */
const STOP_POD_MS = 10_000;

/** The CNI bridge of this test's pods, on the host. */
const BRIDGE = `hullcri${process.pid % 10000}`;

/** Kubernetes' path: a CRI client (as kubelet) → containerd's CRI plugin → hull's shim. */
describe('a Kubernetes pod through the CRI with RuntimeClass handler hull', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let containerd: Containerd;
  let cri: CriClient;

  before(async () => {
    dirs = await privateDirs('cri');
    const containerdDir = join(dirs.scratch, 'c');
    await writeBridgeNetwork(join(containerdDir, 'cni', 'net.d'), join(dirs.scratch, 'cni-leases'), {
      bridge: BRIDGE,
      subnet: '10.231.7.0/24',
    });
    containerd = await Containerd.start(containerdDir);
    const images = join(dirs.scratch, 'image');
    for (const archive of [await busyboxImageArchive(images), await pauseImageArchive(images)]) {
      const load = await containerd.ctr(['images', 'import', archive], 'k8s.io');
      assert.equal(load.code, 0, load.stderr);
    }
    cri = new CriClient(containerd.socket);
  });
  after(async () => {
    cri?.close();
    await containerd?.stop();
    await runCommand('ip', ['link', 'del', BRIDGE]);
    // The pod's cgroup parents are kubelet's to remove; here, the test's.
    for (const hierarchy of v1 ? ['memory', 'pids', 'cpu'] : ['']) {
      const top = join('/sys/fs/cgroup', hierarchy, POD_CGROUP_PARENT.split('/')[1]!);
      await rmdir(join(top, 'pod-1')).catch(() => {});
      await rmdir(top).catch(() => {});
    }
    await dirs.cleanup();
  });

  test('two containers share the pod VM; stats; update; removing the pod leaves nothing', async () => {
    const logDirectory = join(dirs.scratch, 'pod-logs');
    await mkdir(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: { name: 'web', uid: 'pod-uid-1', namespace: 'default' },
      hostname: 'web',
      logDirectory,
      linux: {
        cgroupParent: POD_CGROUP_PARENT,
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
      runtimeHandler: 'hull',
    });
    const containers: string[] = [];
    for (const name of ['app', 'sidecar']) {
      const { containerId } = await cri.call(RuntimeService.method.createContainer, {
        podSandboxId,
        config: {
          metadata: { name },
          image: { image: IMAGE },
          command: ['sleep', '1000'],
          logPath: `${name}.log`,
        },
        sandboxConfig,
      });
      await cri.call(RuntimeService.method.startContainer, { containerId });
      containers.push(containerId);
    }
    const [qemu, ...more] = await qemuProcessesUsing(containerd.hullRoot);
    assert.deepEqual(more, [], 'one VM for the whole pod');
    // Issue 14: the pod's cgroup parent holds the VM and the pod's shim, as kubelet expects.
    const podCgroup = `${POD_CGROUP_PARENT}/${podSandboxId}`;
    const memoryCgroup = join(v1 ? '/sys/fs/cgroup/memory' : '/sys/fs/cgroup', podCgroup);
    const procs = (await readFile(join(memoryCgroup, 'cgroup.procs'), 'utf8')).split('\n').map(Number);
    const shims = await processesMentioning(containerd.socket);
    assert.ok(procs.includes(qemu!), `QEMU is in ${podCgroup}`);
    assert.ok(
      shims.some((pid) => procs.includes(pid)),
      `the pod's shim is in ${podCgroup} too`,
    );

    const bootIds = [];
    for (const containerId of containers) {
      const r = await cri.call(RuntimeService.method.execSync, {
        containerId,
        cmd: ['cat', '/proc/sys/kernel/random/boot_id'],
        timeout: 60n,
      });
      assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
      bootIds.push(Buffer.from(r.stdout).toString().trim());
    }
    assert.match(bootIds[0]!, /^[0-9a-f-]{36}$/);
    assert.equal(bootIds[0], bootIds[1], 'both containers run on the same guest kernel');
    const hostBootId = (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
    assert.notEqual(bootIds[0], hostBootId, "the pod's kernel is not the host's");

    const { stats } = await cri.call(RuntimeService.method.containerStats, { containerId: containers[0]! });
    assert.ok((stats?.memory?.workingSetBytes?.value ?? 0n) > 0n, 'memory working set is reported');
    assert.ok((stats?.cpu?.usageCoreNanoSeconds?.value ?? 0n) > 0n, 'CPU usage is reported');

    const limit = 96n * 1024n * 1024n;
    await cri.call(RuntimeService.method.updateContainerResources, {
      containerId: containers[1]!,
      linux: { memoryLimitInBytes: limit, cpuPeriod: 100_000n, cpuQuota: 50_000n, cpuShares: 512n },
    });
    const memoryMax = await cri.call(RuntimeService.method.execSync, {
      containerId: containers[1]!,
      // The container's own cgroup, whether or not it has a cgroup namespace.
      cmd: ['sh', '-c', 'cat "/sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/memory.max"'],
      timeout: 60n,
    });
    assert.equal(
      Buffer.from(memoryMax.stdout).toString().trim(),
      String(limit),
      'the update reached the cgroup',
    );

    // Issue 13: the pod in `hull metrics`, from its shim: its containers, its cost, its agent's latency.
    const scraped = await runCommand(process.execPath, [HULL, '--root', containerd.hullRoot, 'metrics']);
    assert.equal(scraped.code, 0, scraped.stderr);
    const metric = (series: string) => metricValue(scraped.stdout, series);
    assert.equal(metric('hull_sandboxes{status="running"}'), 1, 'the pod is one sandbox');
    assert.equal(
      metric(`hull_container_memory_limit_bytes{id="${containers[1]}",sandbox="${podSandboxId}"}`),
      Number(limit),
    );
    assert.ok(metric(`hull_container_pids{id="${containers[0]}",sandbox="${podSandboxId}"}`)! >= 1);
    assert.ok(metric(`hull_sandbox_host_pss_bytes{id="${podSandboxId}",process="qemu"}`)! > 50 * 2 ** 20);
    assert.ok(metric(`hull_sandbox_host_pss_bytes{id="${podSandboxId}",process="shim"}`)! > 5 * 2 ** 20);
    assert.ok(
      metric(`hull_agent_request_duration_seconds_count{sandbox="${podSandboxId}",method="ExecProcess"}`)! >=
        3,
      'the three execs were timed',
    );
    const booted = metric('hull_boot_phase_seconds_count{phase="guest kernel",where="guest"}') ?? 0;
    const cloned = metric('hull_boot_phase_seconds_count{phase="clone wakes",where="host"}') ?? 0;
    assert.equal(booted + cloned, 1, "the pod's VM started once, booted or cloned");
    assert.ok(metric(`hull_sandbox_guest_memory_used_bytes{id="${podSandboxId}"}`)! > 20 * 2 ** 20);
    assert.ok(metric(`hull_sandbox_guest_memory_total_bytes{id="${podSandboxId}"}`)! > 400 * 2 ** 20);

    await cri.call(RuntimeService.method.stopPodSandbox, { podSandboxId });
    await cri.call(RuntimeService.method.removePodSandbox, { podSandboxId });
    assert.deepEqual(await processesMentioning(containerd.socket), [], 'no shim server is left');
    // The trace setting (HULL_TRACE_DIR, given to every shim of this containerd): the pod's trace.
    const [traced] = (await readdir(containerd.traceDir)).filter((f) => f.startsWith(`${podSandboxId}-`));
    assert.ok(traced, `the pod's trace is in ${containerd.traceDir}`);
    const phases = (JSON.parse(await readFile(join(containerd.traceDir, traced), 'utf8')) as TraceFile)
      .traceEvents;
    for (const phase of ['QEMU start', 'container run', 'teardown']) {
      assert.ok(
        phases.some((p) => p.name === phase),
        `${phase} in the pod's trace`,
      );
    }
    assert.ok(
      phases.some((p) => p.name === 'guest kernel' || p.name === 'clone wakes'),
      "the pod's VM booted or was cloned from its template",
    );
    await assert.rejects(readFile(join(memoryCgroup, 'cgroup.procs')), "the pod VM's cgroup is removed");
    await assertNothingLeft(containerd.hullRoot);
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    assert.ok(!mountinfo.includes(containerd.dir), 'nothing of the pod stays mounted');
  });

  // Issue 9: nginx logs to /dev/stdout; its lines must reach the CRI log file kubelet reads.
  test("nginx from a Debian image serves in a pod, and its log lines reach the container's CRI log", async () => {
    const load = await containerd.ctr(['images', 'import', await serverImageArchive()], 'k8s.io');
    assert.equal(load.code, 0, load.stderr);
    const logDirectory = join(dirs.scratch, 'web-logs');
    await mkdir(logDirectory, { recursive: true });
    const sandboxConfig = {
      metadata: { name: 'nginx', uid: 'pod-uid-nginx', namespace: 'default' },
      logDirectory,
      linux: {},
    };
    const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
      config: sandboxConfig,
      runtimeHandler: 'hull',
    });
    let nginxId = '';
    let stopMs = Number.POSITIVE_INFINITY;
    try {
      const { containerId } = await cri.call(RuntimeService.method.createContainer, {
        podSandboxId,
        config: { metadata: { name: 'nginx' }, image: { image: SERVER_IMAGE }, logPath: 'nginx.log' },
        sandboxConfig,
      });
      await cri.call(RuntimeService.method.startContainer, { containerId });
      const page = await fetchFromInside(async (url) => {
        const r = await cri.call(RuntimeService.method.execSync, {
          containerId,
          cmd: ['busybox', 'wget', '-q', '-O-', url],
          timeout: 60n,
        });
        return {
          code: r.exitCode,
          stdout: Buffer.from(r.stdout).toString(),
          stderr: Buffer.from(r.stderr).toString(),
        };
      });
      assert.equal(page.trim(), SERVER_PAGE);
      // The CRI log format: "<time> stdout F <line>".
      let log = '';
      for (let i = 0; i < 50 && !ACCESS_LOG_LINE.test(log); i++) {
        await new Promise((r) => setTimeout(r, 200));
        log = await readFile(join(logDirectory, 'nginx.log'), 'utf8').catch(() => '');
      }
      assert.match(log, new RegExp(`stdout F .*${ACCESS_LOG_LINE.source}`));
      nginxId = containerId;
    } finally {
      const stopping = performance.now();
      await cri.call(RuntimeService.method.stopPodSandbox, { podSandboxId });
      stopMs = performance.now() - stopping;
      await cri.call(RuntimeService.method.removePodSandbox, { podSandboxId });
    }
    // nginx shares the pod's PID namespace: its workers outlive the master StopPodSandbox kills
    // and hold its output open unless the shim kills them with it. Its exit then waited until
    // the copy of its output gave up (16 s), or for ever when a read's timeout was lost.
    const shimLog = await readFile(containerd.log, 'utf8');
    assert.ok(
      !shimLog.split('\n').some((line) => line.includes(nginxId) && line.includes('output stayed open')),
      "nginx's output ended with its container: nothing it left held it open",
    );
    assert.ok(stopMs < STOP_POD_MS, `StopPodSandbox took ${Math.round(stopMs)} ms`);
    await assertNothingLeft(containerd.hullRoot);
  });

  // Issue 9: a VM cannot share the node's namespaces; the pod used to start and misbehave.
  for (const [field, option] of [
    ['hostNetwork', 'network'],
    ['hostPID', 'pid'],
    ['hostIPC', 'ipc'],
  ] as const) {
    test(`a ${field} pod is refused at creation, naming ${field}, and leaves nothing`, async () => {
      const namespaceOptions = {
        network: NamespaceMode.POD,
        pid: NamespaceMode.CONTAINER,
        ipc: NamespaceMode.POD,
        [option]: NamespaceMode.NODE,
      };
      await assert.rejects(
        cri.call(RuntimeService.method.runPodSandbox, {
          config: {
            metadata: { name: `host-${option}`, uid: `pod-uid-${option}`, namespace: 'default' },
            linux: { securityContext: { namespaceOptions } },
          },
          runtimeHandler: 'hull',
        }),
        new RegExp(`${field}.*a VM cannot share the host kernel's namespaces`),
      );
      assert.deepEqual(await processesMentioning(containerd.socket), [], 'no shim server is left');
      await assertNothingLeft(containerd.hullRoot);
    });
  }

  // Issue 10: a pod gets the IP its CNI network gave it, reachable from the host and other pods.
  test('pods on a CNI bridge: the host and another pod reach a server in a pod by its IP', async () => {
    const pods: { podSandboxId: string; containerId: string; ip: string }[] = [];
    try {
      for (const name of ['net-a', 'net-b']) {
        const sandboxConfig = {
          metadata: { name, uid: `pod-uid-${name}`, namespace: 'default' },
          hostname: name,
          linux: {},
        };
        const { podSandboxId } = await cri.call(RuntimeService.method.runPodSandbox, {
          config: sandboxConfig,
          runtimeHandler: 'hull',
        });
        const status = await cri.call(RuntimeService.method.podSandboxStatus, { podSandboxId });
        const ip = status.status?.network?.ip ?? '';
        assert.match(ip, /^10\.231\.7\.\d+$/, 'PodSandboxStatus has the CNI address');
        const { containerId } = await cri.call(RuntimeService.method.createContainer, {
          podSandboxId,
          config: {
            metadata: { name: 'web' },
            image: { image: IMAGE },
            command: [
              'sh',
              '-c',
              'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www',
            ],
          },
          sandboxConfig,
        });
        await cri.call(RuntimeService.method.startContainer, { containerId });
        pods.push({ podSandboxId, containerId, ip });
      }
      const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
      assert.equal(await fetchFromHost(`http://${a.ip}/`), 'net-a\n');
      assert.equal(await fetchFromHost(`http://${b.ip}/`), 'net-b\n');
      const fromA = await cri.call(RuntimeService.method.execSync, {
        containerId: a.containerId,
        cmd: ['wget', '-q', '-O-', `http://${b.ip}/`],
        timeout: 60n,
      });
      assert.equal(Buffer.from(fromA.stdout).toString(), 'net-b\n', Buffer.from(fromA.stderr).toString());

      // The pod's namespace disappears under it (removed by hand): removal still leaves nothing.
      const names = (await runCommand('ip', ['netns', 'list'])).stdout
        .split('\n')
        .map((l) => l.split(' ')[0]!);
      let ofB: string | undefined;
      for (const name of names.filter((n) => n.startsWith('cni-'))) {
        const addrs = await runCommand('ip', ['netns', 'exec', name, 'ip', '-o', 'addr']);
        if (addrs.stdout.includes(`${b.ip}/`)) ofB = name;
      }
      assert.ok(ofB, "pod b's namespace is found by its address");
      assert.equal((await runCommand('ip', ['netns', 'del', ofB])).code, 0);
    } finally {
      for (const pod of pods) {
        await cri.call(RuntimeService.method.stopPodSandbox, { podSandboxId: pod.podSandboxId });
        await cri.call(RuntimeService.method.removePodSandbox, { podSandboxId: pod.podSandboxId });
      }
    }
    assert.equal(
      (await runCommand('ip', ['link', 'show', BRIDGE])).code,
      0,
      'the bridge stays, as CNI made it',
    );
    const left = (await runCommand('ip', ['-o', 'link', 'show', 'master', BRIDGE])).stdout.trim();
    assert.equal(left, '', 'no pod interface is left on the bridge');
    await assertNothingLeft(containerd.hullRoot);
  });
});
