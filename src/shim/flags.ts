import { parseArgs } from 'node:util';
import { HullError } from '../errors.js';

/** What containerd passes a runtime shim: Go-style flags, then the action. */
export interface ShimFlags {
  namespace: string;
  /** containerd's gRPC socket. */
  address: string;
  publishBinary: string;
  id: string;
  bundle: string;
  debug: boolean;
  /** `start` and `delete` are containerd's; no action runs the long-lived server. */
  action: 'start' | 'delete' | 'serve' | 'version';
}

/**
 * Parses the shim's command line. containerd writes flags Go's way (`-namespace ns`, one
 * dash); they are turned into the standard form and read with node's own parser.
 */
export function parseShimFlags(argv: readonly string[]): ShimFlags {
  const args = argv.map((a) => (/^-[a-z]/.test(a) && !a.startsWith('--') ? `-${a}` : a));
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(args);
  } catch (err) {
    throw new HullError(
      'ERR_USAGE',
      `${(err as Error).message}: containerd-shim-hull-v2 is started by containerd (runtime io.containerd.hull.v2)`,
    );
  }
  const { values, positionals } = parsed;
  if (values.v) return { ...blank(), action: 'version' };
  const action = positionals[0] ?? 'serve';
  if (action !== 'start' && action !== 'delete' && action !== 'serve') {
    throw new HullError(
      'ERR_USAGE',
      `unknown action ${action}: containerd calls the shim with start or delete`,
    );
  }
  if (!values.id) throw new HullError('ERR_USAGE', 'missing -id: containerd passes the task id');
  if (!values.namespace)
    throw new HullError('ERR_USAGE', 'missing -namespace: containerd passes the namespace');
  return {
    namespace: values.namespace,
    address: values.address ?? '',
    publishBinary: values['publish-binary'] ?? '',
    id: values.id,
    bundle: values.bundle ?? process.cwd(),
    debug: values.debug ?? false,
    action,
  };
}

function parse(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: {
      namespace: { type: 'string' },
      address: { type: 'string' },
      'publish-binary': { type: 'string' },
      id: { type: 'string' },
      bundle: { type: 'string' },
      socket: { type: 'string' },
      debug: { type: 'boolean' },
      v: { type: 'boolean' },
    },
  });
}

function blank(): Omit<ShimFlags, 'action'> {
  return { namespace: '', address: '', publishBinary: '', id: '', bundle: '', debug: false };
}

/** The flags again, for the long-lived server that `start` launches (no action: serve). */
export function serveArgs(flags: ShimFlags): string[] {
  const args = ['-namespace', flags.namespace, '-address', flags.address, '-id', flags.id];
  if (flags.publishBinary) args.push('-publish-binary', flags.publishBinary);
  args.push('-bundle', flags.bundle);
  if (flags.debug) args.push('-debug');
  return args;
}
