import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { openContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';
import { listFormat } from './output-format.js';

export function registerPs(program: Command): void {
  program
    .command('ps')
    .description("list the container's processes (pids inside its VM)")
    .argument('<container-id>')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (id: string, options: { format: string }, command: Command) => {
      const format = listFormat(options.format);
      const ref = await openContainer(command.optsWithGlobals<GlobalOptions>(), id);
      if (ref.state.status === 'stopped' || ref.state.status === 'creating') {
        throw new HullError('ERR_STATE', `container ${ref.id} is ${ref.state.status}: it has no processes`);
      }
      const pids = await withMonitor(ref, (monitor) => monitor.processes(AbortSignal.timeout(30_000)));
      if (format === 'json') process.stdout.write(`${JSON.stringify(pids)}\n`);
      else process.stdout.write(`PID\n${pids.map((p) => `${p}\n`).join('')}`);
    });
}
