import type { Command } from 'commander';
import { HullError } from '../errors.js';
import {
  defaultMemoryMiB,
  defaultVcpus,
  sandboxBase,
  templateKeyFor,
  templating,
} from '../sandbox/runtime.js';
import { ensureTemplate } from '../template/clone.js';
import { listTemplates, liveTemplate, removeTemplate } from '../template/store.js';
import type { GlobalOptions } from './global-options.js';
import { formatTable, listFormat } from './output-format.js';

function wholeNumber(value: string, what: string, min: number, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HullError(
      'ERR_USAGE',
      `${what} ${value} is not valid: give a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

export function registerTemplate(program: Command): void {
  const template = program
    .command('template')
    .description('make, list and remove the booted VM templates sandboxes are cloned from');
  template
    .command('build')
    .description(
      'make the template for sandboxes of a size (made on first use otherwise); one is kept per size, network card count, image and QEMU',
    )
    .option('--vcpus <n>', 'vCPUs (default: the vm.vcpus setting)')
    .option('--memory <mib>', 'memory in MiB (default: the vm.memory_mib setting)')
    .option(
      '--nics <n>',
      'network cards: sandboxes that take over a network namespace have one per interface',
      '0',
    )
    .option('--force', 'make it again even if it is there')
    .action(
      async (
        options: { vcpus?: string; memory?: string; nics: string; force?: boolean },
        command: Command,
      ) => {
        if (!templating()) {
          throw new HullError(
            'ERR_USAGE',
            'templating is off (HULL_TEMPLATE=off or vm.template = false, or the debug console is on): turn it on to make templates',
          );
        }
        const vcpus = options.vcpus ? wholeNumber(options.vcpus, '--vcpus', 1, 64) : defaultVcpus();
        const memoryMiB = options.memory
          ? wholeNumber(options.memory, '--memory', 128, 262_144)
          : defaultMemoryMiB();
        const nics = wholeNumber(options.nics, '--nics', 0, 4);
        const notice = (line: string) => process.stderr.write(`${line}\n`);
        const signal = AbortSignal.timeout(600_000);
        const base = await sandboxBase(
          { debug: command.optsWithGlobals<GlobalOptions>().debug ?? false, notice },
          signal,
        );
        const { key, shape } = await templateKeyFor(base, { vcpus, memoryMiB, nics });
        if (options.force) await removeTemplate(key);
        const existing = await liveTemplate(key);
        const record =
          existing ??
          (await ensureTemplate(key, shape, { ...base.templates!, buildTimeoutMs: 600_000, signal }));
        process.stderr.write(
          `template ${key}: ${vcpus} vCPU, ${memoryMiB} MiB, ${nics} network card${nics === 1 ? '' : 's'}, ${
            existing ? 'already made' : `made in ${(record.buildMs / 1000).toFixed(1)} s`
          } (device state ${(record.stateBytes / 1024).toFixed(0)} KiB, memory held by pid ${record.memory.pid})\n`,
        );
      },
    );
  template
    .command('list')
    .alias('ls')
    .description('list the templates, what they were made for, and the memory each holds')
    .option('-f, --format <format>', 'table or json', 'table')
    .action(async (options: { format: string }) => {
      const format = listFormat(options.format);
      const templates = await listTemplates();
      if (format === 'json') {
        process.stdout.write(`${JSON.stringify(templates)}\n`);
        return;
      }
      const rows = [['KEY', 'VCPUS', 'MEMORY', 'NICS', 'ACCEL', 'CPU', 'IMAGE', 'BUILT', 'HELD']];
      for (const t of templates) {
        rows.push([
          t.key,
          String(t.vcpus),
          `${t.memoryMiB} MiB`,
          String(t.nics),
          t.accel,
          t.cpuModel,
          t.imageHash,
          t.builtAt,
          t.residentBytes === undefined ? 'gone (made again on next use)' : mib(t.residentBytes),
        ]);
      }
      process.stdout.write(formatTable(rows));
    });
  template
    .command('rm')
    .description('remove templates (running clones keep their memory); the next start makes them again')
    .argument('[key...]', 'the templates to remove, as `hull template list` shows them')
    .option('-a, --all', 'remove every template')
    .action(async (keys: string[], options: { all?: boolean }) => {
      const known = await listTemplates();
      if (options.all) keys = known.map((t) => t.key);
      else if (!keys.length) throw new HullError('ERR_USAGE', 'name the templates to remove, or give --all');
      for (const key of keys) {
        if (!known.some((t) => t.key === key)) {
          throw new HullError(
            'ERR_NOT_FOUND',
            `template ${key} does not exist: \`hull template list\` shows them`,
          );
        }
      }
      for (const key of keys) await removeTemplate(key);
    });
}
