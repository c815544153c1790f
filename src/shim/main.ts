import { loadConfigFile } from '../config/config-file.js';
import { isHullError, messageOf } from '../errors.js';
import { closeInheritedDescriptors } from '../sys/inherited-fds.js';
import { VERSION } from '../version.js';
import { deleteShim } from './delete.js';
import { parseShimFlags } from './flags.js';
import { taskRole } from './pod-identity.js';
import { serveShim } from './serve.js';
import { readBundleSpec, startShim } from './start.js';

/**
 * containerd-shim-hull-v2: how containerd (and Kubernetes through its CRI plugin) runs hull.
 * `start` prints the address of the pod's shim server, `delete` cleans up after a shim that
 * is gone, and with no action this is the server itself (launched by `start`).
 */
async function main(argv: string[]): Promise<number> {
  const flags = parseShimFlags(argv);
  loadConfigFile();
  switch (flags.action) {
    case 'version':
      process.stdout.write(`containerd-shim-hull-v2:\n  Version: ${VERSION}\n`);
      return 0;
    case 'start':
      process.stdout.write(await startShim(flags));
      return 0;
    case 'delete':
      process.stdout.write(await deleteShim(flags));
      return 0;
    case 'serve': {
      const role = taskRole(flags.id, await readBundleSpec(flags.bundle));
      await serveShim(flags, role.podId);
      return -1;
    }
  }
}

closeInheritedDescriptors();
main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    // containerd shows this output when start fails: one line that says what is wrong.
    process.stderr.write(`containerd-shim-hull-v2: ${messageOf(err)}\n`);
    process.exitCode = isHullError(err, 'ERR_USAGE') ? 2 : 1;
  },
);
