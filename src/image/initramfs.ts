import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../sys/exec.js';
import type { ModuleFile } from './modules.js';
import { mkdirs, stageBusybox, stageFile } from './stage.js';

export interface InitramfsInputs {
  stage: string;
  output: string;
  busybox: string;
  initScript: string;
  modulesDir: string;
  modules: readonly ModuleFile[];
  /** The host's busybox, which lists the applets when `busybox` is another architecture's. */
  appletsListedBy?: string;
  signal?: AbortSignal;
}

/**
 * The initramfs holds only what it takes to reach the root disk: busybox, the init script and
 * the driver modules. It stays uncompressed and small (a few MiB): the guest would spend more
 * time decompressing than the host saves in reading it.
 */
export async function buildInitramfs(inputs: InitramfsInputs): Promise<void> {
  const { stage, signal } = inputs;
  await mkdirs(stage, ['bin', 'dev', 'proc', 'sys', 'root', 'lib/modules']);
  await stageBusybox(stage, inputs.busybox, 'bin', signal, inputs.appletsListedBy);
  await stageFile(stage, inputs.initScript, 'init', 0o755);
  for (const m of inputs.modules)
    await stageFile(stage, join(inputs.modulesDir, m.path), `lib/modules/${m.path}`);
  await writeFile(join(stage, 'lib/modules/load-order'), inputs.modules.map((m) => `${m.path}\n`).join(''));
  // cpio reads the file list on stdin; -R 0:0 makes every file root's whoever builds.
  const list = await run('find', ['.', '-mindepth', '1'], { cwd: stage, signal });
  await run('sh', ['-c', `cpio --quiet -o -H newc -R 0:0 > "$0"`, inputs.output], {
    cwd: stage,
    input: list,
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: 'packing the initramfs',
  });
}
