import { createRequire } from 'node:module';
import { join } from 'node:path';
import { HullError } from '../errors.js';

/**
 * The longest ID: it must fit one file name (255 bytes) wherever it becomes one, on the host
 * and in the guest (crun's state, the share), with room for a prefix. Docker, podman and
 * Kubernetes use 64.
 */
const MAX_ID_BYTES = 200;
/** What runc accepts: letters, digits, and _ + - . (no slash, so no path tricks). */
const ID_PATTERN = /^[A-Za-z0-9_+.-]+$/;

export function validateContainerId(id: string): string {
  if (!id) throw new HullError('ERR_INVALID_ID', 'the container ID is empty: give an ID after the options');
  if (Buffer.byteLength(id) > MAX_ID_BYTES) {
    throw new HullError(
      'ERR_INVALID_ID',
      `the container ID is ${Buffer.byteLength(id)} bytes long: use at most ${MAX_ID_BYTES}`,
    );
  }
  if (id === '.' || id === '..' || id.includes('..')) {
    throw new HullError(
      'ERR_INVALID_ID',
      `invalid container ID ${JSON.stringify(id.slice(0, 64))}: it must not contain ".."`,
    );
  }
  if (id.startsWith('-')) {
    throw new HullError(
      'ERR_INVALID_ID',
      `invalid container ID ${JSON.stringify(id.slice(0, 64))}: it must not start with "-", which commands take for an option`,
    );
  }
  if (!ID_PATTERN.test(id)) {
    throw new HullError(
      'ERR_INVALID_ID',
      `invalid container ID ${JSON.stringify(id.slice(0, 64))}: use only letters, digits and _ + - .`,
    );
  }
  return id;
}

/**
 * The directory name for an ID. IDs may be up to 200 bytes, but a unix socket path holds 107 (the VM's sockets live in this directory, under runtime
 * roots like Docker's that are long already), so IDs over 32 characters, such as Docker's
 * 64-hex ones, are stored under a short hash of themselves. The state file keeps the ID.
 */
export function idDirectoryName(id: string): string {
  return id.length <= 32 ? id : `id-${sha256Hex(id).slice(0, 24)}`;
}

/** node:crypto, loaded by the first long ID: `hull state` of a short one does without it. */
let crypto: typeof import('node:crypto') | undefined;

function sha256Hex(text: string): string {
  crypto ??= createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** The directory of a container's state under the runtime root. */
export function containerDir(settings: { root: string }, id: string): string {
  return join(settings.root, idDirectoryName(id));
}
