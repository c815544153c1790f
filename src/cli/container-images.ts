import type { Command } from 'commander';
import { ContainerImageStore } from '../container-images/store.js';
import { readRecords } from '../serve/sandbox-records.js';
import { readSnapshotRecords } from '../serve/snapshot-records.js';
import { type GlobalOptions, settingsFrom } from './global-options.js';
import { formatTable, outputFormat } from './output-format.js';

/** `hull container-images`: the images pulled for `hull serve`'s sandboxes (not the guest image). */
export function registerContainerImages(program: Command): void {
  const images = program
    .command('container-images')
    .description("container images pulled for `hull serve`'s sandboxes (the guest image is `hull image`)");
  images
    .command('list')
    .description('list pulled images: digest, size, references')
    .option('--output <format>', 'text or json', 'text')
    .action(async (options: { output: string }) => {
      const format = outputFormat(options.output);
      const listed = await new ContainerImageStore().list();
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify(listed, null, 2)}\n`);
        return;
      }
      const rows = listed.map((image) => [
        image.digest.slice(0, 19),
        `${(image.sizeBytes / 1024 / 1024).toFixed(1)} MiB`,
        image.pulledAt,
        image.references.join(', '),
      ]);
      process.stdout.write(formatTable([['DIGEST', 'SIZE', 'PULLED', 'REFERENCES'], ...rows]));
    });
  images
    .command('pull')
    .description('pull an image into the cache (sandboxes pull on first use anyway)')
    .argument('<reference>')
    .action(async (reference: string) => {
      const image = await new ContainerImageStore().pull(reference, AbortSignal.timeout(15 * 60_000));
      process.stdout.write(`${image.digest}\n`);
    });
  images
    .command('prune')
    .description('remove every pulled image no sandbox or snapshot under --root was made from')
    .action(async (_options: unknown, command: Command) => {
      const root = settingsFrom(command.optsWithGlobals<GlobalOptions>()).root;
      const { records } = await readRecords(root);
      const snapshots = (await readSnapshotRecords(root)).records;
      const inUse = new Set([...records, ...snapshots].map((r) => r.imageDigest));
      const removed = await new ContainerImageStore().prune(inUse);
      for (const digest of removed) process.stdout.write(`${digest}\n`);
    });
}
