import { randomUUID } from 'node:crypto';
import { constants } from 'node:os';
import { Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { type HullError, isHullError, messageOf } from '../errors.js';
import { logger } from '../log.js';
import { AttachedProcess } from '../sandbox/attached-process.js';
import { containerDir } from '../sandbox/container-id.js';
import { MonitorClient } from '../sandbox/monitor-client.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';
import type { WatchEvent, WatchMessage } from './api-session-types.js';
import { BoundedText } from './guest-process.js';
import type { SandboxRecord } from './sandbox-records.js';

/** inotify's mask bits (linux/inotify.h) that hull-watch reports. */
const IN = {
  MODIFY: 0x2,
  ATTRIB: 0x4,
  MOVED_FROM: 0x40,
  MOVED_TO: 0x80,
  CREATE: 0x100,
  DELETE: 0x200,
  DELETE_SELF: 0x400,
  MOVE_SELF: 0x800,
  Q_OVERFLOW: 0x4000,
  IGNORED: 0x8000,
  ISDIR: 0x40000000,
} as const;

/** A record is a hex mask, a tab and a name (at most NAME_MAX bytes); anything longer is not one. */
const MAX_RECORD_BYTES = 512;

/**
 * `files.watch`: a directory of the container watched with inotify by the guest's hull-watch,
 * which resolves the path inside the container's mount namespace (so `..` and symlinks stay
 * in the container). Its records are parsed here as hostile input: each bounded, the stream
 * paced by the WebSocket (the guest holds what is unread, and inotify reports an overflow
 * past its own queue), every event checked before it is sent on.
 */
export class FileWatches {
  constructor(private readonly settings: RuntimeSettings) {}

  async attach(record: SandboxRecord, path: string, ws: WebSocket): Promise<void> {
    const sandboxId = record.sandboxId;
    let monitor: MonitorClient | undefined;
    let stop: (() => void) | undefined;
    let closed = false;
    ws.once('close', () => {
      closed = true;
      stop?.();
    });
    try {
      monitor = await MonitorClient.connect(containerDir(this.settings, sandboxId), sandboxId, signalFor());
      const ref = { containerId: sandboxId, execId: randomUUID() };
      await monitor.agent.watchPath(ref, path, signalFor());
      const stderr = new BoundedText(4096);
      const watcher = new AttachedProcess(
        monitor.agent,
        ref,
        { stdout: eventSink(path, ws), stderr },
        new Promise(() => {}),
      );
      const agent = monitor.agent;
      // The watch lasts as long as its WebSocket, however soon that closes.
      stop = () =>
        void agent.signalProcess(ref, constants.signals.SIGKILL, { signal: signalFor() }).catch(() => {});
      if (closed) stop();
      const exit = await watcher.exit;
      if (ws.readyState !== ws.OPEN) return;
      if (exit.status === 0) send(ws, { type: 'end' });
      else if (exit.status === 2) send(ws, errorOf('ERR_NOT_FOUND', `${shown(path)}: no such directory`));
      else if (exit.status === 3) send(ws, errorOf('ERR_CONFIG', `${shown(path)}: not a directory`));
      else if (exit.status === 4)
        send(
          ws,
          errorOf(
            'ERR_UNSUPPORTED',
            `${shown(path)} is on a file system where inotify sees no change (the sandbox's 9p root): watch a tmpfs (e.g. /dev/shm) or a block root`,
          ),
        );
      else if (exit.status !== 128 + constants.signals.SIGKILL) {
        const said = stderr.text().trim().split('\n').pop()?.slice(0, 300) || `exit ${exit.status}`;
        send(ws, errorOf('ERR_AGENT', `watching ${shown(path)} failed: ${said}`));
      }
      ws.close(1000, 'watch ended');
    } catch (err) {
      const error = isHullError(err) ? err : undefined;
      if (!error) logger('serve').error({ err: messageOf(err) }, 'watching failed');
      const unsupported = error?.code === 'ERR_UNSUPPORTED';
      send(
        ws,
        errorOf(
          error?.code ?? 'ERR_INTERNAL',
          unsupported
            ? "the sandbox's guest image cannot watch files: rebuild it (`hull image build`)"
            : messageOf(err).split('\n')[0]!,
        ),
      );
      ws.close(1011, 'watch failed');
    } finally {
      monitor?.close();
    }
  }
}

const signalFor = () => AbortSignal.timeout(30_000);

function errorOf(code: HullError['code'] | string, message: string): WatchMessage {
  return { type: 'error', error: { code, message } };
}

function send(ws: WebSocket, message: WatchMessage, done?: (err?: Error) => void): void {
  if (ws.readyState !== ws.OPEN) {
    done?.();
    return;
  }
  ws.send(JSON.stringify(message), done);
}

function shown(path: string): string {
  return JSON.stringify(path.slice(0, 200));
}

/** hull-watch's NUL-ended records as WebSocket messages, each sent before the next is read. */
function eventSink(dir: string, ws: WebSocket): Writable {
  let pending: Buffer = Buffer.alloc(0);
  return new Writable({
    highWaterMark: 16 * 1024,
    write(chunk: Buffer, _encoding, callback) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      const messages: WatchMessage[] = [];
      for (let end = pending.indexOf(0); end >= 0; end = pending.indexOf(0)) {
        const message = parseRecord(dir, pending.subarray(0, end));
        if (message) messages.push(message);
        pending = pending.subarray(end + 1);
      }
      if (pending.length > MAX_RECORD_BYTES) {
        // Not a record hull-watch writes: drop it, and say events may be missing.
        pending = Buffer.alloc(0);
        messages.push({ type: 'overflow' });
      }
      if (messages.length === 0) return callback();
      messages.forEach((message, i) => {
        send(ws, message, i === messages.length - 1 ? () => callback() : undefined);
      });
    },
  });
}

/** One record as a message; undefined for what is not reported (the end marker). */
export function parseRecord(dir: string, record: Buffer): WatchMessage | undefined {
  if (record.length > MAX_RECORD_BYTES) return { type: 'overflow' };
  const tab = record.indexOf(9);
  const maskText = record.subarray(0, tab).toString('latin1');
  if (tab < 1 || !/^[0-9a-f]{1,8}$/.test(maskText)) return { type: 'overflow' };
  const mask = Number.parseInt(maskText, 16);
  const name = record.subarray(tab + 1).toString('utf8');
  if (mask === 0) return { type: 'ready' };
  if (mask & IN.Q_OVERFLOW) return { type: 'overflow' };
  if (mask & IN.IGNORED) return undefined;
  if (name.includes('/')) return { type: 'overflow' };
  const type: WatchEvent['type'] | undefined =
    mask & (IN.CREATE | IN.MOVED_TO)
      ? 'create'
      : mask & (IN.DELETE | IN.DELETE_SELF)
        ? 'remove'
        : mask & (IN.MOVED_FROM | IN.MOVE_SELF)
          ? 'rename'
          : mask & IN.MODIFY
            ? 'write'
            : mask & IN.ATTRIB
              ? 'chmod'
              : undefined;
  if (!type) return undefined;
  const base = dir.endsWith('/') ? dir : `${dir}/`;
  return {
    type: 'event',
    event: { type, name, path: name ? `${base}${name}` : dir, isDir: Boolean(mask & IN.ISDIR) },
  };
}
