import type { ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import { Socket } from 'node:net';
import { childProcess } from './builtins.js';
import { CRUN } from './crun.js';
import { AgentError } from './errors.js';
import { guestLogger } from './log.js';
import { syscalls } from './syscalls.js';

/** The guest image's spawner (guest/image/hull-spawn.c), run once as a server. */
export const HULL_SPAWN = '/usr/bin/hull-spawn';

/** hull-spawn's bounds on a request (MAX_REQUEST_BYTES, MAX_STRINGS). */
export const MAX_REQUEST_BYTES = 1 << 20;
const MAX_STRINGS = 65536;
/** A report is an id, a space and at most 512 bytes: a longer line is not one. */
const MAX_REPORT_LINE = 1024;
/** How long a request may wait for its report: a process start takes milliseconds. */
const SPAWN_DEADLINE_MS = 30_000;

const log = guestLogger('spawn-server');

/**
 * The spawner could not be asked (not started, gone, its socket full): nothing was started, so
 * the caller may start the process another way.
 */
export class SpawnerUnavailable extends Error {}

/**
 * A request as hull-spawn's server reads it: a 4-byte length, then NUL-ended strings (the id,
 * the environment's size, the environment, the command line). Undefined past its bounds, or
 * when a string holds a NUL (it would split).
 */
export function encodeSpawnRequest(
  id: string,
  env: readonly string[],
  args: readonly string[],
): Buffer | undefined {
  const strings = [id, String(env.length), ...env, ...args];
  if (strings.length > MAX_STRINGS || strings.some((s) => s.includes('\0'))) return undefined;
  const body = Buffer.from(strings.map((s) => `${s}\0`).join(''), 'utf8');
  if (body.length > MAX_REQUEST_BYTES) return undefined;
  const header = Buffer.alloc(4);
  header.writeUInt32LE(body.length);
  return Buffer.concat([header, body]);
}

/** What a report line says for a request: the pid hull-spawn started, or why it started none. */
export function parseSpawnReport(text: string): number {
  const pid = /^[1-9][0-9]{0,9}$/.test(text) ? Number(text) : Number.NaN;
  if (Number.isSafeInteger(pid) && pid <= 2 ** 31 - 1) return pid;
  throw new AgentError('runtime-failed', `exec: ${text.trim() || 'hull-spawn gave no reason'}`);
}

interface Pending {
  resolve(pid: number): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface Running {
  child: ChildProcess;
  socket: number;
  reader: Socket;
}

/**
 * hull-spawn's server, started at the first request and again after it ended: each request
 * forks the small server rather than this agent (a fork of the agent's large address space,
 * and an exec of a program, cost tens of milliseconds under software emulation).
 */
export class SpawnServer {
  private running: Running | undefined;
  private readonly pending = new Map<string, Pending>();
  private requests = 0;

  /**
   * Starts `args` (hull-spawn's command line, see direct-exec.ts) with `env` on `stdio`;
   * resolves with its pid once it has exec'd. SpawnerUnavailable when nothing was sent.
   */
  spawn(args: readonly string[], env: readonly string[], stdio: [number, number, number]): Promise<number> {
    const id = `r${++this.requests}`;
    const request = encodeSpawnRequest(id, env, args);
    if (!request) return Promise.reject(new SpawnerUnavailable('the request is past hull-spawn bounds'));
    let running: Running;
    try {
      running = this.running ?? this.start();
      syscalls().sendWithFds(running.socket, request, stdio);
    } catch (err) {
      return Promise.reject(new SpawnerUnavailable(`hull-spawn: ${(err as Error).message}`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new AgentError('runtime-failed', `exec: hull-spawn did not answer in ${SPAWN_DEADLINE_MS} ms`),
        );
      }, SPAWN_DEADLINE_MS);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  /** Starts the server unless it runs (it is otherwise started by the first request). */
  ensureRunning(): void {
    try {
      this.running ??= this.start();
    } catch (err) {
      log.warn('cannot start hull-spawn', { error: (err as Error).message });
    }
  }

  private start(): Running {
    const [ours, theirs] = syscalls().socketPair();
    let child: ChildProcess;
    try {
      // crun runs from the server's sealed copy, which spares each crun command its own.
      child = childProcess().spawn(HULL_SPAWN, ['--serve', '--sealed', CRUN], {
        stdio: ['ignore', 'ignore', 'inherit', theirs],
      });
    } finally {
      closeSync(theirs);
    }
    // A stream handle to libuv, read as a socket; requests go out through the addon.
    const reader = new Socket({ fd: ours, readable: true, writable: false });
    const running: Running = { child, socket: ours, reader };
    let partial = '';
    reader.setEncoding('utf8');
    reader.on('data', (text: string) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      if (partial.length > MAX_REPORT_LINE) partial = '';
      for (const line of lines) this.report(line);
    });
    const ended = (why: string) => {
      if (this.running !== running) return;
      this.running = undefined;
      reader.destroy();
      if (child.exitCode === null) child.kill('SIGKILL');
      log.warn('hull-spawn server ended', { why });
      for (const [id, pending] of this.pending) {
        clearTimeout(pending.timer);
        this.pending.delete(id);
        pending.reject(
          new AgentError('runtime-failed', `exec: hull-spawn ended (${why}) before it answered`),
        );
      }
    };
    reader.on('close', () => ended('its socket closed'));
    reader.on('error', (err) => ended(err.message));
    child.on('exit', (code, signal) => ended(`exit ${code ?? signal}`));
    child.on('error', (err) => ended(err.message));
    this.running = running;
    return running;
  }

  private report(line: string): void {
    const space = line.indexOf(' ');
    const pending = space > 0 ? this.pending.get(line.slice(0, space)) : undefined;
    if (!pending) return;
    this.pending.delete(line.slice(0, space));
    clearTimeout(pending.timer);
    try {
      pending.resolve(parseSpawnReport(line.slice(space + 1)));
    } catch (err) {
      pending.reject(err as Error);
    }
  }
}
