/**
 * The API's types for terminals, commands found again, file metadata and limits: what
 * `hull serve` accepts and answers beside api-types.ts, imported by the SDK as types only.
 */

/** A terminal's size in character cells. */
export interface PtySize {
  cols: number;
  rows: number;
}

export interface StartPtyRequest extends PtySize {
  /** What runs on the terminal: an argv; `/bin/sh` by default. */
  cmd?: string[];
  cwd?: string;
  env?: Record<string, string>;
  /** `uid`, `uid:gid`, or `root`. */
  user?: string;
}

/**
 * What the client sends on a command's (or a terminal's) stream as text frames, beside
 * binary frames of input: the end of input, a kill, a terminal's new size.
 */
export type StreamClientMessage = { type: 'stdin-end' } | { type: 'kill' } | ({ type: 'resize' } & PtySize);

export interface CommandInfo {
  commandId: string;
  pid: number;
  cmd: string[];
  background: boolean;
  pty: boolean;
  startedAt: string;
  status: 'running' | 'exited';
  exitCode?: number;
  /** A stream is attached now (another client cannot attach until it closes). */
  attached: boolean;
  /**
   * The server that started it was stopped or killed while it ran, and this one follows it
   * again: output the guest still held is all here, but what the old server had read and not
   * yet sent may be missing.
   */
  outputMayBeIncomplete?: boolean;
}

export interface CommandList {
  commands: CommandInfo[];
}

export interface FileStat {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'other';
  size: number;
  /** Permission bits, e.g. 0o644 (as a number: 420). */
  mode: number;
  uid: number;
  gid: number;
  modifiedAt: string;
  /** Where a symlink points (the link itself is described, not followed). */
  symlinkTarget?: string;
}

export interface RenameRequest {
  from: string;
  to: string;
}

/** A change in a watched directory (`files.watch`); `name` is '' for the directory itself. */
export interface WatchEvent {
  type: 'create' | 'write' | 'remove' | 'rename' | 'chmod';
  name: string;
  path: string;
  isDir: boolean;
}

/**
 * What a watch's WebSocket carries, as text frames: `ready` once the watch is in place, then
 * events; `overflow` when some were lost (the guest's queue filled); `end` when the directory
 * went away; `error` when the watch could not be made or failed.
 */
export type WatchMessage =
  | { type: 'ready' }
  | { type: 'event'; event: WatchEvent }
  | { type: 'overflow' }
  | { type: 'end' }
  | { type: 'error'; error: { code: string; message: string } };
