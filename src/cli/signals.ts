import { constants } from 'node:os';
import { HullError } from '../errors.js';

/** Parses a signal as runc does: a number, or a name with or without SIG (TERM, SIGTERM). */
export function parseSignal(text: string | undefined): number {
  if (text === undefined || text === '') return constants.signals.SIGTERM;
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n > 0 && n <= 64) return n;
  } else {
    const name = text.toUpperCase().startsWith('SIG') ? text.toUpperCase() : `SIG${text.toUpperCase()}`;
    const n = (constants.signals as Record<string, number>)[name];
    if (n !== undefined) return n;
  }
  throw new HullError(
    'ERR_USAGE',
    `unknown signal ${JSON.stringify(text)}: give a name like TERM or KILL, or a number`,
  );
}

/** Signals hull passes on to the container's process while it waits for it, as runc does. */
export const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;

/** Calls `handler` for each forwarded signal this process receives; returns the unsubscribe. */
export function forwardSignals(handler: (signalNumber: number, name: NodeJS.Signals) => void): () => void {
  const listener = (name: NodeJS.Signals) => handler(constants.signals[name], name);
  for (const sig of FORWARDED_SIGNALS) process.on(sig, listener);
  return () => {
    for (const sig of FORWARDED_SIGNALS) process.off(sig, listener);
  };
}
