import { DEFAULT_RUNTIME_ROOT } from '../paths.js';
import type { RuntimeSettings } from '../sandbox/runtime.js';

/** The runc-style global flags every verb accepts. */
export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat?: 'text' | 'json';
  config?: string;
  debug?: boolean;
  systemdCgroup?: boolean;
}

export function settingsFrom(globals: GlobalOptions): RuntimeSettings {
  return { root: globals.root || DEFAULT_RUNTIME_ROOT, debug: Boolean(globals.debug) };
}
