import { writeFile } from 'node:fs/promises';
import { AgentError } from './errors.js';

/** Sets sysctls in the agent's own namespaces: `net.ipv4.ip_forward` → /proc/sys/net/ipv4/ip_forward. */
export async function applySysctls(entries: [string, string][]): Promise<void> {
  for (const [key, value] of entries) {
    if (!/^[a-z][\w-]*(\.[\w-]+)+$/.test(key)) {
      throw new AgentError('invalid', `linux.sysctl has an invalid name ${JSON.stringify(key)}`);
    }
    await writeFile(`/proc/sys/${key.replaceAll('.', '/')}`, value).catch((err: NodeJS.ErrnoException) => {
      throw new AgentError(
        'invalid',
        `linux.sysctl ${key}=${value} cannot be set in the guest: ${err.code ?? err.message}`,
      );
    });
  }
}
