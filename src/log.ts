import type { DestinationStream } from 'pino';

/**
 * hull's structured logger. Each subsystem logs through a named child (`log.child({ scope })`),
 * so one switch shows or hides a subsystem. Lines follow the OCI runtime convention
 * (`{"level":"error","msg":"…","time":"RFC 3339"}`) that podman and containerd parse to show a
 * runtime's last error. Logging is off unless a destination is configured, and pino is loaded
 * only then: a command that logs nothing does not pay for evaluating it.
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  isLevelEnabled(level: string): boolean;
  child(bindings: Record<string, unknown>): Logger;
}

interface LogFn {
  (fields: object, message?: string): void;
  (message: string): void;
}

/** The logger until one is configured: it drops every line. */
const SILENT: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  isLevelEnabled: () => false,
  child: () => SILENT,
};

let root: Logger = SILENT;

/** Where log lines go when a path or fd will not do (the shim's FIFO to containerd). */
export interface LineSink {
  write(line: string): void;
}

export interface LogOptions {
  /** A file path, a file descriptor (2 for stderr), or a sink of lines. */
  destination: string | number | LineSink;
  level: 'debug' | 'info' | 'warn' | 'error';
  /** json: {"level","msg","time"} lines; text: time="…" level=… msg="…" (runc's text form). */
  format?: 'json' | 'text';
}

/** One JSON log line as runc's text form: time, level and msg first, then the rest. */
export function toTextLine(json: string): string {
  const entry = JSON.parse(json) as Record<string, unknown>;
  const quote = (v: unknown) => JSON.stringify(typeof v === 'string' ? v : JSON.stringify(v));
  const { time, level, msg, ...rest } = entry;
  const fields = [`time=${quote(time)}`, `level=${String(level)}`, `msg=${quote(msg)}`];
  for (const [k, v] of Object.entries(rest)) fields.push(`${k}=${quote(v)}`);
  return `${fields.join(' ')}\n`;
}

export async function configureLogging(options: LogOptions): Promise<void> {
  // The default export: what an ES module (and esbuild's chunks) sees of pino's CommonJS module.
  const { default: pino } = await import('pino');
  const textDestination = (dest: string | number): DestinationStream => {
    const out = pino.destination({ dest, sync: true, mkdir: true });
    return { write: (line: string) => out.write(toTextLine(line)) };
  };
  root = pino(
    {
      level: options.level,
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    typeof options.destination === 'object'
      ? options.destination
      : options.format === 'text'
        ? textDestination(options.destination)
        : pino.destination({ dest: options.destination, sync: true, mkdir: true }),
  );
}

export function logger(scope: string): Logger {
  // A proxy-free child per call: cheap, and picks up configureLogging() done earlier.
  return root.child({ scope });
}
