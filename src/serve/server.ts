import type { Readable } from 'node:stream';
import websocket from '@fastify/websocket';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { WebSocket } from 'ws';
import { HullError, isHullError } from '../errors.js';
import { logger } from '../log.js';
import { Admission, DEFAULT_ADMISSION } from './admission.js';
import { API_ROUTES, type ApiRoute } from './api-routes.js';
import { schemas } from './api-schemas.js';
import type { RenameRequest, StartPtyRequest } from './api-session-types.js';
import type {
  ApiErrorCode,
  CreateSandboxRequest,
  CreateSnapshotRequest,
  ForkRequest,
  PathRequest,
  PortRequest,
  SetTimeoutRequest,
  StartCommandRequest,
} from './api-types.js';
import { requireToken } from './auth.js';
import type { CommandSessions } from './command-sessions.js';
import type { FileMetadata } from './file-metadata.js';
import type { FileWatches } from './file-watch.js';
import { DEFAULT_MAX_UPLOAD_BYTES } from './limits.js';
import { OPENAPI_PATH, openApiDocument } from './openapi.js';
import type { SandboxFiles } from './sandbox-files.js';
import type { SandboxService } from './sandbox-service.js';

/** The largest JSON body; files come as streams, bounded by `maxUploadBytes`. */
export const MAX_JSON_BODY_BYTES = 1024 * 1024;
/** The largest WebSocket message a client may send (stdin comes in pieces of its choosing). */
const MAX_WS_MESSAGE_BYTES = 1024 * 1024;
/** How long a refused upload's connection stays open for its answer to be read. */
const LINGER_MS = 2000;

export interface ServerParts {
  sandboxes: SandboxService;
  commands: CommandSessions;
  files: SandboxFiles;
  metadata: FileMetadata;
  watches: FileWatches;
  /** How much the server takes at once (sandboxes, requests, streams). */
  admission?: Admission;
  /** Every request must carry it (`Authorization: Bearer …`) when set. */
  token?: string;
  maxUploadBytes?: number;
}

/** HTTP status for each of hull's error codes; anything else is the server's fault (500). */
const STATUS: Partial<Record<string, number>> = {
  ERR_VALIDATION: 400,
  ERR_CONFIG: 400,
  ERR_USAGE: 400,
  ERR_INVALID_ID: 400,
  ERR_UNAUTHORIZED: 401,
  ERR_NOT_FOUND: 404,
  ERR_ROUTE: 404,
  ERR_EXISTS: 409,
  ERR_STATE: 409,
  ERR_SAVED_STATE: 409,
  ERR_NO_NETWORK: 409,
  ERR_TOO_LARGE: 413,
  ERR_LIMIT: 429,
  ERR_BUSY: 503,
  ERR_REGISTRY: 424,
  ERR_UNSUPPORTED: 501,
};

function sendError(reply: FastifyReply, code: ApiErrorCode, message: string, status = STATUS[code] ?? 500) {
  return reply.code(status).send({ error: { code, message: message.split('\n')[0] } });
}

/** fastify's own refusals (validation, body size, media type) as the API's codes. */
function errorHandler(err: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (err.validation) {
    return sendError(
      reply,
      'ERR_VALIDATION',
      `${err.validationContext ?? 'request'}${err.message.replace(/^(body|params|querystring)/, '')}`,
    );
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    // fastify would close at once, with the body unread: linger instead (see refuseRestOf).
    reply.removeHeader('connection');
    refuseRestOf(request, request.raw);
    return sendError(
      reply,
      'ERR_TOO_LARGE',
      `the body is larger than ${MAX_JSON_BODY_BYTES} bytes: send less`,
    );
  }
  if (err.code?.startsWith('FST_ERR_CTP_'))
    return sendError(reply, 'ERR_VALIDATION', err.message, err.statusCode ?? 400);
  if (isHullError(err)) return sendError(reply, err.code, err.message);
  logger('serve').error({ err: err.message, url: request.url }, 'request failed');
  return sendError(reply, 'ERR_INTERNAL', err.message);
}

/**
 * After refusing a body part-way: the connection closes, but only once the client has had a
 * moment to read the answer (closing at once, with its bytes unread, would reset the connection
 * and lose the answer). What it still sends meanwhile is read and dropped, never kept.
 */
function refuseRestOf(request: FastifyRequest, body: Readable): void {
  body.resume();
  const socket = request.raw.socket;
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}

