import { readFile } from 'node:fs/promises';
import { identityOf, isAlive, type ProcessIdentity } from '../../sys/process-identity.js';
import { sleep } from '../../util/deadline.js';

/** The kernel's name of hull-share-server (a process name is cut at 15 bytes). */
const SHARE_SERVER_COMM = 'hull-share-serv';

/**
 * How often a VM's share server is checked on. Nothing else would notice its death: the FUSE
 * mount it served stays, and only the guest's next file access fails ("Transport endpoint is
 * not connected"). One read of /proc/<pid>/stat a second costs nothing.
 */
const CHECK_INTERVAL_MS = 1000;
/** How long after QEMU's connection its share server may still be unnamed (not yet exec'd). */
const SERVER_NAMED_WITHIN_MS = 1000;

/** The hull-share-server that hull-jail started for the VMM `pid` (its child). */
export async function shareServerOf(pid: number): Promise<number | undefined> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  for (const child of children.split(/\s+/).filter(Boolean).map(Number)) {
    const comm = await readFile(`/proc/${child}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === SHARE_SERVER_COMM) return child;
  }
  return undefined;
}

/** A VM's share server, watched (watchShareServer). */
export interface ShareServerWatch {
  server: ProcessIdentity;
  /**
   * Checks on the server now rather than at the next tick. A VM's teardown does: its guest may
   * have met the loss first (a container whose files went away ends), and the VM must still be
   * named lost for it, not stopped by hull.
   */
  checkNow(): void;
}

/**
 * Watches the share server of the VMM `vmmPid` (by its identity, so a reused pid is not taken
 * for it) until `until` settles; calls `onLost` once if it dies while the VMM lives. Undefined
 * when the VMM has no server.
 */
export async function watchShareServer(
  vmmPid: number,
  until: Promise<unknown>,
  onLost: (server: ProcessIdentity) => void,
  options: { expected: boolean; signal: AbortSignal },
): Promise<ShareServerWatch | undefined> {
  const vmm = identityOf(vmmPid);
  let pid = await shareServerOf(vmmPid);
  // hull-jail forks the server before it becomes QEMU, and the child takes the server's name
  // at its exec: looked for as soon as QEMU has connected, it may not be named yet.
  const lookUntil = Date.now() + SERVER_NAMED_WITHIN_MS;
  while (pid === undefined && options.expected && Date.now() < lookUntil && !options.signal.aborted) {
    await sleep(2, options.signal).catch(() => {});
    pid = await shareServerOf(vmmPid);
  }
  const server = pid === undefined ? undefined : identityOf(pid);
  if (!server || !vmm) return undefined;
  let done = false;
  const check = () => {
    if (done || isAlive(server)) return;
    done = true;
    clearInterval(timer);
    // The server also dies when the VMM does (its parent-death signal): then the VMM's end is
    // the news, and its own exit says it.
    if (isAlive(vmm)) onLost(server);
  };
  const timer = setInterval(check, CHECK_INTERVAL_MS);
  timer.unref();
  void until.finally(() => {
    done = true;
    clearInterval(timer);
  });
  return { server, checkNow: check };
}
