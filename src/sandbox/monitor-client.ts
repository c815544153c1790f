import { join } from 'node:path';
import type { DescMessage, DescMethodUnary, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import { AgentClient, callMapped } from '../agent/client.js';
import { HullError } from '../errors.js';
import { Monitor } from '../gen/hull/monitor/v1/monitor_pb.js';
import { connectUnix } from '../sys/unix-socket.js';
import { TtrpcClient } from '../ttrpc/client.js';
import { MONITOR_SOCKET } from './monitor-socket.js';

/** A command-line verb's connection to a container's monitor. */
export class MonitorClient {
  private constructor(
    private readonly rpc: TtrpcClient,
    /** The guest agent's API, passed through the monitor. */
    readonly agent: AgentClient,
  ) {}

  static async connect(dir: string, id: string, signal: AbortSignal): Promise<MonitorClient> {
    const path = join(dir, MONITOR_SOCKET);
    const [control, agentChannel] = await Promise.all([
      connectUnix(path, signal),
      connectUnix(path, signal),
    ]).catch((err: unknown) => {
      throw new HullError('ERR_STATE', `container ${id} is not running (its monitor does not answer)`, {
        cause: err,
      });
    });
    return new MonitorClient(new TtrpcClient(control), new AgentClient(agentChannel));
  }

  start = (signal: AbortSignal) => this.call(Monitor.method.start, {}, signal);
  kill = (signalNumber: number, all: boolean, signal: AbortSignal) =>
    this.call(Monitor.method.kill, { signal: signalNumber, all }, signal);
  pause = (signal: AbortSignal) => this.call(Monitor.method.pause, {}, signal);
  resume = (signal: AbortSignal) => this.call(Monitor.method.resume, {}, signal);
  update = (resources: unknown, signal: AbortSignal) =>
    this.call(Monitor.method.update, { resourcesJson: Buffer.from(JSON.stringify(resources)) }, signal);
  processes = async (signal: AbortSignal) => (await this.call(Monitor.method.processes, {}, signal)).pids;
  shutdown = (signal: AbortSignal) => this.call(Monitor.method.shutdown, {}, signal);
  saveVm = (dir: string, signal: AbortSignal, options: { keepRunning?: boolean } = {}) =>
    this.call(Monitor.method.saveVm, { dir, keepRunning: options.keepRunning === true }, signal);

  close(): void {
    this.rpc.close();
    this.agent.close();
  }

  private call<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    input: MessageInitShape<I>,
    signal: AbortSignal,
  ): Promise<MessageShape<O>> {
    return callMapped(this.rpc, method, input, signal, 'host');
  }
}
