import { join } from 'node:path';
import { logger } from '../log.js';
import { installRoot } from '../paths.js';

/**
 * Gives the kernel back what this process keeps and no longer uses, for a long-lived process
 * that has just gone idle, through the addon src/sys/malloc-trim/hull-malloc-trim.c: V8's
 * memory pressure notification (a full collection that also releases its pooled pages), then
 * glibc's malloc_trim(0) (free pages inside malloc's heaps). An idle container's monitor holds
 * about 1 MiB less. Nothing happens where the addon is missing or does not load (another libc,
 * a build without it).
 */
export function trimMalloc(): boolean {
  if (addon === undefined) addon = loadAddon();
  return addon?.trim() ?? false;
}

interface MallocTrimAddon {
  trim(): boolean;
}

let addon: MallocTrimAddon | null | undefined;

export function mallocTrimAddonPath(): string {
  return join(installRoot(), 'dist', 'native', 'hull-malloc-trim.node');
}

function loadAddon(): MallocTrimAddon | null {
  const module = { exports: {} as MallocTrimAddon };
  try {
    process.dlopen(module, mallocTrimAddonPath());
    return module.exports;
  } catch (err) {
    logger('malloc-trim').debug({ err: (err as Error).message }, 'malloc_trim addon not loaded');
    return null;
  }
}

/** How long a process stays without requests before it is trimmed. */
const IDLE_MS = 5_000;
/** How soon after `soon()` the trim runs: the drops of one flood are given back together. */
const SOON_MS = 200;

/**
 * Trims once a process has been idle IDLE_MS since its last `busy()`: each call pushes the trim
 * back. The timer never keeps the process alive.
 */
export class TrimWhenIdle {
  private timer: NodeJS.Timeout | undefined;
  private soonTimer: NodeJS.Timeout | undefined;

  /**
   * Trims within SOON_MS, whatever the traffic: for memory that just became garbage in bulk
   * (a connection cut with megabytes of an unfinished request), which V8 may otherwise keep
   * until its next full collection. At most one is pending, so a flood of drops costs one
   * collection per SOON_MS.
   */
  soon(): void {
    if (this.soonTimer !== undefined) return;
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      trimMalloc();
    }, SOON_MS);
    this.soonTimer.unref();
  }

  busy(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => trimMalloc(), IDLE_MS);
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
    clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
  }
}
