/**
 * The command line's start-up figure of `npm run bench`: `hull list` on an empty runtime root
 * against `node -e 0`, in turn, pair by pair: what a verb costs beyond starting Node, which
 * podman pays for every create, start, state and delete. Run as users run it, through bin/hull.
 */
import { spawnSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { HULL_COMMAND } from '../e2e/harness.js';
import { median } from './network.js';

export interface CliStartFigures {
  pairs: number;
  medianMs: { hullList: number; node: number };
  /** The median of the pairs' ratios: hull list ÷ node -e 0. */
  hullListOverNode: number;
}

function wallMs(command: string, args: string[], env?: NodeJS.ProcessEnv): number {
  const started = process.hrtime.bigint();
  const r = spawnSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`${command} failed (${r.status}): ${r.stderr.toString().trim()}`);
  return ms;
}

export async function measureCliStart(scratch: string, pairs = 20): Promise<CliStartFigures> {
  const root = join(scratch, 'empty-root');
  await mkdir(root, { recursive: true });
  const hullList = () => wallMs(HULL_COMMAND, ['--root', root, 'list']);
  // Node started as bin/hull starts it: without NODE_EXTRA_CA_CERTS, whose file Node would
  // otherwise parse first (bin/hull drops it), so that the ratio is hull's own cost.
  const { NODE_EXTRA_CA_CERTS: _dropped, ...nodeEnv } = process.env;
  const node = () => wallMs(process.execPath, ['-e', '0'], nodeEnv);
  // One of each first, so both find their files in the page cache.
  hullList();
  node();
  const samples = { hullList: [] as number[], node: [] as number[], ratios: [] as number[] };
  for (let i = 0; i < pairs; i++) {
    const h = hullList();
    const n = node();
    samples.hullList.push(h);
    samples.node.push(n);
    samples.ratios.push(h / n);
  }
  return {
    pairs,
    medianMs: { hullList: Math.round(median(samples.hullList)), node: Math.round(median(samples.node)) },
    hullListOverNode: Number(median(samples.ratios).toFixed(2)),
  };
}
