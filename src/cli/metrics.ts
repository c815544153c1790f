import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { Command } from 'commander';
import { AggregatorRegistry } from 'prom-client';
import { HullError } from '../errors.js';
import { collectFrom } from '../metrics/collect-service.js';
import { failureCounts } from '../metrics/failure-counts.js';
import type { RegistryJson } from '../metrics/owner-metrics.js';
import { failuresCounter, type SandboxSample, sandboxRegistry } from '../metrics/sandbox-metrics.js';
import { containerDir } from '../sandbox/container-id.js';
import { MONITOR_SOCKET } from '../sandbox/monitor-socket.js';
import { SHIM_SOCKET } from '../shim/pod-identity.js';
import { BOOT_RECORD_FILE, type BootRecord } from '../trace/boot-trace.js';
import { type ContainerRef, listContainers } from './container-ref.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';

/**
 * A sandbox whose owner does not answer (stopped, or its monitor gone): what its directory
 * still tells, its state and boot record.
 */
async function quietSample(ref: ContainerRef): Promise<SandboxSample> {
  const boot = await readFile(join(ref.dir, BOOT_RECORD_FILE), 'utf8')
    .then((text) => JSON.parse(text) as BootRecord)
    .catch(() => undefined);
  return { id: ref.id, status: ref.state.status, containers: [], host: [], boot };
}

/** The sockets of the pods' shims under the root (`<root>/shim/<hash>/shim.sock`). */
async function podShimSockets(root: string): Promise<string[]> {
  const shims = join(root, 'shim');
  const dirs = await readdir(shims).catch(() => [] as string[]);
  return dirs.map((d) => join(shims, d, SHIM_SOCKET));
}

/**
 * One scrape of the root, as kata-monitor gathers every shim's: each sandbox's owner (a
 * container's monitor, a pod's shim) reports its own registry; sandboxes without an answering
 * owner are counted from their state; failed commands come from the failure counts.
 */
async function scrape(globals: GlobalOptions): Promise<{ text: string; contentType: string }> {
  const settings = settingsFrom(globals);
  const signal = AbortSignal.timeout(30_000);
  const states = await listContainers(globals);
  const quiet: SandboxSample[] = [];
  const owners = await Promise.all(
    states.map(async (state) => {
      const ref = { id: state.id, dir: containerDir(settings, state.id), settings, state };
      const answer =
        state.status === 'stopped' ? undefined : await collectFrom(join(ref.dir, MONITOR_SOCKET), signal);
      if (!answer) quiet.push(await quietSample(ref));
      return answer;
    }),
  );
  const pods = await Promise.all((await podShimSockets(settings.root)).map((s) => collectFrom(s, signal)));
  const own = sandboxRegistry(quiet);
  const failures = failuresCounter(own);
  for (const [code, count] of Object.entries(await failureCounts(settings.root))) {
    failures.inc({ code, source: 'cli' }, count);
  }
  const registry = AggregatorRegistry.aggregate([
    (await own.getMetricsAsJSON()) as RegistryJson,
    ...[...owners, ...pods].filter((r): r is RegistryJson => r !== undefined),
  ]);
  return { text: await registry.metrics(), contentType: registry.contentType };
}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(.+):(\d{1,5})$/.exec(value);
  const port = Number(m?.[2]);
  if (!m || !(port > 0 && port < 65_536)) {
    throw new HullError('ERR_USAGE', `--listen ${value}: give HOST:PORT, such as 127.0.0.1:9464`);
  }
  return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

/**
 * `metrics`: the Prometheus text format for every sandbox under the root, once on stdout, or
 * served at /metrics with --listen (a fresh scrape per request), as kata-monitor serves Kata's.
 */
export function registerMetrics(program: Command): void {
  program
    .command('metrics')
    .description('print Prometheus metrics of every sandbox under the root, or serve them with --listen')
    .option('--listen <host:port>', 'serve /metrics over HTTP until stopped')
    .action(async (options: { listen?: string }, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      if (!options.listen) {
        process.stdout.write((await scrape(globals)).text);
        return;
      }
      const { host, port } = parseListen(options.listen);
      const server = createServer((req, res) => {
        if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
          res.writeHead(404).end('not found: GET /metrics\n');
          return;
        }
        scrape(globals).then(
          ({ text, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(`${String(err)}\n`),
        );
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) =>
          reject(new HullError('ERR_USAGE', `cannot listen on ${options.listen}: ${(err as Error).message}`)),
        );
        server.listen(port, host, () => resolve());
      });
      await new Promise<void>((resolve) => {
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => resolve());
      });
      server.close();
    });
}
