/**
 * The parts of the OCI runtime-spec (config.json) that hull reads or rewrites. Unknown fields
 * are kept as they are: hull passes a bundle's configuration on, it does not own its schema.
 */
export interface Mount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
  [key: string]: unknown;
}

export interface Process {
  terminal?: boolean;
  consoleSize?: { height: number; width: number };
  user: { uid: number; gid: number; additionalGids?: number[]; umask?: number; [key: string]: unknown };
  args?: string[];
  env?: string[];
  cwd: string;
  rlimits?: { type: string; hard: number; soft: number }[];
  capabilities?: Partial<
    Record<'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient', string[]>
  >;
  apparmorProfile?: string;
  selinuxLabel?: string;
  [key: string]: unknown;
}

export interface Hook {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface Namespace {
  type: string;
  path?: string;
}

export interface Spec {
  ociVersion: string;
  process?: Process;
  root?: { path: string; readonly?: boolean };
  hostname?: string;
  domainname?: string;
  mounts?: Mount[];
  hooks?: Partial<
    Record<
      'prestart' | 'createRuntime' | 'createContainer' | 'startContainer' | 'poststart' | 'poststop',
      Hook[]
    >
  >;
  annotations?: Record<string, string>;
  linux?: {
    namespaces?: Namespace[];
    cgroupsPath?: string;
    resources?: Record<string, unknown>;
    mountLabel?: string;
    rootfsPropagation?: string;
    intelRdt?: unknown;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

/**
 * A mount the container may not write: its last `ro`/`rw` option (or the recursive `rro`/`rrw`
 * crun takes) says so, as mount(8) reads a list that names both.
 */
export function isReadOnlyMount(mount: Mount): boolean {
  const last = (mount.options ?? []).filter((o) => ['ro', 'rw', 'rro', 'rrw'].includes(o)).at(-1);
  return last === 'ro' || last === 'rro';
}

/** A bind mount, however the bundle spells it (type bind/rbind, or options bind/rbind). */
export function isBindMount(mount: Mount): boolean {
  const options = mount.options ?? [];
  return (
    mount.type === 'bind' || mount.type === 'rbind' || options.includes('bind') || options.includes('rbind')
  );
}
