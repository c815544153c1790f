import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { setting } from '../config/settings.js';
import { HullError } from '../errors.js';
import { debugConsoleSocket } from '../sandbox/sandbox.js';
import { connectUnix } from '../sys/unix-socket.js';
import { openContainer } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

/** How long the guest's output may pause before a session whose input ended is closed. */
const OUTPUT_LINGER_MS = 2000;

/**
 * `debug-console`: a root shell in the container's VM itself — not in the container — for
 * looking at the agent, the mounts and the kernel log. The guest's hull-init keeps the shell
 * on a virtio-serial port of its own, which exists only when the configuration turned the
 * console on before the VM started; this relays the terminal to it until either side ends.
 */
export function registerDebugConsole(program: Command): void {
  program
    .command('debug-console')
    .description("open a root shell in the container's VM (vm.debug_console must be on)")
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      if (setting('debugConsole') !== 'on') {
        throw new HullError(
          'ERR_UNSUPPORTED',
          'the debug console is off: set vm.debug_console = true in the configuration (or HULL_DEBUG_CONSOLE=on) before the container starts',
        );
      }
      const ref = await openContainer(command.optsWithGlobals<GlobalOptions>(), id);
      if (ref.state.status === 'stopped') throw new HullError('ERR_STATE', `container ${ref.id} is stopped`);
      const socket = debugConsoleSocket(join(ref.dir, 'vm'));
      if (
        !(await access(socket).then(
          () => true,
          () => false,
        ))
      ) {
        throw new HullError(
          'ERR_UNSUPPORTED',
          `container ${ref.id} was started without the debug console: turn vm.debug_console on, then start it again`,
        );
      }
      const connection = await connectUnix(socket, AbortSignal.timeout(10_000));
      await new Promise<void>((resolve) => {
        connection.pipe(process.stdout);
        process.stdin.pipe(connection, { end: false });
        // The port stays connected when the shell exits (hull-init starts another), so the
        // end of the user's input ends the session once the guest has said what it had to.
        let linger: NodeJS.Timeout | undefined;
        const lingerThenClose = () => {
          clearTimeout(linger);
          linger = setTimeout(() => connection.destroy(), OUTPUT_LINGER_MS);
        };
        process.stdin.on('end', lingerThenClose);
        connection.on('data', () => {
          if (linger) lingerThenClose();
        });
        connection.on('close', () => {
          clearTimeout(linger);
          resolve();
        });
        connection.on('error', () => connection.destroy());
      });
      process.stdin.unpipe(connection);
      process.stdin.destroy();
    });
}
