import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { DescMethodUnary } from '@bufbuild/protobuf';
import { create, type DescMessage, type MessageInitShape, type MessageShape } from '@bufbuild/protobuf';
import { HullError, isHullError } from '../errors.js';
import { AgentService, Health } from '../gen/hull/agent/v1/agent_pb.js';
import { checkedBootIdAddress } from '../hypervisor/boot-id-address.js';
import { timedAgentRequest } from '../metrics/agent-requests.js';
import type { GuestNetwork } from '../network/guest-network.js';
import type { Process, Spec } from '../oci/spec.js';
import { hostNowMs, markGuestSteps } from '../trace/boot-marks.js';
import { TtrpcClient } from '../ttrpc/client.js';
import { Code, TtrpcError } from '../ttrpc/status.js';
import { sleep, withTimeout } from '../util/deadline.js';
import { AGENT_PROTOCOL_VERSION } from './version.js';

/** Host randomness given to each sandbox's kernel at start: twice its 256-bit pool. */
const ENTROPY_BYTES = 64;

export interface GuestInfo {
  version: string;
  kernelRelease: string;
  /** How the agent started: from its startup snapshot, without one, or without a rejected one. */
  agentSnapshot: AgentSnapshotUse;
  /** When each guest boot phase began, in seconds of guest uptime (see proto CheckResponse). */
  bootPhases: Record<string, number>;
  /** The guest's uptime in its answer. */
  uptimeSeconds: number;
}

export type AgentSnapshotUse = 'used' | 'none' | 'rejected';

function snapshotUse(reported: string): AgentSnapshotUse {
  return reported === 'used' || reported === 'rejected' ? reported : 'none';
}

export interface ContainerPlacement {
  rootfsSharePath: string;
  sharedMounts: { index: number; sharePath: string }[];
  /** In a pod: the sandbox container whose namespaces this container joins. */
  sandboxContainerId?: string;
  /** The root is on the VM's disks (see storage/rootfs-disks.ts): the writable disk's size. */
  rootfsDisks?: { writableBytes: number };
}

/** How a process's input is given: relayed by the host, or /dev/null in the guest. */
export interface ProcessInput {
  stdin: boolean;
}

/** Which process of a container: its init process (execId '') or one exec'd into it. */
export interface ProcessRef {
  containerId: string;
  execId?: string;
}

/** Above any id a template's host sends while its VM boots (one health check a second). */
const CLONE_FIRST_STREAM_ID = 2 ** 24 + 1;

/**
 * The host's client of the guest agent. Callers use hull's own types; generated protobuf types
 * stop here. Wire errors become HullErrors in one place (toHullError).
 */
/** How long a guest may take to say where its boot id is (it reads kallsyms once: ~0.3 s, TCG). */
const BOOT_ID_ANSWER_MS = 10_000;

export class AgentClient {
  private readonly rpc: TtrpcClient;

  /**
   * `taken`: the channel is a clone's, whose agent already served its template's host (see
   * TtrpcClient): this client's stream ids start where that one's never reach.
   * `firstStreamId`: the channel is a saved VM's, resumed or forked; its agent saw ids up to
   * where the client of the saved VM stopped (its streamIdsFrom, recorded at save).
   */
  constructor(channel: Duplex, options: { taken?: boolean; firstStreamId?: number } = {}) {
    this.rpc = new TtrpcClient(channel, options.firstStreamId ?? (options.taken ? CLONE_FIRST_STREAM_ID : 1));
  }

  /** Where a client taking over this channel after a save starts its stream ids. */
  get streamIdsFrom(): number {
    return this.rpc.streamIdsFrom;
  }

