import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { guestImageSourceDir } from '../paths.js';

/**
 * The guest's hull-spawn (guest/image/hull-spawn.c), compiled here as the image build does,
 * refusing what its command line must not hold before it touches anything: each refusal is
 * one line on descriptor 3 and exit status 1.
 */
let dir: string;
let program: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hull-spawn-test-'));
  program = join(dir, 'hull-spawn');
  const cc = spawnSync(
    'cc',
    ['-static', '-Os', '-Wall', '-Werror', '-o', program, join(guestImageSourceDir(), 'hull-spawn.c')],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(cc.status, 0, cc.stderr);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs hull-spawn with `args`; its report descriptor 3 is a pipe read here. */
function spawnWith(args: string[]): { status: number | null; report: string } {
  const run = spawnSync(program, args, {
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: run.status, report: String(run.output[3] ?? '') };
}

test('hull-spawn refuses a bad command line in one line, exit 1', () => {
  const valid = ['-p', '2', '-c', '/sys/fs/cgroup/x'];
  const cases: [string, string[], RegExp][] = [
    ['no pid', ['-c', '/x', '--', 'true'], /-p and -c are required/],
    ['pid 1 (not a container init)', ['-p', '1', '-c', '/x', '--', 'true'], /-p:/],
    ['a pid with letters', ['-p', '12x', '-c', '/x', '--', 'true'], /-p:/],
    ['a relative cgroup', ['-p', '2', '-c', 'x', '--', 'true'], /-c:/],
    ['a negative uid', [...valid, '-u', '-1', '--', 'true'], /-u:/],
    ['a uid past 2^32-2', [...valid, '-u', '4294967295', '--', 'true'], /-u:/],
    ['65 groups', [...valid, '-G', Array(65).fill('1').join(','), '--', 'true'], /-G:/],
    ['a umask past 0777', [...valid, '-m', '1000', '--', 'true'], /-m:/],
    ['a relative cwd', [...valid, '-d', 'tmp', '--', 'true'], /-d:/],
    ['a capability mask past 64 bits', [...valid, '-B', '1ffffffffffffffff', '--', 'true'], /hex mask/],
    ['a resource past RLIMIT_NLIMITS', [...valid, '-r', '16,1,1', '--', 'true'], /-r:/],
    ['a limit without its hard value', [...valid, '-r', '7,1', '--', 'true'], /-r:/],
    ['17 limits', [...valid, ...Array(17).fill(['-r', '7,1,1']).flat(), '--', 'true'], /-r:/],
    ['no program', [...valid, '--'], /no program/],
  ];
  for (const [what, args, message] of cases) {
    const { status, report } = spawnWith(args);
    assert.equal(status, 1, what);
    assert.match(report, message, what);
    assert.equal(report.split('\n').length, 2, `${what}: one line`);
  }
});

test('hull-spawn without its report descriptor does nothing', () => {
  const run = spawnSync(program, ['-p', '2', '-c', '/x', '--', 'true'], { stdio: 'ignore' });
  assert.equal(run.status, 1);
});
