import { registerCreate } from './create.js';
import { registerMonitorHelper } from './monitor-helper.js';
import { registerRun } from './run.js';
import type { Register } from './verbs.js';

/**
 * The verbs of the container program (container-main.ts), by the words in CONTAINER_WORDS that
 * name them: the very registrations the full program loads for these words (verbs.ts).
 */
export const CONTAINER_VERBS: Readonly<Record<string, Register>> = {
  run: registerRun,
  create: registerCreate,
  _monitor: registerMonitorHelper,
};
