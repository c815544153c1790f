import { type Logger, pino } from 'pino';

/**
 * hull's structured logger. Each subsystem logs through a named child (`log.child({ scope })`),
 * so one switch shows or hides a subsystem. Lines follow the OCI runtime convention
 * (`{"level":"error","msg":"…","time":"RFC 3339"}`) that podman and containerd parse to show a
 * runtime's last error. Logging is off unless a destination is configured.
 */
let root: Logger = pino({ level: 'silent' });

export interface LogOptions {
  /** A file path, or a file descriptor (2 for stderr). */
  destination: string | number;
  level: 'debug' | 'info' | 'warn' | 'error';
}

export function configureLogging(options: LogOptions): void {
  root = pino(
    {
      level: options.level,
      base: undefined,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: options.destination, sync: true, mkdir: true }),
  );
}

export function logger(scope: string): Logger {
  // A proxy-free child per call: cheap, and picks up configureLogging() done earlier.
  return root.child({ scope });
}
