import { readFileSync } from 'node:fs';
import { AgentService, Health } from '../../src/gen/hull/agent/v1/agent_pb.js';
import { TtrpcServer } from '../../src/ttrpc/server.js';
import { childProcess } from './builtins.js';
import { delegateControllers } from './cgroups.js';
import { AGENT_PORT_NAME, findPort, openPort } from './channel.js';
import { BUNDLES, Containers } from './containers.js';
import { toStatus } from './errors.js';
import { leaveFreePagesUnreported, loadDriversOfDevices, reportsFreePages } from './kernel-modules.js';
import { guestLogger, setDebug } from './log.js';
import { Reaper } from './reaper.js';
import { hasWritableRootDisk } from './rootfs-disks.js';
import { agentService, healthService } from './service.js';
import { syscalls } from './syscalls.js';
import { warmUpCreatePath } from './warm-up.js';

/**
 * hull's guest agent. hull-init (PID 1) starts it once the guest is up; it serves the host
 * over the virtio-serial port and exits when the host hangs up or destroys the sandbox, after
 * which hull-init powers the VM off. An orphaned VM therefore never outlives its host process.
 */
const log = guestLogger('agent');

export async function startAgent(): Promise<void> {
  const cmdline = readFileSync('/proc/cmdline', 'utf8');
  setDebug(/(^|\s)hull\.debug(\s|$)/.test(cmdline));
  if (!reportsFreePages(cmdline)) leaveFreePagesUnreported();
  log.debug('agent started', { nodeStartupMs: Math.round(performance.now()) });
  // Loaded now, at boot, rather than at their first use: a VM template is saved after this, so
  // its clones wake with both loaded instead of each loading them (the addon's dlopen, the
  // child_process modules) under software emulation in its first requests.
  syscalls();
  childProcess();
  // A modprobe of its own meanwhile; awaited before the first answer (see loadDriversOfDevices).
  const drivers = loadDriversOfDevices(hasWritableRootDisk);
  await delegateControllers();
  const reaper = new Reaper();
  reaper.listen(process.env.HULL_REAPER_FD ? Number(process.env.HULL_REAPER_FD) : undefined);
  const containers = new Containers(reaper);
  containers.startSpawner();
  const shutdown = () => process.exit(0);
  const server = new TtrpcServer(toStatus)
    .register(Health, healthService())
    .register(AgentService, agentService(containers, shutdown));
  const warmStart = performance.now();
  await warmUpCreatePath(BUNDLES).catch((err: unknown) => {
    log.warn('warming up the create path failed', { error: (err as Error).message });
  });
  log.debug('create path warmed up', { ms: Math.round(performance.now() - warmStart) });
  await drivers;
  const port = await openPort(await findPort(AGENT_PORT_NAME));
  port.on('end', () => {
    log.warn('the host hung up; shutting down');
    shutdown();
  });
  server.serve(port);
  log.debug('serving');
}
