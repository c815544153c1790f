import { readFileSync } from 'node:fs';
import { parse, TomlError } from 'smol-toml';
import { HullError } from '../errors.js';
import { checkFileValue, type FileType, fileKeys, type SettingName, useConfigFile } from './settings.js';

/** Where hull looks for its configuration when neither --config nor HULL_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = '/etc/hull/config.toml';
export const CONFIG_ENV = 'HULL_CONFIG';

/**
 * Reads hull's TOML configuration and puts its values under the environment and flags (see
 * settings.ts). The file is `path`, else $HULL_CONFIG, else /etc/hull/config.toml, which may
 * be absent; one that was named must exist. An unknown key, a value of the wrong type or out
 * of range is one line naming the key and the file, so a typo never passes as a default.
 */
export function loadConfigFile(path?: string, env: NodeJS.ProcessEnv = process.env): void {
  const named = path ?? (env[CONFIG_ENV] || undefined);
  const file = named ?? DEFAULT_CONFIG_FILE;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (!named && (err as NodeJS.ErrnoException).code === 'ENOENT') {
      useConfigFile(undefined);
      return;
    }
    const code = (err as NodeJS.ErrnoException).code;
    throw new HullError(
      'ERR_CONFIG',
      code === 'ENOENT'
        ? `the configuration file ${file} does not exist: create it, or name another with --config or ${CONFIG_ENV}`
        : `cannot read the configuration file ${file}: ${code ?? (err as Error).message}`,
    );
  }
  useConfigFile({ path: file, values: parseConfig(text, file) });
}

/** The checked settings a configuration file's text sets. */
export function parseConfig(text: string, file: string): Map<SettingName, string> {
  let document: Record<string, unknown>;
  try {
    document = parse(text) as Record<string, unknown>;
  } catch (err) {
    const where = err instanceof TomlError ? ` (line ${err.line}, column ${err.column})` : '';
    const first = ((err as Error).message.split('\n')[0] ?? '').trim();
    throw new HullError('ERR_CONFIG', `${file} is not valid TOML${where}: ${first}`);
  }
  const known = new Map(fileKeys().map((k) => [k.key, k]));
  const values = new Map<SettingName, string>();
  for (const [key, value] of flatten(document)) {
    const entry = known.get(key);
    if (!entry) {
      throw new HullError(
        'ERR_CONFIG',
        `${file}: unknown key ${key}: known keys are ${[...known.keys()].join(', ')}`,
      );
    }
    values.set(
      entry.name,
      checkFileValue(entry.name, asText(value, entry.type, `${file}: ${key}`), `${file}: ${key}`),
    );
  }
  return values;
}

/** `{ vm: { vcpus: 2 } }` as [["vm.vcpus", 2]]; tables are walked, every other value is a leaf. */
function flatten(table: Record<string, unknown>, prefix = ''): [string, unknown][] {
  return Object.entries(table).flatMap(([key, value]) =>
    value !== null && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)
      ? flatten(value as Record<string, unknown>, `${prefix}${key}.`)
      : [[`${prefix}${key}`, value] as [string, unknown]],
  );
}

function asText(value: unknown, type: FileType, where: string): string {
  const wrong = (what: string) => new HullError('ERR_CONFIG', `${where} must be ${what}`);
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw wrong('a string');
      return value;
    case 'integer':
      if (typeof value !== 'number' && typeof value !== 'bigint') throw wrong('a whole number');
      return String(value);
    case 'number-or-auto':
      if (typeof value === 'number' || typeof value === 'bigint') return String(value);
      if (value === 'auto') return value;
      throw wrong('a number of seconds or "auto"');
    case 'switch':
      if (typeof value !== 'boolean') throw wrong('true or false');
      return value ? 'on' : 'off';
  }
}
