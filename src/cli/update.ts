import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { requireAllowed } from '../sandbox/state.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

export function registerUpdate(program: Command): void {
  program
    .command('update')
    .description("change the container's resource limits (runtime-spec LinuxResources JSON)")
    .argument('<container-id>')
    .requiredOption('-r, --resources <file>', "a JSON file, or '-' for stdin")
    .action(async (id: string, options: { resources: string }, command: Command) => {
      const text = options.resources === '-' ? await readStdin() : await readFile(options.resources, 'utf8');
      let resources: unknown;
      try {
        resources = JSON.parse(text);
      } catch (err) {
        throw new HullError('ERR_CONFIG', `the resources are not valid JSON: ${(err as Error).message}`);
      }
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'update');
        await withMonitor(ref, (monitor) => monitor.update(resources, AbortSignal.timeout(30_000)));
      });
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
