import type { Command } from 'commander';
import { requireAllowed } from '../sandbox/state.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

export function registerResume(program: Command): void {
  program
    .command('resume')
    .description('thaw a paused container')
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'resume');
        await withMonitor(ref, (monitor) => monitor.resume(AbortSignal.timeout(60_000)));
      });
    });
}
