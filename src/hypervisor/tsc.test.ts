import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { scratchDir } from '../testing/scratch.js';
import { hostTscKhz } from './tsc.js';

async function cpuinfo(text: string): Promise<string> {
  const dir = await scratchDir('hull-tsc-');
  await writeFile(join(dir, 'cpuinfo'), text);
  return dir;
}

test('without frequency scaling, cpu MHz is the TSC rate', async () => {
  const dir = await cpuinfo(
    'model name\t: Intel(R) Xeon(R) Processor\ncpu MHz\t\t: 2600.000\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n\nprocessor: 1\n',
  );
  assert.equal(await hostTscKhz(join(dir, 'cpuinfo'), join(dir, 'no-cpufreq')), 2_600_000);
});

test('with frequency scaling, the nominal frequency of the model name is used', async () => {
  const dir = await cpuinfo(
    'model name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz\ncpu MHz\t\t: 800.112\nflags\t\t: constant_tsc\n',
  );
  await mkdir(join(dir, 'cpufreq'));
  assert.equal(await hostTscKhz(join(dir, 'cpuinfo'), join(dir, 'cpufreq')), 1_900_000);
});

test('a host without a constant TSC gets no hint', async () => {
  const dir = await cpuinfo('model name\t: Old CPU\ncpu MHz\t\t: 1000.000\nflags\t\t: fpu tsc\n');
  assert.equal(await hostTscKhz(join(dir, 'cpuinfo'), join(dir, 'none')), undefined);
});
