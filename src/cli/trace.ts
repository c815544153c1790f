import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import type { TraceFile } from '../trace/boot-trace.js';
import { waterfallSvg } from '../trace/waterfall-svg.js';

/** `trace FILE --svg OUT`: draws a trace written by `hull run --trace` as a waterfall. */
export function registerTrace(program: Command): void {
  program
    .command('trace')
    .description('draw a trace written by `hull run --trace` as a waterfall picture (SVG)')
    .argument('<trace-file>')
    .requiredOption('--svg <file>', 'where to write the picture')
    .action(async (file: string, options: { svg: string }) => {
      let trace: TraceFile;
      try {
        trace = JSON.parse(await readFile(file, 'utf8')) as TraceFile;
      } catch (err) {
        throw new HullError('ERR_USAGE', `${file} is not a trace hull wrote: ${(err as Error).message}`);
      }
      if (!Array.isArray(trace?.traceEvents) || trace.traceEvents.length === 0) {
        throw new HullError(
          'ERR_USAGE',
          `${file} has no trace events: write one with \`hull run --trace FILE\``,
        );
      }
      await writeFile(options.svg, waterfallSvg(trace));
    });
}
