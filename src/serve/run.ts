import { chmod, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { type GlobalOptions, settingsFrom } from '../cli/global-options.js';
import { setting } from '../config/settings.js';
import { ContainerImageStore } from '../container-images/store.js';
import { HullError } from '../errors.js';
import { logger } from '../log.js';
import { bridgeNetwork } from '../network/serve-bridge.js';
import { readTokenFile } from './auth.js';
import { CommandSessions } from './command-sessions.js';
import { hullVerbs } from './container-lifecycle.js';
import { type ListenAddress, parseListenAddress } from './listen-address.js';
import { SandboxFiles } from './sandbox-files.js';
import { SandboxNetworks } from './sandbox-network.js';
import { SandboxService } from './sandbox-service.js';
import { buildServer } from './server.js';

export interface ServeOptions {
  listen: string;
  tokenFile?: string;
  maxUploadMib?: string;
}

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
    hullVerbs(settings),
    networks,
  );
  await sandboxes.recover();
  const app = await buildServer({
    sandboxes,
    commands: new CommandSessions(settings),
    files: new SandboxFiles(settings),
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
}

async function listen(app: Awaited<ReturnType<typeof buildServer>>, address: ListenAddress): Promise<void> {
  if (address.kind === 'tcp') {
    await app.listen({ host: address.host, port: address.port });
    return;
  }
  await mkdir(dirname(address.path), { recursive: true, mode: 0o711 });
  await removeStaleSocket(address.path);
  // Made 0600 from the start: there is no moment when another user could connect.
  const umask = process.umask(0o177);
  try {
    await app.listen({ path: address.path });
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
