import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { HullError } from '../errors.js';
import type { ApiErrorCode } from './api-types.js';

/**
 * The API's authentication, in one place. On the unix socket the file's mode (0600) is the
 * check: only its owner can connect. On TCP every request, WebSocket upgrades included, carries
 * `Authorization: Bearer TOKEN`, the token read from a file at start (never a flag, which
 * `ps` shows). Compared by digest, in constant time.
 */
export function requireToken(
  token: string,
  refuse: (reply: FastifyReply, code: ApiErrorCode, message: string) => unknown,
) {
  const expected = createHash('sha256').update(token).digest();
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const given = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
    const matches = timingSafeEqual(createHash('sha256').update(given).digest(), expected);
    if (!matches) {
      return refuse(
        reply,
        'ERR_UNAUTHORIZED',
        'missing or wrong bearer token: send Authorization: Bearer TOKEN',
      );
    }
  };
}

/** The shortest token accepted: a guessable one protects nothing. */
const MIN_TOKEN_CHARS = 16;

export async function readTokenFile(path: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(path, 'utf8')).trim();
  } catch (err) {
    throw new HullError('ERR_CONFIG', `cannot read the token file ${path}: ${(err as Error).message}`);
  }
  if (token.length < MIN_TOKEN_CHARS || /\s/.test(token)) {
    throw new HullError(
      'ERR_CONFIG',
      `the token in ${path} must be one word of at least ${MIN_TOKEN_CHARS} characters: e.g. \`openssl rand -hex 32 > ${path}\``,
    );
  }
  return token;
}
