import type { PortUrl } from '../serve/api-types.js';
import type { Connection } from './connection.js';

/** `sandbox.ports`: TCP ports the sandbox listens on, reached from the server's host. */
export class Ports {
  constructor(
    private readonly connection: Connection,
    private readonly sandboxId: string,
  ) {}

  /**
   * A base URL, `http://HOST:PORT` with no trailing slash, on the server's host that reaches
   * `port` in the sandbox; made on the first call (later calls give the same), gone with the
   * sandbox. A sandbox made with network 'none' is refused with ERR_NO_NETWORK.
   *
   *   const base = await sandbox.ports.url(8080);
   *   await fetch(`${base}/health`);
   */
  async url(port: number): Promise<string> {
    const answer = await this.connection.json<PortUrl>('POST', `/v1/sandboxes/${this.sandboxId}/ports`, {
      port,
    });
    return answer.url;
  }
}
