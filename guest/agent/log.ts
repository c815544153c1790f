/**
 * The agent's log: JSON lines on stderr, which is the guest console and ends up in the
 * sandbox's console log on the host. The console is an emulated UART and slow, so only
 * warnings and errors are written unless the kernel command line says `hull.debug`.
 */
import { readFileSync } from 'node:fs';

type Level = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = ORDER.warn;

export function setDebug(on: boolean): void {
  threshold = on ? ORDER.debug : ORDER.warn;
}

function write(level: Level, scope: string, msg: string, fields?: Record<string, unknown>): void {
  if (ORDER[level] < threshold) return;
  // Guest uptime, not wall-clock time: it lines log lines up with the kernel's own.
  const uptime = readFileSync('/proc/uptime', 'utf8').split(' ')[0];
  process.stderr.write(`${JSON.stringify({ level, uptime, scope, msg, ...fields })}\n`);
}

export function guestLogger(scope: string) {
  return {
    debug: (msg: string, fields?: Record<string, unknown>) => write('debug', scope, msg, fields),
    info: (msg: string, fields?: Record<string, unknown>) => write('info', scope, msg, fields),
    warn: (msg: string, fields?: Record<string, unknown>) => write('warn', scope, msg, fields),
    error: (msg: string, fields?: Record<string, unknown>) => write('error', scope, msg, fields),
  };
}
