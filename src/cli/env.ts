import type { Command } from 'commander';
import { describeEnvironment, formatEnvironment } from '../diagnostics/environment.js';
import { HullError } from '../errors.js';

export function registerEnv(program: Command): void {
  program
    .command('env')
    .description('print the effective configuration and versions, for bug reports')
    .option('--output <format>', 'text or json', 'text')
    .action(async (options: { output: string }) => {
      if (options.output !== 'text' && options.output !== 'json') {
        throw new HullError('ERR_USAGE', `unknown output format ${options.output}: use text or json`);
      }
      const env = await describeEnvironment();
      process.stdout.write(
        options.output === 'json' ? `${JSON.stringify(env, null, 2)}\n` : formatEnvironment(env),
      );
    });
}
