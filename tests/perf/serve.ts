/**
 * The sandboxes API against the command line, interleaved in one run (only ratios mean
 * anything on these shared machines):
 *   - `Sandbox.create` from a cached image ÷ a templated `hull run true` of the same busybox
 *     (goal <= 1.2), pair by pair: both clone a VM from a template, and serve's sandbox also
 *     gets its disks and overlay root;
 *   - `commands.run('true')` round trip through a running `hull serve` ÷ `hull exec true` on the
 *     same sandbox (goal <= 0.25: no CLI process per call);
 *   - files.write + files.read of 100 MiB ÷ the same bytes through `hull exec sh -c 'cat > F'`
 *     and `hull exec cat F`;
 *   - 50 sandboxes created concurrently through the API, each then running a command: how many
 *     answered, and how long the whole took.
 * `measureCommands` (`--part commands`) takes the command round trip alone.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Sandbox } from '../../src/sdk/sandbox.js';
import { HULL, startHull } from '../e2e/harness.js';
import { makeBusyboxBundle } from '../fixtures/bundle.js';
import { pushBusybox, startRegistry } from '../fixtures/registry.js';
import { median } from './network.js';

export interface ServeFigures {
  runs: number;
  medianMs: {
    create: number;
    hullRunTemplated: number;
    runTrue: number;
    execTrue: number;
    files100MiB: number;
    exec100MiB: number;
  };
  ratios: {
    createOverHullRun: number;
    runTrueOverExecTrue: number;
    files100MiBOverExecCat: number;
  };
  concurrent: { asked: number; created: number; answered: number; wallMs: number };
}

const MIB = 1024 * 1024;

export interface CommandFigures {
  runs: number;
  /** Every sample, in the order taken. */
  samplesMs: { runTrue: number[]; execTrue: number[] };
  medianMs: { runTrue: number; execTrue: number };
  runTrueOverExecTrue: number;
}

/** Runs hull (the bundled CLI) with `input` on its stdin; resolves with the elapsed ms. */
function timedHull(args: string[], input?: Buffer, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [HULL, ...args], {
      stdio: ['pipe', 'ignore', 'pipe'],
      env: { ...process.env, ...env },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    child.on('close', (code) => {
      if (code === 0) resolve(performance.now() - started);
      else reject(new Error(`hull ${args.join(' ')} failed (${code}): ${stderr.trim()}`));
    });
  });
}

async function timed(action: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await action();
  return performance.now() - started;
}

export async function measureServe(scratch: string, runs: number, concurrent = 50): Promise<ServeFigures> {
  const root = join(scratch, 'serve-root');
  const registry = await startRegistry(join(scratch, 'serve-registry'));
  const server = startHull(['--root', root, 'serve', '--listen', `unix:${join(scratch, 'api.sock')}`], {
    input: null,
  });
  const api = `unix:${join(scratch, 'api.sock')}`;
  const made: Sandbox[] = [];
  try {
    const image = await pushBusybox(scratch, registry);
    await server.waitForOutput('listening on', 60_000);
    const sandbox = await Sandbox.create({ api, image, timeoutMs: 3_600_000 });
    made.push(sandbox);
    const exec = (args: string[], input?: Buffer) =>
      timedHull(['--root', root, 'exec', sandbox.sandboxId, ...args], input);

    // Start-up, pair by pair: a sandbox made through the API (no network, as `hull run` of a
    // bundle has none; killed after, untimed) and `hull run true` cloned from its template.
    const bundle = join(scratch, 'serve-bundle');
    await mkdir(bundle);
    await makeBusyboxBundle(bundle, ['true']);
    const runRoot = join(scratch, 'serve-run-root');
    const hullRun = (name: string) =>
      timedHull(['--root', runRoot, 'run', '-b', bundle, name], undefined, { HULL_TEMPLATE: 'on' });
    const create = async () => {
      const started = performance.now();
      const one = await Sandbox.create({ api, image, network: 'none', timeoutMs: 600_000 });
      const ms = performance.now() - started;
      await one.kill();
      return ms;
    };
    const startSamples = { create: [] as number[], hullRun: [] as number[] };
    // One warm-up of each: the templated run makes its template.
    await create();
    await hullRun('bench-serve-warm');
    for (let i = 0; i < runs; i++) {
      startSamples.create.push(await create());
      startSamples.hullRun.push(await hullRun(`bench-serve-${i}`));
      process.stderr.write('.');
    }
    process.stderr.write(
      `\nSandbox.create ${startSamples.create.map(Math.round)} ms, templated hull run true ${startSamples.hullRun.map(Math.round)} ms\n`,
    );
    const data = randomBytes(100 * MIB);
    const samples = {
      runTrue: [] as number[],
      execTrue: [] as number[],
      files: [] as number[],
      exec: [] as number[],
    };
    // One warm-up of each.
    await sandbox.commands.run('true');
    await exec(['true']);
    for (let i = 0; i < runs; i++) {
      samples.runTrue.push(await timed(() => sandbox.commands.run('true')));
      samples.execTrue.push(await exec(['true']));
      samples.files.push(
        await timed(async () => {
          await sandbox.files.write('/bench.bin', Readable.from([data]), { length: data.length });
          const back = await sandbox.files.read('/bench.bin', { format: 'stream' });
          let size = 0;
          for await (const chunk of back) size += (chunk as Buffer).length;
          if (size !== data.length) throw new Error(`read ${size} bytes of ${data.length}`);
        }),
      );
      samples.exec.push(
        (await exec(['sh', '-c', 'cat > /bench-cli.bin'], data)) + (await exec(['cat', '/bench-cli.bin'])),
      );
      process.stderr.write('.');
    }
    process.stderr.write('\n');

    // Many at once, as a burst of users would.
    const started = performance.now();
    const outcomes = await Promise.allSettled(
      Array.from({ length: concurrent - 1 }, async () => {
        const one = await Sandbox.create({ api, image, timeoutMs: 3_600_000 });
        made.push(one);
        return (await one.commands.run('echo ok')).stdout === 'ok\n';
      }),
    );
    const wallMs = performance.now() - started;
    const answered = outcomes.filter((o) => o.status === 'fulfilled' && o.value).length + 1;
    const medianMs = {
      create: median(startSamples.create),
      hullRunTemplated: median(startSamples.hullRun),
      runTrue: median(samples.runTrue),
      execTrue: median(samples.execTrue),
      files100MiB: median(samples.files),
      exec100MiB: median(samples.exec),
    };
    return {
      runs,
      medianMs: {
        create: Math.round(medianMs.create),
        hullRunTemplated: Math.round(medianMs.hullRunTemplated),
        runTrue: Math.round(medianMs.runTrue),
        execTrue: Math.round(medianMs.execTrue),
        files100MiB: Math.round(medianMs.files100MiB),
        exec100MiB: Math.round(medianMs.exec100MiB),
      },
      ratios: {
        createOverHullRun: Number((medianMs.create / medianMs.hullRunTemplated).toFixed(3)),
        runTrueOverExecTrue: Number((medianMs.runTrue / medianMs.execTrue).toFixed(3)),
        files100MiBOverExecCat: Number((medianMs.files100MiB / medianMs.exec100MiB).toFixed(3)),
      },
      concurrent: { asked: concurrent, created: made.length, answered, wallMs: Math.round(wallMs) },
    };
  } finally {
    await Promise.allSettled(made.map((s) => s.kill()));
    server.child.kill('SIGTERM');
    await server.result;
    await registry.stop();
  }
}

