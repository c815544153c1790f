import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { INPUT_LIMITS } from '../oci/input-limits.js';
import { clip } from '../oci/shape.js';
import { checkResourcesShape } from '../oci/spec-schema.js';
import { requireAllowed } from '../sandbox/state.js';
import { readRegularFile } from '../sys/regular-file.js';
import { withContainer, withMonitor } from './container-ref.js';
import type { GlobalOptions } from './global-options.js';

export function registerUpdate(program: Command): void {
  program
    .command('update')
    .description("change the container's resource limits (runtime-spec LinuxResources JSON)")
    .argument('<container-id>')
    .requiredOption('-r, --resources <file>', "a JSON file, or '-' for stdin")
    .action(async (id: string, options: { resources: string }, command: Command) => {
      const text =
        options.resources === '-'
          ? await readStdin()
          : await readRegularFile(options.resources, {
              maxBytes: INPUT_LIMITS.processBytes,
              why: 'resources are far smaller',
              code: 'ERR_CONFIG',
              missing: 'does not exist: name a runtime-spec LinuxResources JSON file',
            });
      let resources: unknown;
      try {
        resources = JSON.parse(text);
      } catch (err) {
        throw new HullError(
          'ERR_CONFIG',
          `the resources are not valid JSON: ${clip((err as Error).message, 200)}`,
        );
      }
      checkResourcesShape(resources, options.resources === '-' ? 'the resources' : options.resources);
      await withContainer(command.optsWithGlobals<GlobalOptions>(), id, async (ref) => {
        requireAllowed(ref.id, ref.state.status, 'update');
        await withMonitor(ref, (monitor) => monitor.update(resources, AbortSignal.timeout(30_000)));
      });
    });
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length > INPUT_LIMITS.processBytes) {
      throw new HullError(
        'ERR_CONFIG',
        `the resources on stdin are larger than ${INPUT_LIMITS.processBytes} bytes`,
      );
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}
