import { resolve } from 'node:path';
import { Command, CommanderError } from 'commander';
import { CONFIG_ENV, loadConfigFile } from '../config/config-file.js';
import { setting } from '../config/settings.js';
import { HullError, messageOf } from '../errors.js';
import { configureLogging, logger } from '../log.js';
import { defaultRuntimeRoot } from '../paths.js';
import { VERSION } from '../version.js';
import type { GlobalOptions } from './global-options.js';
import { printErr, printOut } from './print.js';
import type { Register } from './verbs.js';

function program(verbs: readonly Register[]): Command {
  const cmd = new Command('hull')
    .description('a secure container runtime: every container in its own lightweight VM')
    .version(VERSION, '-v, --version')
    .option(
      '--root <dir>',
      'directory for the state of containers (default: $HULL_ROOT or /run/hull)',
      defaultRuntimeRoot(),
    )
    .option('--config <file>', 'configuration file (default: $HULL_CONFIG or /etc/hull/config.toml)')
    .option('--log <file>', 'write log lines to this file')
    .option('--log-format <format>', 'text or json (default: log.format of the configuration, or text)')
    .option('--debug', 'log debug messages and boot guests verbosely')
    .option(
      '--systemd-cgroup',
      'accepted for runc compatibility: a slice:prefix:name cgroupsPath is placed where systemd puts the scope',
    )
    .showHelpAfterError(false)
    // Options after a verb's arguments belong to the container's command (exec ID sh -c …).
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: printOut, writeErr: printErr, outputError: () => {} });
  cmd.hook('preAction', async (_this, action) => {
    const globals = action.optsWithGlobals<GlobalOptions>();
    // Helpers hold the caller's stdout and stderr for the container: they log to --log only.
    const helper = action.name().startsWith('_');
    if (globals.log || (globals.debug && !helper)) {
      await configureLogging({
        destination: globals.log ?? 2,
        level: globals.debug ? 'debug' : (setting('logLevel') as 'debug' | 'info' | 'warn' | 'error'),
        format: (globals.logFormat ?? setting('logFormat')) === 'json' ? 'json' : 'text',
      });
    }
  });
  for (const register of verbs) register(cmd);
  return cmd;
}

/**
 * The value of a global option (before the verb), found without commander: --config before
 * parsing (the file's settings are the defaults commander shows; helpers and monitors started
 * later inherit it through HULL_CONFIG), --root after a failure, to count it.
 */
function globalFlag(argv: string[], name: '--config' | '--root'): string | undefined {
  let found: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === name) found = argv[++i];
    else if (arg.startsWith(`${name}=`)) found = arg.slice(name.length + 1);
    else if (!arg.startsWith('-')) break;
    else if (['--config', '--root', '--log', '--log-format'].includes(arg)) i++;
  }
  return found;
}

/** Counts a failed verb for `hull metrics` (see metrics/failure-counts.ts), briefly. */
async function count(argv: string[], code: string): Promise<void> {
  let root: string;
  try {
    root = globalFlag(argv, '--root') ?? defaultRuntimeRoot();
  } catch {
    return;
  }
  const { countFailure } = await import('../metrics/failure-counts.js');
  await countFailure(root, code, AbortSignal.timeout(2000));
}

/**
 * Runs the command line `argv` with the verbs `verbsFor` gives for it. Every failure ends as one
 * line on stderr (and in the log), and a non-zero exit.
 */
export async function runCli(
  argv: string[],
  verbsFor: (argv: string[]) => Promise<Register[]>,
): Promise<void> {
  try {
    // Before the program is built: its defaults (--root) come from the settings.
    const named = globalFlag(argv, '--config');
    if (named) process.env[CONFIG_ENV] = resolve(named);
    loadConfigFile();
    await program(await verbsFor(argv)).parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.exitCode === 0) return;
      printErr(`hull: ${err.message.replace(/^error: /, '')}\n`);
      process.exitCode = 2;
      await count(argv, 'ERR_USAGE');
      return;
    }
    const message = messageOf(err);
    const code = err instanceof HullError ? err.code : 'ERR_INTERNAL';
    logger('cli').error({ code }, message);
    printErr(`hull: ${message}\n`);
    if (!(err instanceof HullError)) logger('cli').debug({ stack: (err as Error)?.stack }, 'stack');
    process.exitCode = 1;
    await count(argv, code);
  }
}
