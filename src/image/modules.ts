import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { HullError } from '../errors.js';

/**
 * Kernel module resolution without depmod: every .ko names its dependencies in its .modinfo
 * section as a NUL-terminated "depends=a,b" string, which is all the ordering needs.
 */
export interface ModuleFile {
  name: string;
  /** Path relative to the modules directory, e.g. kernel/fs/9p/9p.ko. */
  path: string;
  depends: string[];
}

const moduleName = (file: string) => file.replace(/\.ko$/, '').replace(/-/g, '_');

/** Some modules need another one at run time without declaring it (crypto lookups by name). */
const SOFT_DEPENDENCIES: Record<string, string[]> = { libcrc32c: ['crc32c_generic'] };

export function parseDepends(ko: Buffer): string[] {
  const marker = Buffer.from('\0depends=');
  const at = ko.indexOf(marker);
  if (at < 0) return [];
  const start = at + marker.length;
  const end = ko.indexOf(0, start);
  const value = ko.subarray(start, end < 0 ? undefined : end).toString('latin1');
  return value ? value.split(',').map(moduleName) : [];
}

async function indexModules(modulesDir: string): Promise<Map<string, string>> {
  const index = new Map<string, string>();
  const entries = await readdir(join(modulesDir, 'kernel'), { recursive: true });
  for (const entry of entries) {
    if (!entry.endsWith('.ko')) continue;
    const name = moduleName(entry.split('/').pop()!);
    index.set(name, relative(modulesDir, join(modulesDir, 'kernel', entry)));
  }
  return index;
}

/**
 * The wanted modules and all they depend on, dependencies first. A wanted module the kernel
 * does not have as a module is taken to be built in and skipped.
 */
export async function resolveLoadOrder(modulesDir: string, wanted: readonly string[]): Promise<ModuleFile[]> {
  const index = await indexModules(modulesDir);
  const order: ModuleFile[] = [];
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = async (name: string, requiredBy?: string): Promise<void> => {
    if (done.has(name)) return;
    const path = index.get(name);
    if (!path) {
      if (requiredBy)
        throw new HullError('ERR_IMAGE_BUILD', `module ${requiredBy} needs ${name}, which the kernel lacks`);
      return;
    }
    if (visiting.has(name))
      throw new HullError('ERR_IMAGE_BUILD', `kernel modules depend on each other in a cycle at ${name}`);
    visiting.add(name);
    const depends = parseDepends(await readFile(join(modulesDir, path)));
    for (const dep of [...(SOFT_DEPENDENCIES[name] ?? []), ...depends]) await visit(dep, name);
    visiting.delete(name);
    done.add(name);
    order.push({ name, path, depends });
  };
  for (const name of wanted) await visit(name);
  return order;
}

export function parseModuleList(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/#.*/, '').trim())
    .filter(Boolean);
}

/**
 * The module names a list names: a module file ("drivers/net/veth.ko") or every module under
 * a directory ("net/netfilter/"), relative to the kernel's module tree. An entry the kernel
 * lacks is skipped: it is built in, or this kernel does not have it.
 */
export async function modulesNamedBy(modulesDir: string, entries: readonly string[]): Promise<string[]> {
  const index = await indexModules(modulesDir);
  const names: string[] = [];
  for (const entry of entries) {
    const prefix = join('kernel', entry);
    for (const [name, path] of index) {
      if (entry.endsWith('/') ? path.startsWith(prefix) : path === prefix) names.push(name);
    }
  }
  return names;
}
