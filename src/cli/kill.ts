import type { Command } from 'commander';
import { requireAllowed } from '../sandbox/state.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { parseSignal } from './signals.js';

export function registerKill(program: Command): void {
  program
    .command('kill')
    .description("send a signal to the container's process (TERM by default)")
    .argument('<container-id>')
    .argument('[signal]', 'a name (TERM, SIGKILL) or a number')
    .option('-a, --all', 'send the signal to every process of the container')
    .action(async (id: string, signal: string | undefined, options: { all?: boolean }, command: Command) => {
      const signalNumber = parseSignal(signal);
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'kill', ref.state.vmLost);
        await withMonitor(ref, (monitor) =>
          monitor.kill(signalNumber, Boolean(options.all), AbortSignal.timeout(30_000)),
        );
      });
    });
}
