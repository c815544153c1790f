import type { Writable } from 'node:stream';
import { AgentError } from './errors.js';
import type { OutputPipe } from './output-pipe.js';
import { exitCodeOf, type Reaper } from './reaper.js';

/** A process in the guest that the host knows by (container id, exec id): its stdio and exit. */
export class GuestProcess {
  readonly stdout: OutputPipe;
  readonly stderr: OutputPipe;
  private exitCode: number | undefined;
  private exitPromise: Promise<number> | undefined;

  constructor(
    readonly pid: number,
    private readonly stdin: Writable | null,
    stdout: OutputPipe,
    stderr: OutputPipe,
    private readonly reaper: Reaper,
    private readonly resizeTerminal?: (rows: number, columns: number) => void,
  ) {
    this.stdout = stdout;
    this.stderr = stderr;
    // The stdin pipe breaks when the process exits without reading it; that is not an error.
    stdin?.on('error', () => {});
  }

  get exited(): boolean {
    return this.exitCode !== undefined;
  }

  /** Resolves with the exit code (128 + signal when killed by one). */
  wait(): Promise<number> {
    this.exitPromise ??= this.reaper.wait(this.pid).then((status) => {
      this.exitCode = exitCodeOf(status);
      return this.exitCode;
    });
    return this.exitPromise;
  }

  async writeStdin(data: Uint8Array): Promise<number> {
    const stdin = this.stdin;
    if (!stdin || stdin.writableEnded || stdin.destroyed) {
      throw new AgentError('wrong-state', `stdin of process ${this.pid} is closed`);
    }
    await new Promise<void>((resolve, reject) => stdin.write(data, (err) => (err ? reject(err) : resolve())));
    return data.length;
  }

  closeStdin(): void {
    this.stdin?.end();
  }

  resize(rows: number, columns: number): void {
    if (!this.resizeTerminal) throw new AgentError('wrong-state', `process ${this.pid} has no terminal`);
    this.resizeTerminal(rows, columns);
  }

  signal(signal: number): void {
    if (this.exited) throw new AgentError('wrong-state', `process ${this.pid} has already exited`);
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') {
        throw new AgentError('wrong-state', `process ${this.pid} has already exited`);
      }
      throw new AgentError('invalid', `cannot send signal ${signal}: ${(err as Error).message}`);
    }
  }
}
