import { defaultSpec } from '../oci/default-spec.js';
import type { Process, Spec } from '../oci/spec.js';
import type { SandboxRecord } from './sandbox-records.js';

/** The capabilities Docker gives a container by default: what code written for containers expects. */
const CONTAINER_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * A sandbox's idle init: it only keeps the container alive (commands are execs beside it),
 * as a pod's pause container does. Written with the image's own `sleep`.
 */
const IDLE_INIT = ['sleep', '2147483647'];

/** `KEY=VALUE` lines, later ones overriding earlier keys. */
export function mergeEnv(...layers: (string[] | Record<string, string> | undefined)[]): string[] {
  const merged = new Map<string, string>();
  for (const layer of layers) {
    if (!layer) continue;
    const lines = Array.isArray(layer) ? layer : Object.entries(layer).map(([k, v]) => `${k}=${v}`);
    for (const line of lines) {
      const eq = line.indexOf('=');
      if (eq > 0) merged.set(line.slice(0, eq), line);
    }
  }
  return [...merged.values()];
}

/** The process every command of a sandbox starts from: the image's env and user, the sandbox's env. */
export function sandboxProcess(record: SandboxRecord, args: string[]): Process {
  const caps = CONTAINER_CAPABILITIES;
  return {
    terminal: false,
    user: record.process.user,
    args,
    env: mergeEnv(record.process.env, record.env),
    cwd: record.process.cwd,
    capabilities: { bounding: caps, effective: caps, permitted: caps },
    rlimits: [{ type: 'RLIMIT_NOFILE', hard: 65536, soft: 65536 }],
    noNewPrivileges: false,
  };
}

/**
 * The OCI configuration of a sandbox's container: runc's default mounts and namespaces, a
 * writable root on the disks the annotations name, the idle init. Its network namespace is a new one the runtime makes, so the
 * VM has loopback only (network 'none').
 */
export function sandboxSpec(record: SandboxRecord, annotations: Record<string, string> = {}): Spec {
  const spec = defaultSpec(IDLE_INIT, { terminal: false });
  // Its root disks (see container-images/sandbox-rootfs.ts).
  spec.annotations = { ...spec.annotations, ...annotations };
  spec.process = sandboxProcess(record, IDLE_INIT);
  spec.root = { path: 'rootfs', readonly: false };
  spec.hostname = record.sandboxId;
  return spec;
}
