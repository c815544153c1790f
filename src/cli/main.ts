import { Command, CommanderError } from 'commander';
import { HullError, messageOf } from '../errors.js';
import { configureLogging, logger } from '../log.js';
import { DEFAULT_RUNTIME_ROOT } from '../paths.js';
import type { GlobalOptions } from './global-options.js';
import { registerImage } from './image.js';
import { registerRun } from './run.js';

export const VERSION = '0.1.0';

function program(): Command {
  const cmd = new Command('hull')
    .description('a secure container runtime: every container in its own lightweight VM')
    .version(VERSION, '-v, --version')
    .option('--root <dir>', 'directory for the state of containers', DEFAULT_RUNTIME_ROOT)
    .option('--log <file>', 'write log lines to this file')
    .option('--log-format <format>', 'text or json', 'text')
    .option('--debug', 'log debug messages and boot guests verbosely')
    .option('--systemd-cgroup', 'accepted for runc compatibility: guests manage their own cgroups')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  cmd.hook('preAction', (_this, action) => {
    const globals = action.optsWithGlobals<GlobalOptions>();
    if (globals.log || globals.debug) {
      configureLogging({ destination: globals.log ?? 2, level: globals.debug ? 'debug' : 'info' });
    }
  });
  registerRun(cmd);
  registerImage(cmd);
  return cmd;
}

/** Every failure ends as one line on stderr (and in the log), and a non-zero exit. */
async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return;
      process.stderr.write(`hull: ${err.message.replace(/^error: /, '')}\n`);
      process.exitCode = 2;
      return;
    }
    const message = messageOf(err);
    logger('cli').error({ code: err instanceof HullError ? err.code : 'ERR_INTERNAL' }, message);
    process.stderr.write(`hull: ${message}\n`);
    if (!(err instanceof HullError)) logger('cli').debug({ stack: (err as Error)?.stack }, 'stack');
    process.exitCode = 1;
  }
}

await main(process.argv);
