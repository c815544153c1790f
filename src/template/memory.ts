import { spawn } from 'node:child_process';
import { readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { HullError } from '../errors.js';
import { installRoot } from '../paths.js';
import { moveToOwnCgroups } from '../sys/cgroup.js';
import { liveStartTime } from '../sys/process-identity.js';
import { raceSignal } from '../util/deadline.js';

/**
 * The cgroup template memory holders live in: not their starter's, whose cgroup (a pod's, a
 * podman container's scope) goes, with every process in it, when that sandbox ends.
 */
const HOLDER_CGROUP = '/hull/template-memory';

function holderPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-template-memory');
}

/** Where a template's memory lives: the holder process and its memfd's descriptor there. */
export interface HeldMemory {
  pid: number;
  /** The holder's start time (field 22 of /proc/<pid>/stat): a reused pid is not the holder. */
  startTime: string;
  fd: number;
}

/** The memfd's name, as /proc/<pid>/fd/<fd> shows it: ties a holder to its template. */
export function memoryName(key: string): string {
  return `hull-template-${key}`;
}

/** The path through which root opens a holder's memfd, if the holder is still the one recorded. */
export async function heldMemoryPath(key: string, held: HeldMemory): Promise<string | undefined> {
  if (liveStartTime(held.pid) !== held.startTime) return undefined;
  const path = `/proc/${held.pid}/fd/${held.fd}`;
  const target = await readlink(path).catch(() => '');
  return target.startsWith(`/memfd:${memoryName(key)} `) ? path : undefined;
}

/** The bytes of a template's memory that hold pages (what the host pays for it). */
export async function heldMemoryBytes(key: string, held: HeldMemory): Promise<number | undefined> {
  const path = await heldMemoryPath(key, held);
  if (!path) return undefined;
  const info = await stat(path).catch(() => undefined);
  return info && info.blocks * 512;
}

/**
 * A template's memory while the template is made: a holder process (hull-template-memory)
 * with a memfd of the VM's size, sealed once the template's VMM has written it and exited.
 * Dropped before then (a failed build), the holder exits and the memory is freed.
 */
export class TemplateMemory {
  private constructor(
    private readonly child: ReturnType<typeof spawn>,
    private readonly answers: AsyncIterator<string>,
    readonly held: HeldMemory,
  ) {}

  /** `dir`: the template's directory, shown in the holder's command line (see the C source). */
  static create(key: string, bytes: number, dir: string, signal: AbortSignal): Promise<TemplateMemory> {
    return TemplateMemory.start([memoryName(key), String(bytes), dir], signal);
  }

  private static async start(args: string[], signal: AbortSignal): Promise<TemplateMemory> {
    const child = spawn(holderPath(), args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const answers = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-1000);
    });
    const exited = new Promise<never>((_, reject) => {
      const fail = () =>
        reject(
          new HullError(
            'ERR_TEMPLATE',
            `the template's memory holder failed: ${stderr.trim() || 'no message'}`,
          ),
        );
      child.on('exit', fail);
      child.on('error', fail);
    });
    exited.catch(() => {});
    try {
      const first = await raceSignal(Promise.race([answers.next(), exited]), signal);
      const fd = Number(/^fd (\d+)$/.exec(first.value ?? '')?.[1]);
      if (!fd)
        throw new HullError(
          'ERR_TEMPLATE',
          `the template's memory holder said ${JSON.stringify(first.value)}`,
        );
      await moveToOwnCgroups(child.pid!, HOLDER_CGROUP);
      const startTime = liveStartTime(child.pid!);
      if (!startTime) throw new HullError('ERR_TEMPLATE', "the template's memory holder ended");
      return new TemplateMemory(child, answers, { pid: child.pid!, startTime, fd });
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
  }

  /**
   * A new holder, this process's child, of the sealed memory `held` keeps: it opens it through
   * /proc and keeps it as `held` did. The caller ends `held` once the record names the new one.
   */
  static async adopt(key: string, held: HeldMemory, dir: string, signal: AbortSignal): Promise<HeldMemory> {
    const path = await heldMemoryPath(key, held);
    if (!path) throw new HullError('ERR_TEMPLATE', "the template's memory is no longer held");
    const memory = await TemplateMemory.start(['--adopt', path, dir], signal);
    memory.release();
    return memory.held;
  }

  /** The memfd, as root opens it for the template's VMM to write. */
  get path(): string {
    return `/proc/${this.held.pid}/fd/${this.held.fd}`;
  }

  /**
   * Seals the memory against every write, for good, and lets the holder live on alone. Only
   * once no VMM maps it shared any more (the template's has exited).
   */
  async seal(signal: AbortSignal): Promise<void> {
    this.child.stdin!.write('seal\n');
    const answer = await raceSignal(this.answers.next(), signal);
    if (answer.value !== 'sealed') {
      throw new HullError(
        'ERR_TEMPLATE',
        `sealing the template's memory: ${answer.value ?? 'the holder ended'}`,
      );
    }
    this.release();
  }

  /** Lets a holder of sealed memory live on alone. */
  private release(): void {
    this.child.stdin!.end();
    this.child.stdout!.destroy();
    this.child.stderr!.destroy();
    this.child.unref();
  }

  /** Ends the holder and frees the memory (a build that failed). */
  discard(): void {
    this.child.kill('SIGKILL');
  }
}

/** Ends a holder left by a template that is removed or replaced. */
export async function releaseHeldMemory(key: string, held: HeldMemory): Promise<void> {
  if (await heldMemoryPath(key, held)) {
    try {
      process.kill(held.pid, 'SIGKILL');
    } catch {}
  }
}
