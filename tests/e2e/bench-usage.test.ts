import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCommand } from './harness.js';

/**
 * The benchmark's command line: --help prints the options, and a mistake is refused in one
 * line that says what is wrong and what to do, with status 2, before anything is measured or
 * made (no scratch directory, no results file). Nothing here boots a VM.
 */

const BENCH = resolve(fileURLToPath(import.meta.url), '../../perf/bench.js');
const scratch = await mkdtemp(join(tmpdir(), 'hull-bench-usage-'));
after(() => rm(scratch, { recursive: true, force: true }));

/** bench.js run with its temporary files and default output in `scratch`. */
function bench(args: string[]) {
  return runCommand(process.execPath, ['--', BENCH, ...args], { ...process.env, TMPDIR: scratch });
}

test('--help prints the options and exits 0', async () => {
  const { code, stdout, stderr } = await bench(['--help']);
  assert.equal(code, 0, stderr);
  assert.match(stdout, /^usage: /);
  for (const option of ['--runs', '--rootfs-runs', '--out', '--part'])
    assert.ok(stdout.includes(option), option);
  assert.equal(stderr, '');
});

test('each bad input is refused in one line that names it and what to do', async () => {
  const cases: [string[], RegExp][] = [
    [['--part', 'nope'], /^bench: --part nope is not a part .*use one of all, cli, start/],
    [['--out'], /^bench: --out needs a value, as in --out /],
    [['--out', '--part', 'start'], /^bench: --out needs a value/],
    [['--runs', 'abc'], /^bench: --runs abc: give a whole number of runs from 1 to 1000$/],
    [['--rootfs-runs=0'], /^bench: --rootfs-runs 0: give a whole number/],
    [['--bogus'], /^bench: unknown option --bogus \(see --help/],
    [['extra'], /^bench: unexpected argument 'extra'/],
    [
      ['--out', join(scratch, 'missing', 'r.json')],
      /^bench: --out .*: .*missing is not a directory this user can write/,
    ],
    [['--out', scratch], /^bench: --out .* is a directory: name a file$/],
  ];
  for (const [args, expected] of cases) {
    const { code, stdout, stderr } = await bench(args);
    assert.equal(code, 2, `${args.join(' ')}: ${stderr}`);
    assert.equal(stdout, '', args.join(' '));
    assert.equal(stderr.trimEnd().split('\n').length, 1, `one line for ${args.join(' ')}: ${stderr}`);
    assert.match(stderr.trimEnd(), expected);
  }
  assert.deepEqual(await readdir(scratch), [], 'nothing was left behind');
});
