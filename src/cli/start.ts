import type { Command } from 'commander';
import { requireAllowed } from '../sandbox/state.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description("start a created container's process")
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'start');
        await withMonitor(ref, (monitor) => monitor.start(AbortSignal.timeout(60_000)));
      });
    });
}