/** `commands.run('true')` ÷ `hull exec true` on one sandbox of a running `hull serve`, pair by pair. */
export async function measureCommands(scratch: string, runs: number): Promise<CommandFigures> {
  const root = join(scratch, 'commands-root');
  const registry = await startRegistry(join(scratch, 'commands-registry'));
  const socket = join(scratch, 'commands-api.sock');
  const server = startHull(['--root', root, 'serve', '--listen', `unix:${socket}`], { input: null });
  let sandbox: Sandbox | undefined;
  try {
    const image = await pushBusybox(scratch, registry);
    await server.waitForOutput('listening on', 60_000);
    sandbox = await Sandbox.create({ api: `unix:${socket}`, image, network: 'none', timeoutMs: 3_600_000 });
    const id = sandbox.sandboxId;
    const samples = { runTrue: [] as number[], execTrue: [] as number[] };
    await sandbox.commands.run('true');
    await timedHull(['--root', root, 'exec', id, 'true']);
    for (let i = 0; i < runs; i++) {
      const one = sandbox;
      samples.runTrue.push(await timed(() => one.commands.run('true')));
      samples.execTrue.push(await timedHull(['--root', root, 'exec', id, 'true']));
      process.stderr.write('.');
    }
    process.stderr.write('\n');
    const medianMs = { runTrue: median(samples.runTrue), execTrue: median(samples.execTrue) };
    return {
      runs,
      samplesMs: {
        runTrue: samples.runTrue.map(Math.round),
        execTrue: samples.execTrue.map(Math.round),
      },
      medianMs: { runTrue: Math.round(medianMs.runTrue), execTrue: Math.round(medianMs.execTrue) },
      runTrueOverExecTrue: Number((medianMs.runTrue / medianMs.execTrue).toFixed(3)),
    };
  } finally {
    await sandbox?.kill().catch(() => {});
    server.child.kill('SIGTERM');
    await server.result;
    await registry.stop();
  }
}

export function printCommands(figures: CommandFigures): void {
  const { medianMs: m, samplesMs: s } = figures;
  console.log(
    `commands: commands.run('true') ${m.runTrue} ms / hull exec true ${m.execTrue} ms = ${figures.runTrueOverExecTrue} (goal <= 0.25; samples ${s.runTrue} / ${s.execTrue} ms)`,
  );
}

export function printServe(figures: ServeFigures): void {
  const { medianMs: m, ratios: r, concurrent: c } = figures;
  console.log(
    `serve: Sandbox.create from a cached image ${m.create} ms / templated hull run true ${m.hullRunTemplated} ms = ${r.createOverHullRun} (goal <= 1.2)`,
  );
  console.log(
    `serve: commands.run('true') ${m.runTrue} ms / hull exec true ${m.execTrue} ms = ${r.runTrueOverExecTrue} (goal <= 0.25)`,
  );
  console.log(
    `serve: files write+read 100 MiB ${m.files100MiB} ms / hull exec cat ${m.exec100MiB} ms = ${r.files100MiBOverExecCat}`,
  );
  console.log(
    `serve: ${c.asked} sandboxes created concurrently through the API: ${c.created} created, ${c.answered} answered a command, in ${c.wallMs} ms`,
  );
}
