import { copyFile, mkdir, readdir, symlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from '../sys/exec.js';
import type { ModuleFile } from './modules.js';
import { stageBinary } from './stage.js';

/** The modules for the guest's tree, where they come from, and the host's kmod tools. */
export interface ModuleTree {
  /** The kernel package's lib/modules/<release>. */
  modulesDir: string;
  release: string;
  modules: readonly ModuleFile[];
  /** kmod, installed in the guest as modprobe; the host's depmod indexes the tree. */
  kmod: string;
  depmod: string;
  /** Where kmod and its libraries come from when the guest's architecture is not the host's. */
  sysroot?: string;
}

/** What depmod and modprobe read besides the modules: which ones are built in, and their order. */
const TREE_FILES = ['modules.builtin', 'modules.builtin.modinfo', 'modules.order'];

/**
 * Lays out the guest's /lib/modules/<release> with `modules`, indexes it with the host's
 * depmod, and installs kmod as the guest's /sbin/modprobe, the program the guest kernel runs
 * to load a module it is asked for. The tree is in the read-only root filesystem: modprobe
 * only reads it. Returns the guest paths modprobe reads at every load: kmod, its libraries and
 * the tree's indexes, and the module every sandbox loads.
 */
export async function stageModuleTree(
  stage: string,
  options: ModuleTree,
  signal?: AbortSignal,
): Promise<string[]> {
  const { modulesDir, release } = options;
  const tree = join(stage, 'lib', 'modules', release);
  for (const module of options.modules) {
    await mkdir(dirname(join(tree, module.path)), { recursive: true });
    await copyFile(join(modulesDir, module.path), join(tree, module.path));
  }
  for (const file of TREE_FILES) {
    await copyFile(join(modulesDir, file), join(tree, file)).catch(() => {});
  }
  await run(options.depmod, ['--basedir', stage, release], {
    signal,
    errorCode: 'ERR_IMAGE_BUILD',
    purpose: 'indexing the guest kernel modules (install kmod)',
  });
  const kmodFiles = await stageBinary(stage, options.kmod, '/usr/bin/kmod', signal, options.sysroot);
  await mkdir(join(stage, 'sbin'), { recursive: true });
  for (const tool of ['modprobe', 'lsmod']) await symlink('/usr/bin/kmod', join(stage, 'sbin', tool));
  const indexes = (await readdir(tree))
    .filter((f) => f.endsWith('.bin'))
    .map((f) => `/lib/modules/${release}/${f}`);
  // The balloon driver is loaded in every sandbox once its first container runs.
  const everySandbox = options.modules
    .filter((m) => m.path.endsWith('/virtio_balloon.ko'))
    .map((m) => `/lib/modules/${release}/${m.path}`);
  return [...kmodFiles, ...indexes, ...everySandbox];
}
