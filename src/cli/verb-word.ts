/** The global options (before the verb) that take a value. */
const VALUED_GLOBALS = ['--root', '--config', '--log', '--log-format'];

/**
 * The word naming the verb in `argv` (node, script, then runc-style global options before
 * it); undefined when there is none or help is asked for before it, and '' when the version
 * is, which needs no verb.
 */
export function verbWord(argv: readonly string[]): string | undefined {
  for (let i = 2; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return undefined;
    if (arg === '-v' || arg === '--version') return '';
    if (VALUED_GLOBALS.includes(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

/**
 * The verbs of the light program (light-program.ts): they read or write a file and print, so
 * they start with commander and their own few modules, from a V8 code cache (entry.ts). The
 * version is light too. Every other word runs the full program.
 */
export const LIGHT_WORDS: readonly string[] = ['', 'list', 'ls', 'state', 'features', 'spec', 'trace'];

/**
 * The verbs of the container program (container-main.ts): those that start a container's VM,
 * from a V8 code cache (entry.ts).
 */
export const CONTAINER_WORDS: readonly string[] = ['run', 'create', '_monitor'];
