import { type ChildProcess, spawn } from 'node:child_process';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { HullError } from '../../errors.js';
import { logger } from '../../log.js';
import { run, which } from '../../sys/exec.js';
import { deadlineSignal, raceSignal } from '../../util/deadline.js';
import { parseCpuHelp } from '../cpu-model.js';
import type { Hypervisor, Vm, VmConfig, VmExit } from '../hypervisor.js';
import { type QemuPaths, qemuCommandLine } from './command-line.js';
import { QmpClient } from './qmp.js';

export const QEMU_BINARY = 'qemu-system-x86_64';

/** Unix socket paths are limited to 107 bytes. */
const MAX_SOCKET_PATH = 107;

export function qemuPaths(runDir: string): QemuPaths {
  const paths = {
    agentSocket: join(runDir, 'agent.sock'),
    qmpSocket: join(runDir, 'qmp.sock'),
    consoleLog: join(runDir, 'console.log'),
  };
  if (Buffer.byteLength(paths.agentSocket) > MAX_SOCKET_PATH) {
    throw new HullError(
      'ERR_USAGE',
      `the state directory ${runDir} is too long for unix sockets: use a shorter --root`,
    );
  }
  return paths;
}

function listen(path: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(path, () => resolve(server));
  });
}

function accept(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', resolve));
}

/**
 * Stops listening and removes the socket file now. (server.close()'s callback would wait for
 * the accepted connections to end, that is, for the VM to exit.)
 */
function stopListening(server: Server): void {
  server.close();
}

/** Collects the tail of a stream, for error messages. */
function tail(stream: NodeJS.ReadableStream | null, limit = 4096): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString()).slice(-limit);
  });
  return () => text.trim().split('\n').pop() ?? '';
}

/** The QEMU driver: one qemu-system process per VM, driven over QMP. */
export class QemuHypervisor implements Hypervisor {
  constructor(private readonly binary = QEMU_BINARY) {}

  private async resolveBinary(): Promise<string> {
    const binary = this.binary.includes('/') ? this.binary : await which(this.binary);
    if (!binary) {
      throw new HullError(
        'ERR_QEMU_MISSING',
        `${this.binary} is not installed: run \`apt-get install qemu-system-x86\``,
      );
    }
    return binary;
  }

  async identity(): Promise<string> {
    const path = await realpath(await this.resolveBinary());
    const info = await stat(path);
    return `${path} ${info.size} ${Math.round(info.mtimeMs)}`;
  }

  async version(signal?: AbortSignal): Promise<string> {
    const out = await run(await this.resolveBinary(), ['--version'], {
      signal,
      errorCode: 'ERR_QEMU_MISSING',
    });
    return out.split('\n')[0]?.trim() ?? '';
  }

  async cpuModels(signal?: AbortSignal): Promise<string[]> {
    const out = await run(await this.resolveBinary(), ['-cpu', 'help'], {
      signal,
      errorCode: 'ERR_QEMU_MISSING',
    });
    return parseCpuHelp(out);
  }

  async start(config: VmConfig, signal: AbortSignal): Promise<Vm> {
    const log = logger('qemu');
    const binary = await this.resolveBinary();
    const paths = qemuPaths(config.runDir);
    const args = qemuCommandLine(config, paths);
    const listeners = await Promise.all([listen(paths.agentSocket), listen(paths.qmpSocket)]);
    const closeListeners = () => listeners.forEach(stopListening);
    log.debug({ binary, args }, 'starting QEMU');
    const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const stderrTail = tail(child.stderr);
    const exited = new Promise<VmExit>((resolve) => {
      child.on('exit', (code, sig) => resolve({ code, signal: sig }));
      child.on('error', () => resolve({ code: null, signal: null }));
    });
    const startError = (exit: VmExit) =>
      new HullError(
        'ERR_VM_START',
        `QEMU exited at start (${exit.code ?? exit.signal}): ${stderrTail() || 'no message'}`,
      );
    const died = exited.then((exit) => {
      throw startError(exit);
    });
    died.catch(() => {});
    try {
      const [agentSocket, qmpSocket] = await raceSignal(
        Promise.race([Promise.all([accept(listeners[0]), accept(listeners[1])]), died]),
        signal,
      );
      closeListeners();
      const qmp = new QmpClient(qmpSocket);
      await raceSignal(Promise.race([qmp.handshake(signal), died]), signal);
      return new QemuVm(child, agentSocket, qmp, exited, paths.consoleLog);
    } catch (err) {
      // When QEMU quit by itself, its own message says more than a closed socket does.
      const quitByItself = child.exitCode !== null || child.signalCode !== null;
      child.kill('SIGKILL');
      const exit = await exited;
      closeListeners();
      throw quitByItself ? startError(exit) : err;
    }
  }
}

class QemuVm implements Vm {
  private stopping: Promise<void> | undefined;
  private hasExited = false;

  constructor(
    private readonly child: ChildProcess,
    readonly agentChannel: Socket,
    private readonly qmp: QmpClient,
    readonly exited: Promise<VmExit>,
    readonly consoleLog: string,
  ) {
    void exited.then(() => {
      this.hasExited = true;
      qmp.close();
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  stop(options: { graceMs?: number } = {}): Promise<void> {
    this.stopping ??= this.doStop(options.graceMs ?? 2000);
    return this.stopping;
  }

  private async doStop(graceMs: number): Promise<void> {
    this.agentChannel.destroy();
    if (!this.hasExited) {
      const { signal, dispose } = deadlineSignal(
        graceMs,
        () => new HullError('ERR_VM_EXITED', 'QEMU did not quit'),
      );
      try {
        await this.qmp.execute('quit', undefined, signal).catch(() => {});
        await raceSignal(this.exited, signal);
      } catch {
        this.child.kill('SIGKILL');
      } finally {
        dispose();
      }
    }
    await this.exited;
    this.qmp.close();
  }
}
