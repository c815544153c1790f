import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { containerDir, validateContainerId } from '../sandbox/container-id.js';
import type { MonitorClient } from '../sandbox/monitor-client.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import {
  type ContainerState,
  effectiveState,
  type Operation,
  readState,
  requireAllowed,
} from '../sandbox/state.js';
import { withLock } from '../sys/lock.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';

/** How long a verb waits for another command on the same container to finish. */
const LOCK_WAIT_MS = 30_000;

export interface ContainerRef {
  id: string;
  dir: string;
  settings: RuntimeSettings;
  state: ContainerState;
}

/** Finds a container by ID and reads its state as it really is. */
export async function openContainer(globals: GlobalOptions, rawId: string): Promise<ContainerRef> {
  const id = validateContainerId(rawId);
  const settings = settingsFrom(globals);
  const dir = containerDir(settings, id);
  return { id, dir, settings, state: effectiveState(await readState(dir, id)) };
}

/**
 * Runs `fn` holding the container's lock, with the state re-read under it: concurrent
 * commands on one container are serialized and each sees the state the last one left.
 */
export async function withContainer<T>(
  globals: GlobalOptions,
  rawId: string,
  fn: (ref: ContainerRef) => Promise<T>,
): Promise<T> {
  const first = await openContainer(globals, rawId);
  return withLock(first.dir, AbortSignal.timeout(LOCK_WAIT_MS), async () =>
    fn(await openContainer(globals, rawId)),
  );
}

/** Runs `fn` with a connection to the container's monitor, closed afterwards. */
export async function withMonitor<T>(
  ref: ContainerRef,
  fn: (monitor: MonitorClient) => Promise<T>,
): Promise<T> {
  // Loaded here, not with this file: `state` and `list` never talk to a monitor, and the
  // client brings the protobuf runtime and the agent's API.
  const { MonitorClient } = await import('../sandbox/monitor-client.js');
  const monitor = await MonitorClient.connect(ref.dir, ref.id, AbortSignal.timeout(10_000));
  try {
    return await fn(monitor);
  } finally {
    monitor.close();
  }
}

/** Every container under the runtime root, with its state as it really is. */
export async function listContainers(globals: GlobalOptions): Promise<ContainerState[]> {
  const root = settingsFrom(globals).root;
  // Read synchronously, as readState reads: node:fs/promises is loaded on first use
  // (scripts/bundle.mjs), and `hull list` need not pay for loading it.
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    names = [];
  }
  const states: ContainerState[] = [];
  for (const name of names) {
    try {
      const state = await readState(join(root, name), name);
      states.push(effectiveState(state));
    } catch {
      // Not a container (or one being created/deleted this instant).
    }
  }
  return states.sort((a, b) => a.created.localeCompare(b.created));
}

/**
 * A verb that only checks that the lifecycle allows `operation` and asks the monitor to do it
 * (start, pause, resume): under the container's lock, so concurrent verbs are serialized.
 */
export function registerMonitorVerb(
  program: Command,
  verb: {
    name: Operation;
    description: string;
    act: (monitor: MonitorClient, signal: AbortSignal) => Promise<unknown>;
  },
): void {
  program
    .command(verb.name)
    .description(verb.description)
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, verb.name, ref.state.vmLost);
        await withMonitor(ref, (monitor) => verb.act(monitor, AbortSignal.timeout(60_000)));
      });
    });
}
