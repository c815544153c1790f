import type { Counter, Histogram, MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { AgentClient } from '../agent/client.js';
import { processCost } from '../sys/processes.js';
import { type AgentRequestEnd, agentRequests } from './agent-requests.js';
import { guestUse, sandboxGuestUse } from './guest-use.js';
import type { HostProcess, SandboxSample } from './sandbox-metrics.js';

/** Agent requests take from a millisecond (a signal) to a minute (a process's exit, waited on). */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What is kept while prom-client is not loaded yet; past this many, it is loaded. */
const MAX_PENDING = 1000;

type Recorded = { request: AgentRequestEnd } | { failure: string };

interface Figures {
  registry: Registry;
  latency: Histogram<'sandbox' | 'method'>;
  agentFailures: Counter<'sandbox' | 'method' | 'code'>;
  failures: Counter<'code' | 'source'>;
}

export type RegistryJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The figures kept by the process that owns one sandbox (a container's monitor, a pod's
 * shim) for as long as it lives: how long each agent request took and how it failed, and
 * which of its own requests failed, by error code. `hull metrics` collects them with the
 * sandbox's sample (see collect-service.ts).
 */
export class OwnerMetrics {
  /**
   * The figures in prom-client's registry, made when they are first asked for (or when
   * MAX_PENDING records wait): until then what happens is kept in `pending`, so a monitor no
   * one asks for figures does not load prom-client (about 1.5 MiB of its heap).
   */
  private figures: Figures | undefined;
  private loading: Promise<Figures> | undefined;
  private pending: Recorded[] = [];
  private readonly listener = (message: unknown) => this.record({ request: message as AgentRequestEnd });

  constructor(
    private readonly sandboxId: string,
    private readonly source: Exclude<HostProcess, 'qemu'>,
  ) {
    agentRequests.subscribe(this.listener);
  }

  /** A request this process served failed with `code` (see errors.ts). */
  failed(code: string): void {
    this.record({ failure: code });
  }

  stop(): void {
    agentRequests.unsubscribe(this.listener);
  }

  /** This process's own figures (not its sandbox's sample: see collect). */
  async registry(): Promise<Registry> {
    return (await this.load()).registry;
  }

  private record(recorded: Recorded): void {
    if (this.figures) {
      this.apply(this.figures, recorded);
      return;
    }
    this.pending.push(recorded);
    if (this.pending.length >= MAX_PENDING) void this.load();
  }

  private apply(figures: Figures, recorded: Recorded): void {
    if ('failure' in recorded) {
      figures.failures.inc({ code: recorded.failure, source: this.source });
      return;
    }
    const end = recorded.request;
    figures.latency.observe({ sandbox: this.sandboxId, method: end.method }, end.seconds);
    if (end.failure)
      figures.agentFailures.inc({ sandbox: this.sandboxId, method: end.method, code: end.failure });
  }

  private load(): Promise<Figures> {
    // prom-client's default export: what an ES module (and esbuild's chunks) sees of its
    // CommonJS module.
    this.loading ??= Promise.all([import('prom-client'), import('./sandbox-metrics.js')]).then(
      ([{ default: prom }, { failuresCounter }]) => {
        const { Counter, Histogram, Registry } = prom;
        const registry = new Registry();
        const figures: Figures = {
          registry,
          latency: new Histogram({
            name: 'hull_agent_request_duration_seconds',
            help: 'Time from a request to the guest agent to its answer, by method',
            labelNames: ['sandbox', 'method'],
            buckets: REQUEST_BUCKETS,
            registers: [registry],
          }),
          agentFailures: new Counter({
            name: 'hull_agent_request_failures_total',
            help: 'Requests to the guest agent that failed, by method and error code',
            labelNames: ['sandbox', 'method', 'code'],
            registers: [registry],
          }),
          failures: failuresCounter(registry),
        };
        for (const recorded of this.pending) this.apply(figures, recorded);
        this.pending = [];
        this.figures = figures;
        return figures;
      },
    );
    return this.loading;
  }

  /**
   * This process's figures and its sandbox's sample, as prom-client's JSON: `sandbox` is
   * what the owner knows (id, state, containers, boot); the guest's and host's figures are
   * read now.
   */
  async collect(
    sandbox: { agent: AgentClient; vmPid: number },
    parts: Pick<SandboxSample, 'id' | 'status' | 'boot'> & { containerIds: string[] },
  ): Promise<RegistryJson> {
    const sample: SandboxSample = {
      id: parts.id,
      status: parts.status,
      boot: parts.boot,
      containers: [],
      host: [],
    };
    sample.guest = await sandboxGuestUse(sandbox.agent, AbortSignal.timeout(5000));
    for (const id of parts.containerIds) {
      sample.containers.push({ id, guest: await guestUse(sandbox.agent, id, AbortSignal.timeout(5000)) });
    }
    const processes: [HostProcess, number][] = [
      ['qemu', sandbox.vmPid],
      [this.source, process.pid],
    ];
    for (const [name, pid] of processes) {
      const cost = pid ? await processCost(pid) : undefined;
      if (cost) sample.host.push({ process: name, ...cost });
    }
    const { sandboxRegistry } = await import('./sandbox-metrics.js');
    const figures = sandboxRegistry([sample], false);
    return [
      ...(await figures.getMetricsAsJSON()),
      ...(await (await this.registry()).getMetricsAsJSON()),
    ] as RegistryJson;
  }
}
