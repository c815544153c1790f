import { connect, createServer, isIPv6, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { HullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import type { SandboxRecord } from './sandbox-records.js';

/** Connections one port's proxy carries at once; more wait in the listen backlog. */
const MAX_CONNECTIONS_PER_PORT = 1024;
/** How long reaching the sandbox's port may take before the client's connection is dropped. */
const CONNECT_TIMEOUT_MS = 10_000;

const log = logger('serve');

/**
 * `sandbox.ports.url(port)`: a TCP listener of the server's on the host (127.0.0.1 unless
 * serve.ports_host says otherwise) whose every connection is joined to the port on the
 * sandbox's address. A proxy in the server rather than a DNAT rule: a DNAT to a loopback
 * listener would need route_localnet, which opens 127.0.0.0/8 to the network; and a proxy
 * connects from the host, which the sandbox answers as any connection the host made (the
 * firewall lets only such answers in). The host port is kept in the sandbox's record, so a
 * restarted server listens on it again; while no server runs, the URL does not answer.
 */
export class SandboxPorts {
  private readonly listeners = new Map<string, Map<number, Server>>();

  constructor(private readonly host: string) {}

  /** The URL of a port of the sandbox, made on the first request; `record.ports` is updated. */
  async url(record: SandboxRecord, port: number): Promise<string> {
    const open = this.listeners.get(record.sandboxId)?.get(port);
    if (open) return this.urlOf(open);
    const server = await this.listen(record, port, 0);
    record.ports = { ...record.ports, [String(port)]: portOf(server) };
    return this.urlOf(server);
  }

  /** Listens again on the recorded host ports of a sandbox (a restarted server). */
  async restore(record: SandboxRecord): Promise<void> {
    for (const [port, hostPort] of Object.entries(record.ports ?? {})) {
      try {
        await this.listen(record, Number(port), hostPort);
      } catch (err) {
        log.warn(
          { sandbox: record.sandboxId, port, hostPort, err: messageOf(err) },
          "a port's host port is taken: its URL is made again on request",
        );
        const { [port]: _gone, ...rest } = record.ports ?? {};
        record.ports = rest;
      }
    }
  }

  closeAll(sandboxId: string): void {
    for (const server of this.listeners.get(sandboxId)?.values() ?? []) server.close();
    this.listeners.delete(sandboxId);
  }

  close(): void {
    for (const id of [...this.listeners.keys()]) this.closeAll(id);
  }

  private async listen(record: SandboxRecord, port: number, hostPort: number): Promise<Server> {
    const target = record.internet;
    if (!target) throw new HullError('ERR_INTERNAL', `sandbox ${record.sandboxId} has no address`);
    const server = createServer({ allowHalfOpen: true }, (client) => join(client, target.address, port));
    server.maxConnections = MAX_CONNECTIONS_PER_PORT;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port: hostPort }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) =>
      log.warn({ sandbox: record.sandboxId, port, err: err.message }, 'port proxy'),
    );
    const ports = this.listeners.get(record.sandboxId) ?? new Map<number, Server>();
    this.listeners.set(record.sandboxId, ports);
    ports.set(port, server);
    return server;
  }

  private urlOf(server: Server): string {
    const unspecified = this.host === '0.0.0.0' || this.host === '::';
    const host = unspecified ? hostname() : isIPv6(this.host) ? `[${this.host}]` : this.host;
    return `http://${host}:${portOf(server)}`;
  }
}

function portOf(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address ? address.port : 0;
}

/** Joins a client's connection to the sandbox's port, each side's end and reset passed on. */
function join(client: Socket, address: string, port: number): void {
  const upstream = connect({ host: address, port, allowHalfOpen: true });
  upstream.setTimeout(CONNECT_TIMEOUT_MS, () => upstream.destroy());
  upstream.once('connect', () => upstream.setTimeout(0));
  client.pipe(upstream);
  upstream.pipe(client);
  const destroy = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', destroy);
  upstream.on('error', destroy);
  client.on('close', destroy);
  upstream.on('close', destroy);
}
