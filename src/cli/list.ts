import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { ociState } from '../sandbox/state.js';
import { listContainers } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { formatTable } from './output-format.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list the containers under the runtime root')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'print only the IDs')
    .action(async (options: { format: string; quiet?: boolean }, command: Command) => {
      const states = await listContainers(command.optsWithGlobals<GlobalOptions>());
      if (options.quiet) {
        process.stdout.write(states.map((s) => `${s.id}\n`).join(''));
      } else if (options.format === 'json') {
        const shown = states.map(ociState);
        process.stdout.write(`${JSON.stringify(shown)}\n`);
      } else if (options.format === 'table') {
        const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
        for (const s of states)
          rows.push([
            s.id,
            String(s.status === 'stopped' ? 0 : s.pid),
            s.status,
            s.bundle,
            s.created,
            s.owner || 'root',
          ]);
        process.stdout.write(formatTable(rows));
      } else {
        throw new HullError('ERR_USAGE', `unknown format ${options.format}: use table or json`);
      }
    });
}
