import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { type GlobalOptions, settingsFrom } from '../cli/global-options.js';
import { setting } from '../config/settings.js';
import { ContainerImageStore } from '../container-images/store.js';
import { HullError } from '../errors.js';
import { logger } from '../log.js';
import { bridgeNetwork } from '../network/serve-bridge.js';
import { Admission, DEFAULT_ADMISSION } from './admission.js';
import { readTokenFile } from './auth.js';
import { CommandSessions } from './command-sessions.js';
import { hullVerbs } from './container-lifecycle.js';
import { FileMetadata } from './file-metadata.js';
import { FileWatches } from './file-watch.js';
import { type ListenAddress, parseListenAddress } from './listen-address.js';
import { claimRoot } from './root-claim.js';
import { SandboxFiles } from './sandbox-files.js';
import { SandboxNetworks } from './sandbox-network.js';
import { SandboxService } from './sandbox-service.js';
import { buildServer } from './server.js';
import { defaultStartSlots, StartSlots } from './start-slots.js';

export interface ServeOptions {
  listen: string;
  tokenFile?: string;
  maxUploadMib?: string;
  maxSandboxes?: string;
  maxRequests?: string;
  maxStarting?: string;
}

/** A whole-number option of at least 1, or ERR_USAGE naming it. */
function countOption(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    throw new HullError('ERR_USAGE', `${flag} ${value}: give a whole number from 1 to 1000000`);
  }
  return n;
}

/**
 * Connections the kernel queues before the server accepts them: a burst of clients is queued
 * and then answered (or refused with ERR_BUSY), not refused by the kernel (a unix socket's
 * full queue fails a connect at once).
 */
const LISTEN_BACKLOG = 4096;

/** Serves the sandboxes API until SIGTERM or SIGINT; the sandboxes outlive it. */
export async function serve(options: ServeOptions, globals: GlobalOptions): Promise<void> {
  const address = parseListenAddress(options.listen);
  if (address.kind === 'tcp' && !options.tokenFile) {
    throw new HullError(
      'ERR_USAGE',
      `--listen ${options.listen} is TCP, which anyone who reaches the port could use: give --token-file FILE, or listen on unix:/PATH`,
    );
  }
  const maxUploadMib = Number(options.maxUploadMib);
  if (!Number.isInteger(maxUploadMib) || maxUploadMib < 1) {
    throw new HullError(
      'ERR_USAGE',
      `--max-upload-mib ${options.maxUploadMib}: give a whole number of MiB, at least 1`,
    );
  }
  const admission = new Admission({
    ...DEFAULT_ADMISSION,
    maxSandboxes: countOption(options.maxSandboxes, '--max-sandboxes', DEFAULT_ADMISSION.maxSandboxes),
    maxRequests: countOption(options.maxRequests, '--max-requests', DEFAULT_ADMISSION.maxRequests),
  });
  const startSlots = new StartSlots(countOption(options.maxStarting, '--max-starting', defaultStartSlots()));
  const token = options.tokenFile ? await readTokenFile(options.tokenFile) : undefined;
  const settings = settingsFrom(globals);
  const networks = new SandboxNetworks(
    bridgeNetwork(setting('serveBridge'), setting('serveSubnet')),
    settings.root,
    setting('servePortsHost'),
  );
  const sandboxes = new SandboxService(
    settings.root,
    new ContainerImageStore(),
    hullVerbs(globals),
    networks,
    startSlots,
  );
  await sandboxes.recover();
  const commands = new CommandSessions(settings);
  // Commands a killed server left running are followed again (their output waits in the guest),
  // unless another server on this root follows them now.
  if (await claimRoot(settings.root)) {
    // A paused sandbox's commands are followed again when it is resumed.
    const live = (await sandboxes.list()).filter((s) => s.status !== 'paused');
    await commands.recover(live.map((s) => s.sandboxId));
  } else {
    logger('serve').warn({ root: settings.root }, "another hull serve follows this root's commands");
  }
  const app = await buildServer({
    sandboxes,
    commands,
    files: new SandboxFiles(settings),
    metadata: new FileMetadata(settings),
    watches: new FileWatches(settings),
    admission,
    token,
    maxUploadBytes: maxUploadMib * 1024 * 1024,
  });
  await listen(app, address);
  process.stdout.write(`hull serve: listening on ${options.listen}\n`);
  logger('serve').info({ listen: options.listen }, 'serving');
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  // The sandboxes live on (their monitors own their VMs): the next server finds them.
  sandboxes.close();
  await app.close();
  commands.close();
}

async function listen(app: Awaited<ReturnType<typeof buildServer>>, address: ListenAddress): Promise<void> {
  if (address.kind === 'tcp') {
    await app.listen({ host: address.host, port: address.port, backlog: LISTEN_BACKLOG });
    return;
  }
  await mkdir(dirname(address.path), { recursive: true, mode: 0o711 });
  await removeStaleSocket(address.path);
  // Made 0600 from the start: there is no moment when another user could connect.
  const umask = process.umask(0o177);
  try {
    await app.listen({ path: address.path, backlog: LISTEN_BACKLOG });
  } finally {
    process.umask(umask);
  }
  await chmod(address.path, 0o600);
}

/** A socket file nobody answers on is a server's that died; one that answers is a live server's. */
async function removeStaleSocket(path: string): Promise<void> {
  const answered = await new Promise<boolean>((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
  if (answered)
    throw new HullError(
      'ERR_EXISTS',
      `another server is listening on ${path}: stop it, or --listen elsewhere`,
    );
  await unlink(path).catch(() => {});
}