  /**
   * Waits until the agent answers. The first request may sit in the port until the agent
   * opens it, so one is sent and re-sent every second until `signal` gives up.
   */
  async waitReady(signal: AbortSignal): Promise<GuestInfo> {
    for (;;) {
      const attempt = withTimeout(signal, 1000);
      try {
        // Not timed as a request: it is retried until the guest has booted (see boot phases).
        const info = await callMapped(this.rpc, Health.method.check, {}, attempt);
        if (info.version.split('.')[0] !== AGENT_PROTOCOL_VERSION.split('.')[0]) {
          throw new HullError(
            'ERR_AGENT',
            `the guest agent speaks protocol ${info.version}, hull ${AGENT_PROTOCOL_VERSION}: run \`hull image build\``,
          );
        }
        return {
          version: info.version,
          kernelRelease: info.kernelRelease,
          agentSnapshot: snapshotUse(info.agentSnapshot),
          bootPhases: info.bootPhases,
          uptimeSeconds: info.uptimeSeconds,
        };
      } catch (err) {
        if (signal.aborted) throw signal.reason;
        if (isHullError(err, 'ERR_AGENT')) throw err;
        if (this.rpc.closed) throw err;
        if (!attempt.aborted) await sleep(50, signal);
      }
    }
  }

  /**
   * Where the guest says its kernel keeps its boot id (guest-physical), for a save whose copies
   * must make their own (see hypervisor/qemu/boot-id.ts); undefined when it cannot tell (an
   * agent older than protocol 1.9 answers 0). Bounded, but still the guest's word; a guest
   * that has not said within BOOT_ID_ANSWER_MS fails the call.
   */
  async bootIdAddress(signal: AbortSignal): Promise<bigint | undefined> {
    const info = await callMapped(
      this.rpc,
      Health.method.check,
      { withBootIdAddress: true },
      withTimeout(signal, BOOT_ID_ANSWER_MS),
    );
    return checkedBootIdAddress(info.bootIdAddress);
  }

  async createSandbox(options: { sandboxId: string; hostname: string }, signal: AbortSignal): Promise<void> {
    await this.call(
      AgentService.method.createSandbox,
      {
        sandboxId: options.sandboxId,
        hostname: options.hostname,
        hostTimeMs: BigInt(Date.now()),
        entropy: randomBytes(ENTROPY_BYTES),
      },
      signal,
    );
  }

  /** Gives the guest the network the host namespace had (see network/guest-network.ts). */
  async setupNetwork(
    network: GuestNetwork,
    signal: AbortSignal,
    /** The MAC address each card has now, where it is not its interface's (a clone's). */
    options: { cardMacs?: string[] } = {},
  ): Promise<void> {
    await this.call(
      AgentService.method.setupNetwork,
      {
        interfaces: network.interfaces.map(({ name, mac, mtu, addresses }, index) => ({
          name,
          mac,
          mtu,
          addresses,
          cardMac: options.cardMacs?.[index] ?? '',
        })),
        routes: network.routes.map((route) => ({
          ...route,
          gateway: route.gateway ?? '',
          source: route.source ?? '',
          scope: route.scope ?? '',
          onlink: route.onlink ?? false,
        })),
        neighbors: network.neighbors,
      },
      signal,
    );
  }

  async destroySandbox(signal: AbortSignal): Promise<void> {
    await this.call(AgentService.method.destroySandbox, {}, signal);
  }

  /**
   * Creates the container without starting its process, or with `start` creates and starts it
   * in one step; returns the guest pid.
   */
  async createContainer(
    id: string,
    spec: Spec,
    placement: ContainerPlacement & ProcessInput & { start?: boolean },
    signal: AbortSignal,
  ): Promise<number> {
    const res = await this.call(
      AgentService.method.createContainer,
      {
        containerId: id,
        ociSpecJson: Buffer.from(JSON.stringify(spec)),
        rootfsSharePath: placement.rootfsSharePath,
        sharedMounts: placement.sharedMounts,
        sandboxContainerId: placement.sandboxContainerId ?? '',
        stdin: placement.stdin,
        rootfsDisks: placement.rootfsDisks && { writableBytes: BigInt(placement.rootfsDisks.writableBytes) },
        start: placement.start ?? false,
      },
      signal,
    );
    markGuestSteps('container create', res.steps, hostNowMs());
    return res.pid;
  }

  async startContainer(id: string, signal: AbortSignal): Promise<void> {
    const res = await this.call(AgentService.method.startContainer, { containerId: id }, signal);
    markGuestSteps('container start', res.steps, hostNowMs());
  }

