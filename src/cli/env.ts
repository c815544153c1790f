import type { Command } from 'commander';
import { describeEnvironment, formatEnvironment } from '../diagnostics/environment.js';
import { outputFormat } from './output-format.js';

export function registerEnv(program: Command): void {
  program
    .command('env')
    .description('print the effective configuration and versions, for bug reports')
    .option('--output <format>', 'text or json', 'text')
    .action(async (options: { output: string }) => {
      const format = outputFormat(options.output);
      const env = await describeEnvironment();
      process.stdout.write(format === 'json' ? `${JSON.stringify(env, null, 2)}\n` : formatEnvironment(env));
    });
}
