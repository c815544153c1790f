import type { Command } from 'commander';
import { ociState } from '../sandbox/state.js';
import { openContainer } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { printOut } from './print.js';

export function registerState(program: Command): void {
  program
    .command('state')
    .description('print the state of a container as JSON')
    .argument('<container-id>')
    .action(async (id: string, _options: unknown, command: Command) => {
      const { state } = await openContainer(command.optsWithGlobals<GlobalOptions>(), id);
      const shown = ociState(state);
      printOut(`${JSON.stringify(shown, null, 2)}\n`);
    });
}