  async removeContainer(id: string, signal: AbortSignal): Promise<void> {
    await this.call(AgentService.method.removeContainer, { containerId: id }, signal);
  }

  async execProcess(
    ref: Required<ProcessRef>,
    process: Process,
    input: ProcessInput,
    signal: AbortSignal,
    options: { direct?: boolean } = {},
  ): Promise<{ pid: number; steps: { name: string; ms: number }[] }> {
    const res = await this.call(
      AgentService.method.execProcess,
      {
        ...ref,
        processJson: Buffer.from(JSON.stringify(process)),
        stdin: input.stdin,
        direct: options.direct ?? false,
      },
      signal,
    );
    return { pid: res.pid, steps: res.steps.map(({ name, ms }) => ({ name, ms })) };
  }

  async signalProcess(
    ref: ProcessRef,
    signalNumber: number,
    options: { all?: boolean; signal: AbortSignal },
  ): Promise<void> {
    await this.call(
      AgentService.method.signalProcess,
      {
        containerId: ref.containerId,
        execId: ref.execId ?? '',
        signal: signalNumber,
        all: options.all ?? false,
      },
      options.signal,
    );
  }

  /** Resolves with the exit status once the process has exited (128 + signal if killed). */
  async waitProcess(ref: ProcessRef, signal: AbortSignal): Promise<number> {
    const res = await this.call(
      AgentService.method.waitProcess,
      { containerId: ref.containerId, execId: ref.execId ?? '' },
      signal,
    );
    return res.exitStatus;
  }

  async pauseContainer(id: string, signal: AbortSignal): Promise<void> {
    await this.call(AgentService.method.pauseContainer, { containerId: id }, signal);
  }

  async resumeContainer(id: string, signal: AbortSignal): Promise<void> {
    await this.call(AgentService.method.resumeContainer, { containerId: id }, signal);
  }

  async updateContainer(id: string, resources: unknown, signal: AbortSignal): Promise<void> {
    await this.call(
      AgentService.method.updateContainer,
      { containerId: id, resourcesJson: Buffer.from(JSON.stringify(resources)) },
      signal,
    );
  }

  /** Guest pids of the container's processes. */
  async listProcesses(id: string, signal: AbortSignal): Promise<number[]> {
    return (await this.call(AgentService.method.listProcesses, { containerId: id }, signal)).pids;
  }

  /** The container's cgroup v2 files in the guest, by name (cpu.stat, memory.current, …). */
  async statsContainer(id: string, signal: AbortSignal): Promise<Record<string, string>> {
    return (await this.call(AgentService.method.statsContainer, { containerId: id }, signal)).cgroupFiles;
  }

  /** The whole guest's /proc/meminfo and /proc/stat, by name (see proto StatsSandboxResponse). */
  async statsSandbox(signal: AbortSignal): Promise<Record<string, string>> {
    return (await this.call(AgentService.method.statsSandbox, {}, signal)).procFiles;
  }

  /** Starts watching a container's directory (see WatchPathRequest); followed as an exec. */
  async watchPath(ref: Required<ProcessRef>, path: string, signal: AbortSignal): Promise<number> {
    const res = await this.call(AgentService.method.watchPath, { ...ref, path }, signal);
    return res.pid;
  }

  async resizeTerminal(ref: ProcessRef, rows: number, columns: number, signal: AbortSignal): Promise<void> {
    await this.call(
      AgentService.method.ttyWinResize,
      { containerId: ref.containerId, execId: ref.execId ?? '', rows, columns },
      signal,
    );
  }

  async writeStdin(ref: ProcessRef, data: Uint8Array, signal: AbortSignal): Promise<void> {
    await this.call(
      AgentService.method.writeStdin,
      { containerId: ref.containerId, execId: ref.execId ?? '', data },
      signal,
    );
  }

  async closeStdin(ref: ProcessRef, signal: AbortSignal): Promise<void> {
    await this.call(
      AgentService.method.closeStdin,
      { containerId: ref.containerId, execId: ref.execId ?? '' },
      signal,
    );
  }

