import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sandboxBase } from '../../src/sandbox/runtime.js';
import { Sandbox, type SandboxOptions, vmConfigFor } from '../../src/sandbox/sandbox.js';
import { forkSource, resumeSavedVm, saveRunningVm, snapshotTemplate } from '../../src/snapshot/saved-vm.js';
import { HostMounter } from '../../src/sys/mount.js';
import { listTemplates, removeTemplate } from '../../src/template/store.js';

/**
 * Issue 28's figures for saved VMs, below the API server (src/snapshot/): pause to disk and
 * resume per GiB saved, a fork of 1 and of 10 against a templated create, and the host PSS of
 * each of 10 idle forks against a created sandbox's. One guest size (256 MiB, 1 vCPU), VMs
 * made in this process; the caller's HULL_STATE_DIR holds the templates (made here, removed).
 */
export interface SavedVmFigures {
  savedMiB: number;
  pauseMs: number;
  resumeMs: number;
  pauseSecondsPerGiB: number;
  resumeSecondsPerGiB: number;
  createMs: number;
  snapshotMs: number;
  snapshotTemplateMs: number;
  forkOfOneMs: number;
  forkOfTenMs: number;
  createdPssMiB: number;
  forkPssMiB: number;
  ratios: {
    forkOfOneOverCreate: number;
    forkOfTenEachOverCreate: number;
    forkPssOverCreated: number;
    resumeOverCreate: number;
  };
}

async function pssMiB(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Pss:\s+(\d+) kB/m.exec(text)?.[1] ?? 0) / 1024;
}

const round = (n: number, digits = 3) => Number(n.toFixed(digits));

