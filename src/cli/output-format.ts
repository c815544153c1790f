import { HullError } from '../errors.js';

export type OutputFormat = 'text' | 'json';

/** The `--output` value of a reporting verb (check, env), or a one-line usage error. */
export function outputFormat(value: string): OutputFormat {
  if (value !== 'text' && value !== 'json') {
    throw new HullError('ERR_USAGE', `unknown output format ${value}: use text or json`);
  }
  return value;
}
