/**
 * The sandboxes API against the command line, interleaved in one run (only ratios mean
 * anything on these shared machines):
 *   - `Sandbox.create` from a cached image ÷ a templated `hull run true` of the same busybox
 *     (goal <= 1.2), pair by pair: both clone a VM from a template, and serve's sandbox also
 *     gets its disks and overlay root; a create counts until its container runs, and the same
 *     until its first command answered and with network 'internet' are printed beside it;
 *   - `commands.run('true')` round trip through a running `hull serve` ÷ `hull exec true` on the
 *     same sandbox (goal <= 0.25: no CLI process per call);
 *   - files.write + files.read of 100 MiB ÷ the same bytes through `hull exec sh -c 'cat > F'`
 *     and `hull exec cat F`;
 *   - 50 sandboxes created concurrently through the API, each then running a command: how many
 *     answered, how long the whole took, and the error codes of any that failed.
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

/** The fewest `commands.run('true')` / `hull exec true` pairs whose medians are compared. */
const COMMAND_PAIRS = 9;

export interface ServeFigures {
  runs: number;
  medianMs: {
    create: number;
    createAnswered: number;
    createInternet: number;
    hullRunTemplated: number;
    runTrue: number;
    execTrue: number;
    files100MiB: number;
    exec100MiB: number;
  };
  ratios: {
    createOverHullRun: number;
    createAnsweredOverHullRun: number;
    createInternetOverHullRun: number;
    runTrueOverExecTrue: number;
    files100MiBOverExecCat: number;
  };
  concurrent: {
    asked: number;
    created: number;
    answered: number;
    wallMs: number;
    /** How many failed with each error code (the API's, else the thrown error's name). */
    failures: Record<string, number>;
  };
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

/**
 * A sample that failed is NaN, said on stderr, so the other figures of the run (the concurrent
 * creates after it) are still measured and printed; a median with a NaN prints as NaN.
 */
async function failedAsNaN(what: string, sample: () => Promise<number>): Promise<number> {
  try {
    return await sample();
  } catch (err) {
    process.stderr.write(`\n${what} failed: ${(err as Error).message}\n`);
    return Number.NaN;
  }
}

/** The median, or NaN when a sample failed (sorting does not order NaN). */
const medianUnlessFailed = (xs: number[]) => (xs.some(Number.isNaN) ? Number.NaN : median(xs));

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
    // Sandbox.create resolves once the sandbox's container runs (its idle init started in the
    // guest), the moment a command can be sent; `hull run true` also runs `true` and tears its
    // VM down. Beside the goal's ratio, the first command's answer is timed too (what a user
    // waits for before any output), and a sandbox with network 'internet' (the API's default).
    const create = async (network: 'none' | 'internet') => {
      const started = performance.now();
      const one = await Sandbox.create({ api, image, network, timeoutMs: 600_000 });
      const ms = performance.now() - started;
      await one.commands.run('true');
      const answeredMs = performance.now() - started;
      await one.kill();
      return { ms, answeredMs };
    };
    const startSamples = {
      create: [] as number[],
      createAnswered: [] as number[],
      createInternet: [] as number[],
      hullRun: [] as number[],
    };
    // One warm-up of each: the templated run makes its template.
    await create('none');
    await create('internet');
    await hullRun('bench-serve-warm');
    for (let i = 0; i < runs; i++) {
      const none = await create('none');
      startSamples.create.push(none.ms);
      startSamples.createAnswered.push(none.answeredMs);
      startSamples.createInternet.push((await create('internet')).ms);
      startSamples.hullRun.push(await hullRun(`bench-serve-${i}`));
      process.stderr.write('.');
    }
    process.stderr.write(
      `\nSandbox.create ${startSamples.create.map(Math.round)} ms (until its first command answered ${startSamples.createAnswered.map(Math.round)} ms; with network 'internet' ${startSamples.createInternet.map(Math.round)} ms), templated hull run true ${startSamples.hullRun.map(Math.round)} ms\n`,
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
    // A round trip is tens of milliseconds, so one stall of this shared machine moves a median
    // of three: the pairs are taken apart from the 100 MiB runs, at least COMMAND_PAIRS of them.
    for (let i = 0; i < Math.max(runs, COMMAND_PAIRS); i++) {
      samples.runTrue.push(await timed(() => sandbox.commands.run('true')));
      samples.execTrue.push(await exec(['true']));
    }
    for (let i = 0; i < runs; i++) {
      samples.files.push(
        await failedAsNaN('files write+read 100 MiB', () =>
          timed(async () => {
            await sandbox.files.write('/bench.bin', Readable.from([data]), { length: data.length });
            const back = await sandbox.files.read('/bench.bin', { format: 'stream' });
            let size = 0;
            for await (const chunk of back) size += (chunk as Buffer).length;
            if (size !== data.length) throw new Error(`read ${size} bytes of ${data.length}`);
          }),
        ),
      );
      samples.exec.push(
        await failedAsNaN(
          'hull exec cat 100 MiB',
          async () =>
            (await exec(['sh', '-c', 'cat > /bench-cli.bin'], data)) +
            (await exec(['cat', '/bench-cli.bin'])),
        ),
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
    const failures: Record<string, number> = {};
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled' && outcome.value) continue;
      const code =
        outcome.status === 'rejected'
          ? String((outcome.reason as { code?: string }).code ?? (outcome.reason as Error).name)
          : 'wrong output';
      failures[code] = (failures[code] ?? 0) + 1;
      if (outcome.status === 'rejected')
        process.stderr.write(`a concurrent create failed: ${outcome.reason}\n`);
    }
    const medianMs = {
      create: median(startSamples.create),
      createAnswered: median(startSamples.createAnswered),
      createInternet: median(startSamples.createInternet),
      hullRunTemplated: median(startSamples.hullRun),
      runTrue: median(samples.runTrue),
      execTrue: median(samples.execTrue),
      files100MiB: medianUnlessFailed(samples.files),
      exec100MiB: medianUnlessFailed(samples.exec),
    };
    return {
      runs,
      medianMs: {
        create: Math.round(medianMs.create),
        createAnswered: Math.round(medianMs.createAnswered),
        createInternet: Math.round(medianMs.createInternet),
        hullRunTemplated: Math.round(medianMs.hullRunTemplated),
        runTrue: Math.round(medianMs.runTrue),
        execTrue: Math.round(medianMs.execTrue),
        files100MiB: Math.round(medianMs.files100MiB),
        exec100MiB: Math.round(medianMs.exec100MiB),
      },
      ratios: {
        createOverHullRun: Number((medianMs.create / medianMs.hullRunTemplated).toFixed(3)),
        createAnsweredOverHullRun: Number((medianMs.createAnswered / medianMs.hullRunTemplated).toFixed(3)),
        createInternetOverHullRun: Number((medianMs.createInternet / medianMs.hullRunTemplated).toFixed(3)),
        runTrueOverExecTrue: Number((medianMs.runTrue / medianMs.execTrue).toFixed(3)),
        files100MiBOverExecCat: Number((medianMs.files100MiB / medianMs.exec100MiB).toFixed(3)),
      },
      concurrent: { asked: concurrent, created: made.length, answered, wallMs: Math.round(wallMs), failures },
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
    `serve: the same until its first command answered ${m.createAnswered} ms = ${r.createAnsweredOverHullRun}; with network 'internet' ${m.createInternet} ms = ${r.createInternetOverHullRun}`,
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
  const failed = Object.entries(c.failures);
  if (failed.length) console.log(`serve: failed: ${failed.map(([code, n]) => `${n} ${code}`).join(', ')}`);
}
