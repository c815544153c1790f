import { accessSync, constants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export const PARTS = [
  'all',
  'cli',
  'start',
  'network',
  'memory',
  'density',
  'rootfs',
  'serve',
  'commands',
  'saved',
  'arm64',
] as const;
export type Part = (typeof PARTS)[number];

export interface BenchOptions {
  /** Runs of each measured thing per figure. */
  runs: number;
  /** Runs of the rootfs job, which takes minutes a run on the 9p share under TCG. */
  rootfsRuns: number;
  /** Where the figures are written as JSON (an absolute path). */
  out: string;
  part: Part;
}

export const USAGE = `usage: npm run bench [-- OPTIONS]   (or: node dist/tests/perf/bench.js [OPTIONS])
Measures hull against its floors on this machine and writes the figures as JSON.
  --runs N          runs per figure, 1 to 1000 (default 7)
  --rootfs-runs N   runs of the rootfs job, 1 to 1000 (default 1)
  --out FILE        where to write the figures (default bench-results.json)
  --part PART       what to measure: ${PARTS.join('|')} (default all)
  --help            print this and exit`;

/** A usage error: one line saying what is wrong and what to do. */
export class BenchUsageError extends Error {}

const MAX_RUNS = 1000;

/**
 * The options in `args`, or 'help'. Everything is checked before anything is measured,
 * the output file's directory included: a run takes many minutes, and its figures must not be
 * lost at the end to a typo.
 */
export function parseBenchOptions(args: readonly string[]): BenchOptions | 'help' {
  const given = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--help' || arg === '-h') return 'help';
    const option = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!option)
      throw new BenchUsageError(`unexpected argument '${arg}': options start with -- (see --help)`);
    const [, name, inline] = option as unknown as [string, string, string | undefined];
    if (!['runs', 'rootfs-runs', 'out', 'part'].includes(name))
      throw new BenchUsageError(`unknown option --${name} (see --help for the options)`);
    const value = inline ?? args[i + 1];
    if (value === undefined || value === '' || (inline === undefined && value.startsWith('--')))
      throw new BenchUsageError(`--${name} needs a value, as in --${name}${exampleOf(name)}`);
    if (inline === undefined) i++;
    given.set(name, value);
  }
  const part = given.get('part') ?? 'all';
  if (!(PARTS as readonly string[]).includes(part))
    throw new BenchUsageError(
      `--part ${part} is not a part of the benchmark: use one of ${PARTS.join(', ')}`,
    );
  const out = resolve(given.get('out') ?? 'bench-results.json');
  checkWritable(out);
  return {
    runs: runsFrom(given, 'runs', 7),
    rootfsRuns: runsFrom(given, 'rootfs-runs', 1),
    out,
    part: part as Part,
  };
}

function exampleOf(name: string): string {
  return name === 'out' ? ' bench-results.json' : name === 'part' ? ' start' : ' 3';
}

function runsFrom(given: Map<string, string>, name: string, byDefault: number): number {
  const text = given.get(name);
  if (text === undefined) return byDefault;
  const runs = /^\d{1,4}$/.test(text) ? Number(text) : Number.NaN;
  if (!(runs >= 1 && runs <= MAX_RUNS))
    throw new BenchUsageError(`--${name} ${text}: give a whole number of runs from 1 to ${MAX_RUNS}`);
  return runs;
}

function checkWritable(out: string): void {
  const dir = dirname(out);
  try {
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, constants.W_OK);
  } catch {
    throw new BenchUsageError(
      `--out ${out}: ${dir} is not a directory this user can write; name a file in one`,
    );
  }
  if (statSync(out, { throwIfNoEntry: false })?.isDirectory())
    throw new BenchUsageError(`--out ${out} is a directory: name a file`);
}
