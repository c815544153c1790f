import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { type SandboxSample, sandboxRegistry } from '../metrics/sandbox-metrics.js';
import { UNLIMITED } from '../oci/cgroup-files.js';
import { runcStats } from '../oci/runc-stats.js';
import { containerDir } from '../sandbox/runtime.js';
import { commandLines, processCost } from '../sys/processes.js';
import { BOOT_RECORD_FILE, type BootRecord } from '../trace/boot-trace.js';
import { type ContainerRef, listContainers, withMonitor } from './container-ref.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';

/**
 * One container's sample: its boot record, its guest cgroup through its monitor (as runc's
 * stats read it), and its host processes' cost; `qemus` are the command lines of the VMMs
 * running on the host, found once per scrape.
 */
async function sample(ref: ContainerRef, qemus: Map<number, string>): Promise<SandboxSample> {
  const { id, state } = ref;
  const result: SandboxSample = { id, status: state.status, host: [] };
  result.boot = await readFile(join(ref.dir, BOOT_RECORD_FILE), 'utf8')
    .then((text) => JSON.parse(text) as BootRecord)
    .catch(() => undefined);
  if (state.status === 'stopped') return result;
  const files = await withMonitor(ref, (monitor) =>
    monitor.agent.statsContainer(id, AbortSignal.timeout(10_000)),
  ).catch(() => undefined);
  if (files) {
    const { memory, cpu, pids } = runcStats(files);
    result.guest = {
      memoryBytes: Number(memory.usage.usage),
      memoryLimitBytes: memory.usage.limit === UNLIMITED ? undefined : Number(memory.usage.limit),
      cpuSeconds: Number(cpu.usage.total) / 1e9,
      pids: Number(pids.current),
    };
  }
  const qemu = [...qemus].find(([, cmdline]) => cmdline.includes(`${ref.dir}/`))?.[0];
  const processes: [SandboxSample['host'][number]['process'], number | undefined][] = [
    ['qemu', qemu],
    ['monitor', state.pid || undefined],
  ];
  for (const [name, pid] of processes) {
    const cost = pid ? await processCost(pid) : undefined;
    if (cost) result.host.push({ process: name, ...cost });
  }
  return result;
}

async function scrape(globals: GlobalOptions): Promise<{ text: string; contentType: string }> {
  const settings = settingsFrom(globals);
  const states = await listContainers(globals);
  const qemus = await commandLines((cmdline) => cmdline.includes('qemu-system'));
  const samples = await Promise.all(
    states.map((state) =>
      sample({ id: state.id, dir: containerDir(settings, state.id), settings, state }, qemus),
    ),
  );
  const registry = sandboxRegistry(samples);
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