  /**
   * The next chunk of the process's stdout or stderr, at most `maxLength` bytes; empty at end
   * of stream; undefined when the guest had nothing to give for `guestWaitMs`. The guest ends
   * such a wait itself (the request's timeout), having taken nothing: a read the host gave up
   * on instead could lose what the guest sent just then.
   */
  async readOutput(
    ref: ProcessRef,
    stream: 'stdout' | 'stderr',
    signal: AbortSignal,
    options: { guestWaitMs: number; maxLength?: number },
  ): Promise<Uint8Array | undefined> {
    const method = stream === 'stdout' ? AgentService.method.readStdout : AgentService.method.readStderr;
    const began = performance.now();
    try {
      const res = await this.call(
        method,
        { containerId: ref.containerId, execId: ref.execId ?? '', maxLength: options.maxLength ?? 1 << 20 },
        signal,
        options.guestWaitMs,
      );
      return res.data;
    } catch (err) {
      // The guest's answer to a wait that ran out is a failure that comes once the wait is
      // over; any other failure comes sooner, or comes again at once on the next read.
      if (!signal.aborted && performance.now() - began >= options.guestWaitMs) return undefined;
      throw err;
    }
  }

  /** Passes an encoded AgentService call through unchanged (the monitor proxies the agent). */
  forwardRaw(
    method: string,
    payload: Uint8Array,
    signal: AbortSignal,
    timeoutMs?: number,
  ): Promise<Uint8Array> {
    return timedAgentRequest(
      method,
      () => this.rpc.callRaw(AgentService.typeName, method, payload, { signal, timeoutMs }),
      (err) => toHullError(method, err),
    );
  }

  close(): void {
    this.rpc.close();
  }

  private call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    signal: AbortSignal,
    timeoutMs?: number,
  ): Promise<MessageShape<O>> {
    return timedAgentRequest(
      method.name,
      () => callMapped(this.rpc, method, input, signal, 'agent', timeoutMs),
      (err) => err,
    );
  }
}

/** Who answers a call: the guest agent, or a hull process on the host (monitor, shim). */
export type Peer = 'agent' | 'host';

/** A unary call whose failure comes back as a hull error (toHullError). */
export async function callMapped<I extends DescMessage, O extends DescMessage>(
  rpc: TtrpcClient,
  method: DescMethodUnary<I, O>,
  input: MessageInitShape<I>,
  signal: AbortSignal,
  peer: Peer = 'agent',
  /** Sent as the request's timeout: the server ends the call itself once it passes. */
  timeoutMs?: number,
): Promise<MessageShape<O>> {
  try {
    return await rpc.call(method, create(method.input, input), { signal, timeoutMs });
  } catch (err) {
    throw toHullError(method.name, err, peer);
  }
}

/**
 * The one place wire statuses become hull errors, for the agent and the monitor alike. A hull
 * process's UNAVAILABLE already says which VM ended and how; the agent's is its channel gone.
 */
export function toHullError(method: string, err: unknown, peer: Peer = 'agent'): unknown {
  if (!(err instanceof TtrpcError)) return err;
  switch (err.code) {
    case Code.NOT_FOUND:
      return new HullError('ERR_NOT_FOUND', err.message, { cause: err });
    case Code.ALREADY_EXISTS:
      return new HullError('ERR_EXISTS', err.message, { cause: err });
    case Code.FAILED_PRECONDITION:
      return new HullError('ERR_STATE', err.message, { cause: err });
    case Code.UNIMPLEMENTED:
      return new HullError('ERR_UNSUPPORTED', err.message, { cause: err });
    case Code.INVALID_ARGUMENT:
      return new HullError('ERR_CONFIG', err.message, { cause: err });
    case Code.UNAVAILABLE:
      if (peer === 'host') return new HullError('ERR_VM_EXITED', err.message, { cause: err });
      return new HullError('ERR_VM_EXITED', `the guest agent is gone (${method}): ${err.message}`, {
        cause: err,
      });
    default:
      return new HullError('ERR_AGENT', err.message, { cause: err });
  }
}
