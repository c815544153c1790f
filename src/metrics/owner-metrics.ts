import { Counter, Histogram, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import type { AgentClient } from '../agent/client.js';
import { processCost } from '../sys/processes.js';
import { type AgentRequestEnd, agentRequests } from './agent-requests.js';
import { guestUse, sandboxGuestUse } from './guest-use.js';
import { type HostProcess, type SandboxSample, sandboxRegistry } from './sandbox-metrics.js';

/** Agent requests take from a millisecond (a signal) to a minute (a process's exit, waited on). */
const REQUEST_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export type RegistryJson = MetricObjectWithValues<MetricValue<string>>[];

/**
 * The figures kept by the process that owns one sandbox (a container's monitor, a pod's
 * shim) for as long as it lives: how long each agent request took and how it failed, and
 * which of its own requests failed, by error code. `hull metrics` collects them with the
 * sandbox's sample (see collect-service.ts).
 */
export class OwnerMetrics {
  readonly registry = new Registry();
  private readonly latency: Histogram<'sandbox' | 'method'>;
  private readonly agentFailures: Counter<'sandbox' | 'method' | 'code'>;
  private readonly failures: Counter<'code' | 'source'>;
  private readonly listener = (message: unknown) => {
    const end = message as AgentRequestEnd;
    this.latency.observe({ sandbox: this.sandboxId, method: end.method }, end.seconds);
    if (end.failure)
      this.agentFailures.inc({ sandbox: this.sandboxId, method: end.method, code: end.failure });
  };

  constructor(
    private readonly sandboxId: string,
    private readonly source: Exclude<HostProcess, 'qemu'>,
  ) {
    this.latency = new Histogram({
      name: 'hull_agent_request_duration_seconds',
      help: 'Time from a request to the guest agent to its answer, by method',
      labelNames: ['sandbox', 'method'],
      buckets: REQUEST_BUCKETS,
      registers: [this.registry],
    });
    this.agentFailures = new Counter({
      name: 'hull_agent_request_failures_total',
      help: 'Requests to the guest agent that failed, by method and error code',
      labelNames: ['sandbox', 'method', 'code'],
      registers: [this.registry],
    });
    this.failures = failuresCounter(this.registry);
    agentRequests.subscribe(this.listener);
  }

  /** A request this process served failed with `code` (see errors.ts). */
  failed(code: string): void {
    this.failures.inc({ code, source: this.source });
  }

  stop(): void {
    agentRequests.unsubscribe(this.listener);
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
    const figures = sandboxRegistry([sample], false);
    return [
      ...(await figures.getMetricsAsJSON()),
      ...(await this.registry.getMetricsAsJSON()),
    ] as RegistryJson;
  }
}

/** Failures by error code: of command-line verbs (source cli), and of a shim's requests. */
export function failuresCounter(registry: Registry): Counter<'code' | 'source'> {
  return new Counter({
    name: 'hull_failures_total',
    help: 'Failed commands and requests, by error code and where they failed (cli, shim)',
    labelNames: ['code', 'source'],
    registers: [registry],
  });
}
