import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setting } from './config/settings.js';

/**
 * Where hull keeps things. Two roots, as runc and Kata do:
 *  - the runtime root (`--root`, default /run/hull): one directory per sandbox, gone with it;
 *  - the state directory (HULL_STATE_DIR, default /var/lib/hull): the guest image cache,
 *    which outlives sandboxes and reboots.
 */
export const DEFAULT_RUNTIME_ROOT = '/run/hull';

/** The runtime root when no --root is given: $HULL_ROOT (for callers that pass none), or /run/hull. */
export function defaultRuntimeRoot(): string {
  return setting('root');
}

export function stateDir(): string {
  return resolve(setting('stateDir'));
}

export function imagesDir(): string {
  return join(stateDir(), 'images');
}

/** Where container images are kept (not the guest image: see src/image/). */
export function containerImagesDir(): string {
  return join(stateDir(), 'container-images');
}

/** The repository (or installed package) root, found from this file's location in dist/. */
export function installRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  // dist/src/paths.js or dist/bundle/hull.mjs: walk up to the folder holding package.json.
  for (let i = 0; i < 4; i++) {
    if (dir.endsWith('/dist')) return dirname(dir);
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
}

export function agentBundlePath(): string {
  return join(installRoot(), 'dist', 'bundle', 'agent.cjs');
}

export function guestImageSourceDir(): string {
  return join(installRoot(), 'guest', 'image');
}
