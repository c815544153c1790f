import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import type { Spec } from '../oci/spec.js';
import { isPinnedNamespace } from '../sys/namespaces.js';
import type { Bundle } from './bundle.js';
import { containerDir, type RuntimeSettings } from './runtime.js';
import { effectiveState, readState } from './state.js';

/** The file in a container's directory naming the pod whose pinned namespaces it took. */
const POD_FILE = 'pod';

/** The namespace types whose pinned paths name a pod, in the order a pod's key is taken from. */
const POD_KEY_TYPES = ['network', 'ipc', 'uts'] as const;

/**
 * The pod a container's config places it in, as a key: the inode of the first pinned
 * namespace it names (CRI-O pins each pod's network, IPC and UTS namespaces and names them in
 * all of the pod's containers). Undefined for a container that names none.
 */
export async function podKeyOf(spec: Spec): Promise<string | undefined> {
  const namespaces = spec.linux?.namespaces ?? [];
  for (const type of POD_KEY_TYPES) {
    const path = namespaces.find((ns) => ns.type === type)?.path;
    if (path && (await isPinnedNamespace(path, type))) return `${type}:${(await stat(path)).ino}`;
  }
  return undefined;
}

/**
 * Records that the container in `dir` runs the VM of pod `key`, after checking that no other
 * live container of the same runtime root does: the VM of a pod's first container takes over
 * the pod's network namespace, so a second VM cannot. The OCI command runs one container per
 * pod VM; pods of several containers run in one VM through hull's shim.
 */
export async function claimPodOf(settings: RuntimeSettings, id: string, bundle: Bundle): Promise<void> {
  const key = await podKeyOf(bundle.spec);
  if (!key) return;
  const configPath = join(bundle.dir, 'config.json');
  const own = containerDir(settings, id);
  for (const name of await readdir(settings.root).catch(() => [] as string[])) {
    const dir = join(settings.root, name);
    if (dir === own) continue;
    const other = await readFile(join(dir, POD_FILE), 'utf8').catch(() => undefined);
    if (other !== key) continue;
    const state = await readState(dir, name).catch(() => undefined);
    if (!state || effectiveState(state).status === 'stopped') continue;
    const owner = state.id;
    throw new HullError(
      'ERR_UNSUPPORTED',
      `${configPath}: the pod namespaces it names are those of container ${owner}, whose VM has them; hull's OCI command runs one container per pod: run pods of several containers through hull's shim (CRI-O runtime_type "vm", containerd runtime io.containerd.hull.v2)`,
    );
  }
  await writeFile(join(own, POD_FILE), key, { mode: 0o600 });
}
