import assert from 'node:assert/strict';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isHullError } from '../../src/errors.js';
import type { VmConfig } from '../../src/hypervisor/hypervisor.js';
import { sandboxBase } from '../../src/sandbox/runtime.js';
import { Sandbox, type SandboxOptions, vmConfigFor } from '../../src/sandbox/sandbox.js';
import { forkSource, resumeSavedVm, saveRunningVm, snapshotTemplate } from '../../src/snapshot/saved-vm.js';
import { stateFilePath } from '../../src/snapshot/state-file.js';
import { HostMounter } from '../../src/sys/mount.js';
import { listTemplates, removeTemplate } from '../../src/template/store.js';
import { flipByte } from '../fixtures/flip-byte.js';
import { privateDirs, privateImageState, processExit, qemuProcessesUsing } from './harness.js';

/**
 * Issue 28: running VMs saved and started again, below the API server: a sandbox's VM (cloned
 * from its template, nothing of the host's mounted) snapshotted while it runs and forked from
 * that, paused to disk and resumed, and a damaged saved state refused before QEMU reads it.
 */
describe('saved VMs: pause to disk, resume, snapshot and fork', { timeout: 600_000 }, () => {
  let dirs: Awaited<ReturnType<typeof privateDirs>>;
  let base: Awaited<ReturnType<typeof sandboxBase>>;
  let imageHash: string;
  let parent: Sandbox;
  let parentConfig: VmConfig;
  const signal = () => AbortSignal.timeout(180_000);

  const optionsFor = (id: string): SandboxOptions => ({
    ...base.options,
    id,
    dir: join(dirs.root, id),
    mounter: new HostMounter(),
    vcpus: 1,
    memoryMiB: 256,
    cloneSource: base.cloneSource,
  });

  before(async () => {
    dirs = await privateDirs('saved-vm');
    await mkdir(dirs.root, { recursive: true });
    const { state } = await privateImageState(join(dirs.scratch, 'state'), {}, { sharedSnapshots: true });
    process.env.HULL_STATE_DIR = state;
    process.env.HULL_TEMPLATE = 'on';
    base = await sandboxBase({ debug: false }, signal());
    imageHash = base.options.image.manifest.hash;
    const options = optionsFor('parent');
    parent = await Sandbox.create(options, signal());
    parentConfig = vmConfigFor(options, { shareDir: join(options.dir, 'shared') });
  });

  after(async () => {
    await parent?.destroy();
    for (const template of await listTemplates()) {
      await removeTemplate(template.key);
      await processExit(template.memory.pid, 10_000).catch(() => {});
    }
    await dirs.cleanup();
  });

  const savable = (sandbox: Sandbox, config: VmConfig) => ({
    vm: sandbox.vm,
    agent: sandbox.agent,
    config,
    hypervisor: base.options.hypervisor,
    imageHash,
    cloned: true,
  });

  test('a snapshot lets the VM run on, and forks of it continue from it, each its own sandbox', async () => {
    // The parent's guest runs a while, so its clock is well past its template's.
    await new Promise((r) => setTimeout(r, 4000));
    const before = (await parent.agent.waitReady(signal())).uptimeSeconds;
    const snapDir = join(dirs.scratch, 'snapshot');
    const record = await saveRunningVm(savable(parent, parentConfig), snapDir, { resume: true }, signal());
    assert.ok(record.bytes > 1 << 20, `the state holds the RAM: ${record.bytes} bytes`);
    const info = await stat(stateFilePath(snapDir));
    assert.equal(info.mode & 0o777, 0o600);
    assert.equal(info.uid, 0);
    // The parent runs on.
    assert.ok((await parent.agent.waitReady(signal())).uptimeSeconds >= before);

    const started = Date.now();
    const template = await snapshotTemplate(
      snapDir,
      parentConfig,
      {
        hypervisor: base.options.hypervisor,
        describe: { accel: base.options.accel, cpuModel: base.options.cpuModel, imageHash },
        timeoutMs: 120_000,
      },
      signal(),
    );
    const templateMs = Date.now() - started;
    const forks: Sandbox[] = [];
    try {
      const forkStarted = Date.now();
      for (const id of ['fork-1', 'fork-2']) {
        forks.push(
          await Sandbox.create(
            { ...optionsFor(id), cloneSource: () => forkSource(template, parentConfig) },
            signal(),
          ),
        );
      }
      const forkMs = (Date.now() - forkStarted) / forks.length;
      console.log(
        `snapshot ${record.saveMs} ms (${record.bytes >> 20} MiB), its template ${templateMs} ms, a fork ${forkMs} ms`,
      );
      for (const fork of forks) {
        // Its guest is the parent's at the snapshot, not its template's booted one.
        const uptime = (await fork.agent.waitReady(signal())).uptimeSeconds;
        assert.ok(uptime >= before, `a fork's guest continues the parent's: ${uptime} s, parent ${before} s`);
      }
      assert.notEqual(forks[0]!.vm.pid, forks[1]!.vm.pid);
    } finally {
      for (const fork of forks) await fork.destroy();
    }
    assert.deepEqual(await qemuProcessesUsing(join(dirs.root, 'fork-1')), []);
  });

  test('pause to disk ends the VMM; resume brings the same guest back; a damaged state is refused', async () => {
    const pausedDir = join(dirs.scratch, 'paused');
    const before = (await parent.agent.waitReady(signal())).uptimeSeconds;
    const pauseStarted = Date.now();
    const record = await saveRunningVm(savable(parent, parentConfig), pausedDir, { resume: false }, signal());
    await parent.vm.stop();
    const pauseMs = Date.now() - pauseStarted;
    assert.deepEqual(await qemuProcessesUsing(join(dirs.root, 'parent')), [], 'a paused VM has no VMM');

    const resumedDir = join(dirs.root, 'resumed');
    await mkdir(join(resumedDir, 'shared'), { recursive: true, mode: 0o700 });
    const config = {
      ...parentConfig,
      id: 'resumed',
      runDir: resumedDir,
      shareDir: join(resumedDir, 'shared'),
    };
    const resumeOptions = { hypervisor: base.options.hypervisor, imageHash, sandboxId: 'parent' };

    // Damaged: one byte changed in the middle of the RAM. Refused, no QEMU, the state kept.
    const middle = Math.floor(record.bytes / 2);
    await flipByte(stateFilePath(pausedDir), middle);
    await assert.rejects(resumeSavedVm(config, pausedDir, resumeOptions, signal()), (err: unknown) => {
      assert.ok(isHullError(err, 'ERR_SAVED_STATE'), String(err));
      assert.match(err.message, /SHA-256 is not the one recorded at save; the sandbox stays paused$/);
      assert.doesNotMatch(err.message, /\n/);
      return true;
    });
    assert.deepEqual(await qemuProcessesUsing(resumedDir), []);
    await flipByte(stateFilePath(pausedDir), middle);

    // Foreign: saved by another QEMU.
    const recordPath = join(pausedDir, 'vm-state.json');
    const recordText = await readFile(recordPath, 'utf8');
    await writeFile(recordPath, recordText.replace(/"vmm": "[^"]*"/, '"vmm": "/usr/bin/other-qemu 1 2"'));
    await assert.rejects(resumeSavedVm(config, pausedDir, resumeOptions, signal()), /saved by another QEMU/);
    await writeFile(recordPath, recordText, { mode: 0o600 });

    const resumeStarted = Date.now();
    const resumed = await resumeSavedVm(config, pausedDir, resumeOptions, signal());
    const resumeMs = Date.now() - resumeStarted;
    try {
      console.log(`pause ${pauseMs} ms, resume ${resumeMs} ms (${record.bytes >> 20} MiB saved)`);
      const after = (await resumed.agent.waitReady(signal())).uptimeSeconds;
      // The guest's clock of uptime went on from where it was saved: the same guest, not a boot.
      assert.ok(after >= before, `uptime ${after} s after the resume, ${before} s before the pause`);
    } finally {
      resumed.agent.close();
      await resumed.vm.stop();
    }
    assert.deepEqual(await qemuProcessesUsing(resumedDir), []);
  });
});
