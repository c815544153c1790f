import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/**
 * Facts about the host that `hull check` and `hull env` report and nothing else needs: the
 * cgroup layout, available memory, and whether the container clients are set up for hull.
 * Each takes its paths as arguments so tests can point it at a fixture tree.
 */
export type CgroupLayout = 'v2' | 'hybrid' | 'v1';

export function cgroupLayout(root = '/sys/fs/cgroup'): CgroupLayout {
  if (existsSync(`${root}/cgroup.controllers`)) return 'v2';
  return existsSync(`${root}/unified`) ? 'hybrid' : 'v1';
}

/** MemAvailable in MiB, from /proc/meminfo. */
export async function availableMemoryMiB(meminfo = '/proc/meminfo'): Promise<number | undefined> {
  const text = await readFile(meminfo, 'utf8').catch(() => '');
  const kib = Number(/^MemAvailable:\s+(\d+)\s+kB/m.exec(text)?.[1]);
  return kib > 0 ? Math.floor(kib / 1024) : undefined;
}

export interface ClientSetup {
  client: 'podman' | 'docker' | 'containerd';
  /** The configuration file that names hull, if one does. */
  configuredIn?: string;
  /** The files looked at. */
  looked: string[];
}

async function firstMentioning(files: string[], pattern: RegExp): Promise<string | undefined> {
  for (const file of files) {
    const text = await readFile(file, 'utf8').catch(() => '');
    if (pattern.test(text)) return file;
  }
  return undefined;
}

/** Whether podman, Docker and containerd have hull configured as a runtime. */
export async function clientSetups(env: NodeJS.ProcessEnv = process.env): Promise<ClientSetup[]> {
  const podmanFiles = [
    env.CONTAINERS_CONF,
    '/etc/containers/containers.conf',
    ...(env.HOME ? [`${env.HOME}/.config/containers/containers.conf`] : []),
  ].filter((f): f is string => Boolean(f));
  const dockerFiles = ['/etc/docker/daemon.json'];
  const containerdFiles = ['/etc/containerd/config.toml'];
  return [
    {
      client: 'podman',
      // [engine.runtimes] hull = ["/path/to/hull"]
      configuredIn: await firstMentioning(podmanFiles, /^\s*hull\s*=\s*\[/m),
      looked: podmanFiles,
    },
    {
      client: 'docker',
      configuredIn: await firstMentioning(dockerFiles, /"runtimes"[\s\S]*"hull"\s*:/),
      looked: dockerFiles,
    },
    {
      client: 'containerd',
      configuredIn: await firstMentioning(containerdFiles, /io\.containerd\.hull\.v2/),
      looked: containerdFiles,
    },
  ];
}