type Handler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/**
 * The API: fastify for routing and for checking every request against the schemas the OpenAPI
 * document publishes (its ajv), @fastify/websocket for command streams. Each handler turns a
 * request into calls on the sandbox service; none reaches the hypervisor or the agent.
 */
export async function buildServer(parts: ServerParts): Promise<FastifyInstance> {
  const maxUploadBytes = parts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD_BYTES;
  const app = Fastify({
    bodyLimit: MAX_JSON_BODY_BYTES,
    logger: false,
    // Every error answer is one line: ajv's first complaint, not all of them.
    // No coercion: a number where a string belongs is refused, not turned into one.
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
  });
  await app.register(websocket, { options: { maxPayload: MAX_WS_MESSAGE_BYTES } });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendError(
      reply,
      'ERR_ROUTE',
      `no such route: ${request.method} ${request.url.split('?')[0]!.slice(0, 200)}; see ${OPENAPI_PATH}`,
    ),
  );
  const admission = parts.admission ?? new Admission(DEFAULT_ADMISSION);
  // Counted before anything else is done for a request, the token check included.
  app.addHook('onRequest', admission.hook(sendError));
  if (parts.token) app.addHook('onRequest', requireToken(parts.token, sendError));
  // Files come as raw streams, handed to the handler unread.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  const document = openApiDocument();
  app.get(OPENAPI_PATH, async () => document);

  const { sandboxes, commands, files, metadata, watches } = parts;
  /** The sandbox a request names, live or paused. */
  const recordOf = (request: FastifyRequest) =>
    sandboxes.record((request.params as { sandboxId: string }).sandboxId);
  /** The sandbox a request names, running: a paused one has nothing to run commands or read files in. */
  const sandboxOf = (request: FastifyRequest) => {
    const record = recordOf(request);
    if (record.paused) {
      throw new HullError(
        'ERR_STATE',
        `sandbox ${record.sandboxId} is paused: resume it first (Sandbox.resume, or POST /v1/sandboxes/${record.sandboxId}/resume)`,
      );
    }
    return record;
  };
  const pathOf = (request: FastifyRequest) => (request.query as { path: string }).path;
  const handlers: Record<string, Handler> = {
    createSandbox: async (request, reply) => {
      const create = () => sandboxes.create(request.body as CreateSandboxRequest);
      return reply.code(201).send(await admission.createSandbox(sandboxes.count(), create));
    },
    listSandboxes: async (request) => {
      const given = (request.query as { metadata?: string | string[] }).metadata ?? [];
      const pairs = Array.isArray(given) ? given : [given];
      const metadata = Object.fromEntries(
        pairs.map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
      );
      return { sandboxes: await sandboxes.list(metadata) };
    },
    getSandbox: async (request) => sandboxes.info(recordOf(request)),
    killSandbox: async (request, reply) => {
      const record = recordOf(request);
      commands.forgetSandbox(record.sandboxId);
      await sandboxes.kill(record.sandboxId);
      return reply.code(204).send();
    },
    pauseSandbox: async (request) => {
      const { sandboxId, paused } = recordOf(request);
      if (paused) return sandboxes.info(recordOf(request));
      commands.letGoOfSandbox(sandboxId);
      try {
        return await sandboxes.pause(sandboxId);
      } catch (err) {
        // Still running: its commands are followed again.
        if (!recordOf(request).paused) await commands.recover([sandboxId]);
        throw err;
      }
    },
    resumeSandbox: async (request) => {
      const { sandboxId, paused } = recordOf(request);
      const info = await sandboxes.resume(sandboxId);
      if (paused) await commands.recover([sandboxId]);
      return info;
    },
    forkSandbox: async (request, reply) => {
      const { count } = request.body as ForkRequest;
      const { sandboxId } = recordOf(request);
      const fork = async () => {
        // Taken before: a command started while the copies are made is the parent's alone.
        const running = commands.runningRecords(sandboxId);
        const copies = await sandboxes.fork(sandboxId, count);
        await commands.followInCopies(
          running,
          copies.map((copy) => copy.sandboxId),
        );
        return copies;
      };
      return reply
        .code(201)
        .send({ sandboxes: await admission.createSandbox(sandboxes.count(), fork, count) });
    },
    snapshotSandbox: async (request, reply) =>
      reply
        .code(201)
        .send(await sandboxes.snapshot(recordOf(request).sandboxId, request.body as CreateSnapshotRequest)),
    listSnapshots: async () => ({ snapshots: sandboxes.listSnapshots() }),
    getSnapshot: async (request) =>
      sandboxes.describeSnapshot((request.params as { snapshotId: string }).snapshotId),
    removeSnapshot: async (request, reply) => {
      await sandboxes.removeSnapshot((request.params as { snapshotId: string }).snapshotId);
      return reply.code(204).send();
    },
    setSandboxTimeout: async (request) =>
      sandboxes.setTimeout(recordOf(request).sandboxId, (request.body as SetTimeoutRequest).timeoutMs),
    portUrl: async (request) => {
      const { port } = request.body as PortRequest;
      return { port, url: await sandboxes.portUrl(sandboxOf(request).sandboxId, port) };
    },
    startCommand: async (request, reply) =>
      reply.code(201).send(await commands.start(sandboxOf(request), request.body as StartCommandRequest)),
    readFile: async (request, reply) =>
      reply.type('application/octet-stream').send(await files.read(sandboxOf(request), pathOf(request))),
    writeFile: async (request, reply) => {
      const record = sandboxOf(request);
      const body = request.body as Readable;
      const length = Number(request.headers['content-length'] ?? 0);
      const written =
        length > maxUploadBytes
          ? 'too-large'
          : await files.write(record, pathOf(request), body, maxUploadBytes);
      if (written === 'too-large') {
        refuseRestOf(request, body);
        return sendError(
          reply,
          'ERR_TOO_LARGE',
          `the upload is larger than the limit, ${maxUploadBytes} bytes`,
        );
      }
      return reply.code(204).send();
    },
    removeFile: async (request, reply) => {
      await files.remove(sandboxOf(request), pathOf(request));
      return reply.code(204).send();
    },
    listFiles: async (request) => ({ entries: await files.list(sandboxOf(request), pathOf(request)) }),
    fileExists: async (request) => ({ exists: await files.exists(sandboxOf(request), pathOf(request)) }),
    makeDir: async (request, reply) => {
      await files.makeDir(sandboxOf(request), (request.body as PathRequest).path);
      return reply.code(204).send();
    },
    startPty: async (request, reply) =>
      reply.code(201).send(await commands.startPty(sandboxOf(request), request.body as StartPtyRequest)),
    listCommands: async (request) => ({ commands: commands.list(sandboxOf(request).sandboxId) }),
    killCommand: async (request, reply) => {
      const { commandId } = request.params as { commandId: string };
      await commands.kill(sandboxOf(request).sandboxId, commandId);
      return reply.code(204).send();
    },
    statFile: async (request) => metadata.stat(sandboxOf(request), pathOf(request)),
    renameFile: async (request, reply) => {
      const { from, to } = request.body as RenameRequest;
      await metadata.rename(sandboxOf(request), from, to);
      return reply.code(204).send();
    },
  };

  const streams: Record<string, (socket: WebSocket, request: FastifyRequest) => void> = {
    streamCommand: (socket, request) => {
      const { sandboxId, commandId } = request.params as { sandboxId: string; commandId: string };
      commands.attach(sandboxId, commandId, socket);
    },
    watchFiles: (socket, request) => {
      let record: ReturnType<typeof sandboxOf>;
      try {
        record = sandboxOf(request);
      } catch (err) {
        socket.close(4404, (err as Error).message.slice(0, 120));
        return;
      }
      void watches.attach(record, pathOf(request), socket);
    },
  };

  for (const route of API_ROUTES) {
    const schema = schemaOf(route);
    if (route.websocket) {
      const stream = streams[route.operationId];
      if (!stream) throw new HullError('ERR_INTERNAL', `no stream handler for ${route.operationId}`);
      app.get(route.url, { websocket: true, schema }, stream);
      continue;
    }
    const handler = handlers[route.operationId];
    if (!handler) throw new HullError('ERR_INTERNAL', `no handler for ${route.operationId}`);
    app.route({ method: route.method, url: route.url, schema, handler });
  }
  return app;
}

function schemaOf(route: ApiRoute) {
  return {
    ...(route.params ? { params: schemas[route.params] } : {}),
    ...(route.querystring ? { querystring: schemas[route.querystring] } : {}),
    ...(route.body && route.body !== 'binary' ? { body: schemas[route.body] } : {}),
  };
}
