import { HullError } from '../errors.js';

export type OutputFormat = 'text' | 'json';

/** The `--output` value of a reporting verb (check, env), or a one-line usage error. */
export function outputFormat(value: string): OutputFormat {
  if (value !== 'text' && value !== 'json') {
    throw new HullError('ERR_USAGE', `unknown output format ${value}: use text or json`);
  }
  return value;
}

export type ListFormat = 'table' | 'json';

/**
 * The `--format` value of a listing verb (list, ps, image list, template list), or a one-line
 * usage error: checked before the verb does any work.
 */
export function listFormat(value: string): ListFormat {
  if (value !== 'table' && value !== 'json') {
    throw new HullError('ERR_USAGE', `unknown format ${value}: use table or json`);
  }
  return value;
}

/** Rows as aligned columns, three spaces apart, one line each. */
export function formatTable(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('   ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
