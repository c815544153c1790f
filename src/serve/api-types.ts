/**
 * The API's types: what `hull serve` accepts and answers, and what the SDK (src/sdk/) sends
 * and reads. Types only, so that the SDK imports nothing of the runtime. The JSON Schemas that
 * check them at run time are in api-schemas.ts; the two are kept side by side by the tests.
 */

/** Stable error codes: hull's own (src/errors.ts) and those of the API's edge. */
export type ApiErrorCode =
  | 'ERR_VALIDATION'
  | 'ERR_UNAUTHORIZED'
  | 'ERR_TOO_LARGE'
  /** 429: a limit of the server (live sandboxes, commands of a sandbox): retry later. */
  | 'ERR_LIMIT'
  /** 503 with Retry-After: the server has as much in hand as it takes: retry shortly. */
  | 'ERR_BUSY'
  | 'ERR_ROUTE'
  | 'ERR_NOT_FOUND'
  | 'ERR_EXISTS'
  | 'ERR_STATE'
  /** 409: a paused sandbox's saved state was refused (damaged, foreign); it stays paused. */
  | 'ERR_SAVED_STATE'
  | 'ERR_CONFIG'
  | 'ERR_REGISTRY'
  | 'ERR_UNSUPPORTED'
  | 'ERR_NO_NETWORK'
  | 'ERR_INTERNAL'
  | (string & {});

/** Every 4xx and 5xx answer's body. */
export interface ApiError {
  error: { code: ApiErrorCode; message: string };
}

export type NetworkMode = 'none' | 'internet';

export interface CreateSandboxRequest {
  /** A container image reference: `registry/name:tag` or `…@sha256:…`. Or `fromSnapshot`. */
  image?: string;
  /**
   * A snapshot (sandbox.snapshot()) the sandbox starts from, running as its sandbox was at the
   * snapshot: its image, size and network are the snapshot's (cpus, memoryMiB, diskMiB and
   * network, if given, must be the same).
   */
  fromSnapshot?: string;
  cpus?: number;
  memoryMiB?: number;
  /** The size of the sandbox's writable disk: what it can write in its filesystem, in MiB. */
  diskMiB?: number;
  env?: Record<string, string>;
  metadata?: Record<string, string>;
  /** Time to live from now; the server kills the sandbox when it is over. */
  timeoutMs?: number;
  network?: NetworkMode;
}

/** What a sandbox and a snapshot of it both have: the image and size it was made with. */
export interface MadeWith {
  image: string;
  imageDigest: string;
  cpus?: number;
  memoryMiB?: number;
  diskMiB: number;
  env: Record<string, string>;
  metadata: Record<string, string>;
  network: NetworkMode;
  createdAt: string;
}

export interface SandboxInfo extends MadeWith {
  sandboxId: string;
  /** While paused, when it would expire if resumed now (its time to live does not run). */
  expiresAt: string;
  /** `paused`: saved to disk (sandbox.pause()), no VM running; resume brings it back. */
  status: 'running' | 'stopped' | 'paused';
}

export interface SandboxList {
  sandboxes: SandboxInfo[];
}

/** sandbox.fork(): how many running copies to make (1 to LIMITS.maxForks). */
export interface ForkRequest {
  count: number;
}

export interface CreateSnapshotRequest {
  metadata?: Record<string, string>;
}

/** A running sandbox's saved state, which sandboxes start from (Sandbox.create fromSnapshot). */
export interface SnapshotInfo extends MadeWith {
  snapshotId: string;
  /** The sandbox it was taken of (which may be gone since). */
  sandboxId: string;
  /** The saved VM's size on disk (its memory and devices), without the disk's copy. */
  bytes: number;
}

export interface SnapshotList {
  snapshots: SnapshotInfo[];
}

export interface SetTimeoutRequest {
  timeoutMs: number;
}

export interface StartCommandRequest {
  /** A string is run by `/bin/sh -c`; an array is the argv itself. */
  cmd: string | string[];
  cwd?: string;
  env?: Record<string, string>;
  /** `uid`, `uid:gid`, or `root`. */
  user?: string;
  /** Whether stdin is sent over the stream; otherwise the process reads /dev/null. */
  stdin?: boolean;
  timeoutMs?: number;
  background?: boolean;
}

export interface StartCommandResponse {
  commandId: string;
  pid: number;
}

/**
 * The command stream (WebSocket): the server sends binary frames whose first byte is the
 * stream (STREAM_STDOUT, STREAM_STDERR) and the rest its bytes, in the order written, then one
 * text frame `CommandExitMessage`. The client sends binary frames (stdin bytes) and text
 * frames `CommandClientMessage`.
 */
export const STREAM_STDOUT = 1;
export const STREAM_STDERR = 2;

export interface CommandExitMessage {
  type: 'exit';
  exitCode: number;
  /** The command's timeoutMs ran out and it was killed. */
  timedOut?: boolean;
}

export type CommandClientMessage = { type: 'stdin-end' } | { type: 'kill' };

export interface FileEntry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
}

export interface FileList {
  entries: FileEntry[];
}

/** A port of the sandbox to reach from the host (`sandbox.ports.url`). */
export interface PortRequest {
  port: number;
}

export interface PortUrl {
  port: number;
  /** `http://HOST:PORT`, no trailing slash: a listener on the host joined to the sandbox's port. */
  url: string;
}

export interface ExistsResponse {
  exists: boolean;
}

export interface PathRequest {
  path: string;
}

export interface ContainerImageInfo {
  digest: string;
  references: string[];
  pulledAt: string;
  sizeBytes: number;
}
