import { HullError } from '../errors.js';

/**
 * Every wait in hull takes an AbortSignal and a deadline. `deadlineSignal` joins a caller's
 * signal with a timeout so each wait needs one signal; the timeout's reason is a HullError
 * with the code and message the caller chose, so an expired wait explains itself.
 */
export function deadlineSignal(
  ms: number,
  onTimeout: () => HullError,
  parent?: AbortSignal,
): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(onTimeout()), ms);
  timer.unref();
  const onParentAbort = () => controller.abort(parent?.reason);
  if (parent) {
    if (parent.aborted) controller.abort(parent.reason);
    else parent.addEventListener('abort', onParentAbort, { once: true });
  }
  return {
    signal: controller.signal,
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
    },
  };
}

/**
 * `signal` or a timeout of `ms`, whichever comes first (the timeout's reason a TimeoutError),
 * as AbortSignal.any([signal, AbortSignal.timeout(ms)]) would be, but kept until it fires: in
 * Node 20 that joined signal holds its sources only weakly, and AbortSignal.timeout's timer its
 * signal weakly too, so a garbage collection before the time was up dropped the timeout and a
 * wait on it had no end. Here the timer holds the returned signal.
 */
export function withTimeout(signal: AbortSignal, ms: number): AbortSignal {
  const controller = new AbortController();
  const onAbort = () => {
    clearTimeout(timer);
    controller.abort(signal.reason);
  };
  const timer = setTimeout(() => {
    signal.removeEventListener('abort', onAbort);
    controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }, ms);
  // Like AbortSignal.timeout's: the timeout alone does not keep the process alive.
  timer.unref();
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  return controller.signal;
}

/** The error an aborted signal stands for. */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new HullError('ERR_ABORTED', `operation aborted${reason ? `: ${String(reason)}` : ''}`);
}

/** Settles with `promise`, or rejects as soon as `signal` aborts. */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Resolves after `ms`, or rejects when `signal` aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Waits for `promise`, but no longer than `ms`: its value, or undefined once the time is up
 * (a rejection counts as undefined too). For waits whose end is best effort, such as draining.
 */
export async function settledWithin<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  const done = new AbortController();
  try {
    return await Promise.race([
      promise.catch(() => undefined),
      sleep(ms, done.signal).then(
        () => undefined,
        () => undefined,
      ),
    ]);
  } finally {
    done.abort();
  }
}
