import type { Command } from 'commander';
import { HullError, isHullError } from '../errors.js';
import { jsonWithBigints, runcStats } from '../oci/runc-stats.js';
import { sleep } from '../util/deadline.js';
import { openContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

/** runc's interval syntax: a number with a unit (`5s`, `500ms`, `1m`). */
function parseInterval(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text.trim());
  if (!match) throw new HullError('ERR_USAGE', `--interval ${text}: give a duration such as 5s or 500ms`);
  const value = Number(match[1]) * { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  if (value < 10) throw new HullError('ERR_USAGE', `--interval ${text}: give at least 10ms`);
  return value;
}

/**
 * `events`, as runc has it: the container's statistics as JSON lines
 * (`{"type":"stats","id":…,"data":…}`), once with --stats, otherwise every interval until the
 * container stops. The figures are the container's cgroup in the guest, where its limits apply.
 */
export function registerEvents(program: Command): void {
  program
    .command('events')
    .description("print the container's resource statistics as JSON, as runc events does")
    .argument('<container-id>')
    .option('--stats', 'print the statistics once, then exit')
    .option('--interval <duration>', 'how often to print them', '5s')
    .action(async (id: string, options: { stats?: boolean; interval: string }, command: Command) => {
      const interval = parseInterval(options.interval);
      const globals = command.optsWithGlobals<GlobalOptions>();
      const ref = await openContainer(globals, id);
      if (ref.state.status === 'stopped') {
        throw new HullError('ERR_STATE', `container ${ref.id} is stopped: it has no statistics`);
      }
      await withMonitor(ref, async (monitor) => {
        for (;;) {
          let files: Record<string, string>;
          try {
            files = await monitor.agent.statsContainer(ref.id, AbortSignal.timeout(30_000));
          } catch (err) {
            // The container stopped between two intervals: runc's events ends there too.
            if (!options.stats && isHullError(err)) return;
            throw err;
          }
          const event = { type: 'stats', id: ref.id, data: runcStats(files) };
          process.stdout.write(`${jsonWithBigints(event)}\n`);
          if (options.stats) return;
          await sleep(interval);
        }
      });
    });
}
