import type { Command } from 'commander';
import { ociState } from '../sandbox/state.js';
import { listContainers } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { formatTable, listFormat } from './output-format.js';
import { printOut } from './print.js';

export function registerList(program: Command): void {
  program
    .command('list')
    .alias('ls')
    .description('list the containers under the runtime root')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'print only the IDs')
    .action(async (options: { format: string; quiet?: boolean }, command: Command) => {
      // With --quiet only the IDs are printed, whatever the format (as runc does).
      const format = options.quiet ? undefined : listFormat(options.format);
      const states = await listContainers(command.optsWithGlobals<GlobalOptions>());
      if (!format) {
        printOut(states.map((s) => `${s.id}\n`).join(''));
      } else if (format === 'json') {
        const shown = states.map(ociState);
        printOut(`${JSON.stringify(shown)}\n`);
      } else {
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
        printOut(formatTable(rows));
      }
    });
}
