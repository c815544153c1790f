import { registerFeatures } from './features.js';
import { registerList } from './list.js';
import { registerSpec } from './spec.js';
import { registerState } from './state.js';
import { registerTrace } from './trace.js';
import type { Register } from './verbs.js';

/**
 * The verbs of the light program (light-main.ts), by the words in LIGHT_WORDS that name them:
 * the very registrations the full program loads for these words (verbs.ts).
 */
export const LIGHT_VERBS: Readonly<Record<string, Register>> = {
  list: registerList,
  ls: registerList,
  state: registerState,
  features: registerFeatures,
  spec: registerSpec,
  trace: registerTrace,
};
