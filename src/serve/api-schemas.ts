import { argv, guestPath, guestUser, LIMITS, stringMap } from './api-schema-parts.js';
import { sessionSchemas } from './api-session-schemas.js';

export { LIMITS } from './api-schema-parts.js';

/**
 * The API's JSON Schemas, written once: fastify's ajv checks requests against them and
 * openapi.ts publishes the very same objects. Every string and map is bounded here, so that
 * size limits are in one visible place.
 */

import { MAX_WRITABLE_DISK_MIB, MIN_WRITABLE_DISK_MIB } from '../storage/rootfs-disks.js';

const metadataPair = {
  type: 'string',
  maxLength: LIMITS.keyChars + LIMITS.valueChars + 1,
  pattern: '^[^=]+=',
} as const;

const timeoutMs = { type: 'integer', minimum: 1, maximum: LIMITS.maxTimeoutMs } as const;

const snapshotId = { type: 'string', pattern: '^snap-[0-9a-f]{16}$' } as const;

/** What a sandbox and a snapshot of it both have: the image and size it was made with. */
const madeWith = {
  image: { type: 'string' },
  imageDigest: { type: 'string' },
  cpus: { type: 'integer' },
  memoryMiB: { type: 'integer' },
  diskMiB: { type: 'integer' },
  env: { type: 'object', additionalProperties: { type: 'string' } },
  metadata: { type: 'object', additionalProperties: { type: 'string' } },
  network: { type: 'string', enum: ['none', 'internet'] },
  createdAt: { type: 'string', format: 'date-time' },
} as const;

const snapshotInfo = {
  type: 'object',
  required: [
    'snapshotId',
    'sandboxId',
    'image',
    'imageDigest',
    'diskMiB',
    'env',
    'metadata',
    'network',
    'createdAt',
    'bytes',
  ],
  properties: {
    snapshotId: { type: 'string' },
    sandboxId: { type: 'string' },
    ...madeWith,
    bytes: { type: 'integer' },
  },
} as const;

const sandboxInfo = {
  type: 'object',
  required: [
    'sandboxId',
    'image',
    'imageDigest',
    'env',
    'metadata',
    'network',
    'createdAt',
    'expiresAt',
    'status',
  ],
  properties: {
    sandboxId: { type: 'string' },
    ...madeWith,
    expiresAt: { type: 'string', format: 'date-time' },
    status: { type: 'string', enum: ['running', 'stopped', 'paused'] },
  },
} as const;

export const schemas = {
  ApiError: {
    type: 'object',
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: { code: { type: 'string' }, message: { type: 'string' } },
      },
    },
  },
  CreateSandboxRequest: {
    type: 'object',
    additionalProperties: false,
    // An image, or a snapshot (whose image it is).
    anyOf: [{ required: ['image'] }, { required: ['fromSnapshot'] }],
    properties: {
      fromSnapshot: snapshotId,
      image: {
        type: 'string',
        minLength: 1,
        maxLength: LIMITS.imageRefChars,
        // A reference's characters (see container-images/reference.ts for its full check).
        pattern: '^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$',
      },
      cpus: { type: 'integer', minimum: 1, maximum: LIMITS.maxCpus },
      memoryMiB: { type: 'integer', minimum: 64, maximum: LIMITS.maxMemoryMiB },
      diskMiB: { type: 'integer', minimum: MIN_WRITABLE_DISK_MIB, maximum: MAX_WRITABLE_DISK_MIB },
      env: stringMap,
      metadata: stringMap,
      timeoutMs,
      network: { type: 'string', enum: ['none', 'internet'] },
    },
  },
  SandboxInfo: sandboxInfo,
  SandboxList: {
    type: 'object',
    required: ['sandboxes'],
    properties: { sandboxes: { type: 'array', items: sandboxInfo } },
  },
  SandboxListQuery: {
    type: 'object',
    additionalProperties: false,
    properties: {
      // `metadata=key=value`, repeatable: sandboxes with every pair given.
      metadata: {
        anyOf: [metadataPair, { type: 'array', maxItems: LIMITS.mapEntries, items: metadataPair }],
      },
    },
  },
  ForkRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['count'],
    properties: { count: { type: 'integer', minimum: 1, maximum: LIMITS.maxForks } },
  },
  CreateSnapshotRequest: {
    type: 'object',
    additionalProperties: false,
    properties: { metadata: stringMap },
  },
  SnapshotInfo: snapshotInfo,
  SnapshotList: {
    type: 'object',
    required: ['snapshots'],
    properties: { snapshots: { type: 'array', items: snapshotInfo } },
  },
  SnapshotIdParams: {
    type: 'object',
    required: ['snapshotId'],
    properties: { snapshotId },
  },
  SandboxIdParams: {
    type: 'object',
    required: ['sandboxId'],
    properties: { sandboxId: { type: 'string', pattern: '^sb-[0-9a-f]{16}$' } },
  },
  CommandParams: {
    type: 'object',
    required: ['sandboxId', 'commandId'],
    properties: {
      sandboxId: { type: 'string', pattern: '^sb-[0-9a-f]{16}$' },
      commandId: { type: 'string', pattern: '^[0-9a-f-]{36}$' },
    },
  },
  SetTimeoutRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['timeoutMs'],
    properties: { timeoutMs },
  },
  StartCommandRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['cmd'],
    properties: {
      cmd: {
        oneOf: [{ type: 'string', minLength: 1, maxLength: LIMITS.argChars }, argv],
      },
      cwd: guestPath,
      env: stringMap,
      user: guestUser,
      stdin: { type: 'boolean' },
      timeoutMs,
      background: { type: 'boolean' },
    },
  },
  StartCommandResponse: {
    type: 'object',
    required: ['commandId', 'pid'],
    properties: { commandId: { type: 'string' }, pid: { type: 'integer' } },
  },
  PathQuery: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: guestPath },
  },
  PathRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: guestPath },
  },
  FileList: {
    type: 'object',
    required: ['entries'],
    properties: {
      entries: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'path', 'type'],
          properties: {
            name: { type: 'string' },
            path: { type: 'string' },
            type: { type: 'string', enum: ['file', 'dir', 'symlink', 'other'] },
          },
        },
      },
    },
  },
  PortRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['port'],
    properties: { port: { type: 'integer', minimum: 1, maximum: 65535 } },
  },
  PortUrl: {
    type: 'object',
    required: ['port', 'url'],
    properties: { port: { type: 'integer' }, url: { type: 'string' } },
  },
  ExistsResponse: {
    type: 'object',
    required: ['exists'],
    properties: { exists: { type: 'boolean' } },
  },
  ...sessionSchemas(),
} as const;

export type SchemaName = keyof typeof schemas;
