import { access, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { HullError } from '../errors.js';
import { defaultSpec } from '../oci/default-spec.js';

export function registerSpec(program: Command): void {
  program
    .command('spec')
    .description('write a starting config.json into a bundle directory')
    .option('-b, --bundle <dir>', 'the bundle directory', '.')
    .action(async (options: { bundle: string }) => {
      const path = join(resolve(options.bundle), 'config.json');
      if (
        await access(path).then(
          () => true,
          () => false,
        )
      ) {
        throw new HullError('ERR_EXISTS', `${path} already exists: remove it first`);
      }
      await writeFile(path, `${JSON.stringify(defaultSpec(), null, 2)}\n`);
    });
}
