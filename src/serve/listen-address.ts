import { HullError } from '../errors.js';

export const DEFAULT_API_SOCKET = '/run/hull/api.sock';

export type ListenAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** `unix:PATH` or `HOST:PORT` (`[::1]:PORT` for IPv6), as `hull serve --listen` takes it. */
export function parseListenAddress(raw: string): ListenAddress {
  if (raw.startsWith('unix:')) {
    const path = raw.slice('unix:'.length);
    if (!path.startsWith('/')) {
      throw new HullError('ERR_USAGE', `--listen ${raw}: give the socket as an absolute path, unix:/PATH`);
    }
    return { kind: 'unix', path };
  }
  const match = /^(?:\[(?<v6>[0-9a-fA-F:.]+)\]|(?<host>[A-Za-z0-9.-]+)):(?<port>[0-9]{1,5})$/.exec(raw);
  const port = Number(match?.groups?.port);
  if (!match?.groups || !(port > 0 && port < 65536)) {
    throw new HullError('ERR_USAGE', `--listen ${raw}: write unix:/PATH or HOST:PORT (e.g. 127.0.0.1:8080)`);
  }
  return { kind: 'tcp', host: match.groups.v6 ?? match.groups.host!, port };
}
