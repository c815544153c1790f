import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HullError } from '../errors.js';
import { writeFileAtomic } from '../sys/atomic-file.js';
import { isAlive, type ProcessIdentity } from '../sys/process-identity.js';

/** The lifecycle of a container as the OCI runtime-spec defines it. */
export type Status = 'creating' | 'created' | 'running' | 'paused' | 'stopped';

export type Operation = 'start' | 'kill' | 'delete' | 'pause' | 'resume' | 'exec' | 'update';

/** Which operation each status allows; anything else is an illegal transition. */
const ALLOWED: Record<Operation, readonly Status[]> = {
  start: ['created'],
  kill: ['created', 'running', 'paused'],
  delete: ['stopped'],
  pause: ['running'],
  resume: ['paused'],
  exec: ['running'],
  update: ['created', 'running', 'paused'],
};

export function allows(status: Status, operation: Operation): boolean {
  return ALLOWED[operation].includes(status);
}

/**
 * Throws ERR_STATE, saying what would be needed, unless `status` allows `operation`; with
 * `vmLost` (why the container's VM ended under it), that too.
 */
export function requireAllowed(id: string, status: Status, operation: Operation, vmLost?: string): void {
  if (allows(status, operation)) return;
  const needed = ALLOWED[operation].join(' or ');
  const why = vmLost ? ` (its VM ended under it: ${vmLost})` : '';
  throw new HullError(
    'ERR_STATE',
    `cannot ${operation} container ${id}: it is ${status}${why}, and ${operation} needs it ${needed}`,
  );
}

/** What `<root>/<id>/state.json` holds; `hull state` prints the OCI part of it. */
export interface ContainerState {
  ociVersion: string;
  id: string;
  /** The monitor's pid: the host process that lives as long as the container's process. */
  pid: number;
  /**
   * The monitor's start time (see process-identity.ts): with the pid, what tells the monitor
   * from a process that reused its pid. Absent in the state of an older hull.
   */
  pidStartTime?: string;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations: Record<string, string>;
  exitStatus?: number;
  /** Why the VM ended under the container, when it did (QEMU killed, a guest kernel panic). */
  vmLost?: string;
}

export const STATE_FILE = 'state.json';

/** Written to a temporary file and renamed: readers see the old state or the new one, whole. */
export async function writeState(dir: string, state: ContainerState): Promise<void> {
  await writeFileAtomic(join(dir, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Read synchronously: a state file is a few hundred bytes, and `hull state`, which podman runs
 * for every container, then starts without loading node:fs/promises (scripts/bundle.mjs loads
 * it on first use), 1.3 ms of a 30 ms command.
 */
export async function readState(dir: string, id: string): Promise<ContainerState> {
  try {
    return JSON.parse(readFileSync(join(dir, STATE_FILE), 'utf8')) as ContainerState;
  } catch {
    throw new HullError('ERR_NOT_FOUND', `container ${id} does not exist: see \`hull list\``);
  }
}

/** The recorded monitor of a container, to check or signal (see process-identity.ts). */
export function monitorOf(state: ContainerState): ProcessIdentity {
  return { pid: state.pid, startTime: state.pidStartTime };
}

/**
 * The state as it really is: a container whose monitor is gone (the VM died, the monitor
 * was killed, or the command that was creating it died) is stopped, whatever the file last
 * said. A pid now held by another process is not the monitor.
 */
export function effectiveState(state: ContainerState): ContainerState {
  if (state.status === 'stopped' || isAlive(monitorOf(state))) return state;
  return { ...state, status: 'stopped' };
}

/** The state as `hull state` and `hull list` show it: runtime-spec fields, pid 0 once stopped. */
export function ociState(state: ContainerState) {
  const { ociVersion, id, pid, status, bundle, rootfs, created, owner, annotations, vmLost } = state;
  return {
    ociVersion,
    id,
    pid: status === 'stopped' ? 0 : pid,
    status,
    bundle,
    rootfs,
    created,
    owner,
    annotations,
    // Beside runc's fields (clients ignore what they do not know): why the VM ended, if it did.
    ...(vmLost ? { vmLost } : {}),
  };
}
