import { spawn } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withContainer, withMonitor } from '../cli/container-ref.js';
import { createContainer } from '../cli/create.js';
import { type GlobalOptions, settingsFrom } from '../cli/global-options.js';
import { HullError, isHullError, messageOf } from '../errors.js';
import { containerDir } from '../sandbox/container-id.js';
import { MonitorClient } from '../sandbox/monitor-client.js';
import { effectiveState, readState } from '../sandbox/state.js';
import type { ForkFrom } from '../snapshot/fork-source.js';
import { run } from '../sys/exec.js';

/**
 * A sandbox's container made, started and deleted by hull's own OCI verbs, as podman or conmon
 * would run them: the container's monitor is a process of its own that owns the VM, so the
 * sandbox outlives the server, and every container is made and cleaned up by the one path the
 * other front doors use.
 */
export interface ContainerVerbs {
  /** `fork`: the container starts as a fork of a snapshot, running at once (create --fork-from). */
  create(
    id: string,
    bundle: string,
    size: { cpus?: number; memoryMiB?: number },
    signal: AbortSignal,
    fork?: ForkFrom,
  ): Promise<void>;
  delete(id: string, signal: AbortSignal): Promise<void>;
  running(id: string): Promise<boolean>;
  /** Pause to disk: the container's VM saved into `dir`, its QEMU and monitor ended. */
  save(id: string, dir: string, signal: AbortSignal): Promise<void>;
  /** A snapshot: the container's VM saved into `dir` with a copy of its disk, running on. */
  snapshot(id: string, dir: string, signal: AbortSignal): Promise<void>;
  /** The container paused to `dir` running again (`hull _resume`). */
  resume(id: string, bundle: string, dir: string, signal: AbortSignal): Promise<void>;
}

/**
 * How the server runs hull's verbs. `create` is `hull run --detach`'s own code run in the
 * server's process (create.ts's createContainer, then the monitor's start): the monitor is
 * the same detached process the CLI would start, with the server's --root, --config and
 * logging, but no CLI process is started before it or for the start. Nothing runs between a
 * sandbox's create and its start, so its process is started with its create, in one step in
 * the guest. The other verbs run this same program (the bundled CLI).
 */
export function hullVerbs(globals: GlobalOptions): ContainerVerbs {
  const settings = settingsFrom(globals);
  const hull = (args: string[]) => [
    process.argv[1]!,
    '--root',
    settings.root,
    ...(settings.debug ? ['--debug'] : []),
    ...args,
  ];
  return {
    async create(id, bundle, size, signal, fork) {
      signal.throwIfAborted();
      // The monitor keeps its stdout and stderr for the container's life (as a detached runc
      // container keeps runc's): a file, never a pipe the server would wait on.
      const outputPath = join(bundle, '..', 'create.log');
      const output = await open(outputPath, 'w', 0o600);
      const env = {
        ...(size.cpus ? { HULL_VCPUS: String(size.cpus) } : {}),
        ...(size.memoryMiB ? { HULL_MEMORY_MIB: String(size.memoryMiB) } : {}),
      };
      try {
        // Bounded by the monitor's own deadline for making its VM and container.
        await createContainer(
          id,
          { bundle, forkFrom: fork?.dir, cardMacs: fork?.cardMacs.join(',') },
          globals,
          // A fork runs already (its process is the parent's, going on): nothing to start.
          { startAtCreate: !fork, outputFd: output.fd, env },
        );
      } catch (err) {
        throw vmDidNotStart(err);
      } finally {
        await output.close();
      }
      if (fork) return;
      try {
        await withContainer(globals, id, (ref) => withMonitor(ref, (monitor) => monitor.start(signal)));
      } catch (err) {
        await this.delete(id, AbortSignal.timeout(60_000)).catch(() => {});
        throw vmDidNotStart(err);
      }
    },
    async delete(id, signal) {
      try {
        await run(process.execPath, hull(['delete', '--force', id]), {
          signal,
          purpose: `deleting sandbox ${id}`,
        });
      } catch (err) {
        if (await this.running(id).catch(() => false)) throw err;
        // Already gone (or never made): what is left to remove is the server's own.
        if (!isHullError(err)) throw err;
      }
    },
    async save(id, dir, signal) {
      const monitor = await MonitorClient.connect(containerDir(settings, id), id, signal);
      try {
        await monitor.saveVm(dir, signal);
      } finally {
        monitor.close();
      }
    },
    async snapshot(id, dir, signal) {
      const monitor = await MonitorClient.connect(containerDir(settings, id), id, signal);
      try {
        await monitor.saveVm(dir, signal, { keepRunning: true });
      } finally {
        monitor.close();
      }
    },
    async resume(id, bundle, dir, signal) {
      // The new monitor takes `_resume`'s stdout and stderr, as the first took `create`'s.
      const outputPath = join(bundle, '..', 'create.log');
      const output = await open(outputPath, 'a', 0o600);
      try {
        const child = spawn(process.execPath, hull(['_resume', '--bundle', bundle, '--saved', dir, id]), {
          stdio: ['ignore', output.fd, output.fd],
          signal,
        });
        const code = await new Promise<number | null>((resolve) => {
          child.on('exit', (exitCode) => resolve(exitCode));
          child.on('error', () => resolve(null));
        });
        if (code !== 0) {
          const last = (await readFile(outputPath, 'utf8').catch(() => '')).trim().split('\n').pop();
          throw new HullError(
            'ERR_SAVED_STATE',
            `sandbox ${id} was not resumed: ${last?.replace(/^hull: /, '') || `exit ${code}`}`,
          );
        }
      } finally {
        await output.close();
      }
    },
    async running(id) {
      const state = await readState(containerDir(settings, id), id).catch(() => undefined);
      return state !== undefined && effectiveState(state).status === 'running';
    },
  };
}

/**
 * A create that failed, said as the API says it (ERR_VM_START, a server-side failure), with
 * the monitor's own code kept in the message: what the caller sent was valid.
 */
function vmDidNotStart(err: unknown): HullError {
  const code = isHullError(err) ? `${err.code}: ` : '';
  return new HullError(
    'ERR_VM_START',
    `the sandbox's VM did not start: ${code}${messageOf(err).replace(/^hull: /, '')}`,
    {
      cause: err,
    },
  );
}
