import type { Command } from 'commander';
import { runChecks } from '../diagnostics/checks.js';
import { outputFormat } from './output-format.js';

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('check that this host can run hull: one line per requirement (boots a guest)')
    .option('--output <format>', 'text or json', 'text')
    .action(async (options: { output: string }) => {
      const format = outputFormat(options.output);
      const { results, notices } = await runChecks();
      const failed = results.some((r) => r.status === 'fail');
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify({ ok: !failed, checks: results, notices }, null, 2)}\n`);
      } else {
        for (const r of results) process.stdout.write(`${r.status.padEnd(4)}  ${r.name}: ${r.detail}\n`);
      }
      process.exitCode = failed ? 1 : 0;
    });
}
