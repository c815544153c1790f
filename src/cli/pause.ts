import type { Command } from 'commander';
import { requireAllowed } from '../sandbox/state.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

export function registerPause(program: Command): void {
  program
    .command('pause')
    .description('freeze every process of the container')
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'pause');
        await withMonitor(ref, (monitor) => monitor.pause(AbortSignal.timeout(60_000)));
      });
    });
}