export async function measureSavedVms(scratch: string): Promise<SavedVmFigures> {
  process.env.HULL_TEMPLATE = 'on';
  const signal = () => AbortSignal.timeout(300_000);
  const root = join(scratch, 'saved-vm');
  await mkdir(root, { recursive: true });
  const base = await sandboxBase({ debug: false }, signal());
  const imageHash = base.options.image.manifest.hash;
  const optionsFor = (id: string): SandboxOptions => ({
    ...base.options,
    id,
    dir: join(root, id),
    mounter: new HostMounter(),
    vcpus: 1,
    memoryMiB: 256,
    cloneSource: base.cloneSource,
  });
  const live: Sandbox[] = [];
  try {
    // The template of this shape is made by the first create, not timed.
    live.push(await Sandbox.create(optionsFor('warm'), signal()));
    let started = Date.now();
    const created = await Sandbox.create(optionsFor('created'), signal());
    const createMs = Date.now() - started;
    live.push(created);
    await new Promise((r) => setTimeout(r, 3000));
    const createdPssMiB = await pssMiB(created.vm.pid);

    const parentOptions = optionsFor('parent');
    const parent = await Sandbox.create(parentOptions, signal());
    live.push(parent);
    const config = vmConfigFor(parentOptions, { shareDir: join(parentOptions.dir, 'shared') });
    const target = {
      vm: parent.vm,
      agent: parent.agent,
      config,
      hypervisor: base.options.hypervisor,
      imageHash,
      cloned: true,
    };
    const describe = { accel: base.options.accel, cpuModel: base.options.cpuModel, imageHash };

    // A fork: snapshot (the parent runs on), its template, then the clones.
    const fork = async (name: string, count: number) => {
      const began = Date.now();
      const dir = join(root, `${name}-snapshot`);
      const saved = await saveRunningVm(target, dir, { resume: true }, signal());
      const savedAt = Date.now();
      const template = await snapshotTemplate(
        dir,
        config,
        { hypervisor: base.options.hypervisor, describe, timeoutMs: 120_000 },
        signal(),
      );
      const templateAt = Date.now();
      for (let i = 0; i < count; i++) {
        live.push(
          await Sandbox.create(
            { ...optionsFor(`${name}-${i}`), cloneSource: () => forkSource(template, config) },
            signal(),
          ),
        );
      }
      return { ms: Date.now() - began, snapshotMs: savedAt - began, templateMs: templateAt - savedAt, saved };
    };
    const one = await fork('one', 1);
    const ten = await fork('ten', 10);
    await new Promise((r) => setTimeout(r, 3000));
    const forkPids = live.slice(-10).map((s) => s.vm.pid);
    const pss = (await Promise.all(forkPids.map(pssMiB))).sort((a, b) => a - b);
    const forkPssMiB = pss[Math.floor(pss.length / 2)]!;
    for (const sandbox of live.splice(3)) await sandbox.destroy();

    // Pause to disk and resume.
    const pausedDir = join(root, 'paused');
    started = Date.now();
    const saved = await saveRunningVm(target, pausedDir, { resume: false }, signal());
    await parent.vm.stop();
    const pauseMs = Date.now() - started;
    const resumedDir = join(root, 'resumed');
    await mkdir(join(resumedDir, 'shared'), { recursive: true, mode: 0o700 });
    started = Date.now();
    const resumed = await resumeSavedVm(
      { ...config, id: 'resumed', runDir: resumedDir, shareDir: join(resumedDir, 'shared') },
      pausedDir,
      { hypervisor: base.options.hypervisor, imageHash, sandboxId: 'parent' },
      signal(),
    );
    const resumeMs = Date.now() - started;
    resumed.agent.close();
    await resumed.vm.stop();

    const savedGiB = saved.bytes / 2 ** 30;
    return {
      savedMiB: round(saved.bytes / 2 ** 20, 1),
      pauseMs,
      resumeMs,
      pauseSecondsPerGiB: round(pauseMs / 1000 / savedGiB),
      resumeSecondsPerGiB: round(resumeMs / 1000 / savedGiB),
      createMs,
      snapshotMs: ten.snapshotMs,
      snapshotTemplateMs: ten.templateMs,
      forkOfOneMs: one.ms,
      forkOfTenMs: ten.ms,
      createdPssMiB: round(createdPssMiB, 1),
      forkPssMiB: round(forkPssMiB, 1),
      ratios: {
        forkOfOneOverCreate: round(one.ms / createMs),
        forkOfTenEachOverCreate: round(ten.ms / 10 / createMs),
        forkPssOverCreated: round(forkPssMiB / createdPssMiB),
        resumeOverCreate: round(resumeMs / createMs),
      },
    };
  } finally {
    for (const sandbox of live) await sandbox.destroy().catch(() => {});
    for (const template of await listTemplates()) {
      if (template.key.startsWith('snap-')) await removeTemplate(template.key);
    }
    await rm(root, { recursive: true, force: true });
  }
}

export function printSavedVms(f: SavedVmFigures): void {
  console.log(
    `saved VMs (256 MiB guest, ${f.savedMiB} MiB saved): pause ${f.pauseMs} ms (${f.pauseSecondsPerGiB} s/GiB), resume ${f.resumeMs} ms (${f.resumeSecondsPerGiB} s/GiB, state checked by its hash first)`,
  );
  console.log(
    `saved VMs: templated create ${f.createMs} ms; fork of 1 ${f.forkOfOneMs} ms, of 10 ${f.forkOfTenMs} ms (snapshot ${f.snapshotMs} ms, its template ${f.snapshotTemplateMs} ms)`,
  );
  console.log(
    `saved VMs: fork of 1 / create = ${f.ratios.forkOfOneOverCreate}; fork of 10, each / create = ${f.ratios.forkOfTenEachOverCreate} (goal <= 1); resume / create = ${f.ratios.resumeOverCreate}`,
  );
  console.log(
    `saved VMs: idle QEMU PSS, a fork (median of 10) ${f.forkPssMiB} MiB / a created sandbox ${f.createdPssMiB} MiB = ${f.ratios.forkPssOverCreated} (goal <= 0.5)`,
  );
}
