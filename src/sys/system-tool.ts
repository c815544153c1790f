import { accessSync, constants } from 'node:fs';

/**
 * Where hull looks for the host programs it runs (nsenter, ip, tc, mount, unshare, QEMU). Not
 * PATH: CRI-O starts a handler's conmon, and so hull, with no PATH at all (runc needs none
 * either), and what runs as root then does not depend on the caller's PATH.
 */
export const SYSTEM_TOOL_DIRS: readonly string[] = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

const resolved = new Map<string, string | undefined>();

/** The absolute path of a system program, looked up once per process; undefined if not installed. */
export function findSystemTool(name: string): string | undefined {
  if (!resolved.has(name)) {
    resolved.set(
      name,
      SYSTEM_TOOL_DIRS.map((dir) => `${dir}/${name}`).find((path) => {
        try {
          accessSync(path, constants.X_OK);
          return true;
        } catch {
          return false;
        }
      }),
    );
  }
  return resolved.get(name);
}

/**
 * The absolute path of a system program, or its bare name when it is not installed, so the
 * command that runs it fails with "NAME is not installed" (sys/exec.ts) naming the program.
 */
export function systemTool(name: string): string {
  return findSystemTool(name) ?? name;
}
