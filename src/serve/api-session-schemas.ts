/**
 * JSON Schemas of terminals, commands found again and file metadata, merged into api-schemas.ts's
 * `schemas` (checked by fastify, published in the OpenAPI document). Bounded like the rest.
 */
import { argv, guestPath, guestUser, stringMap } from './api-schema-parts.js';

export function sessionSchemas() {
  /** A terminal dimension in character cells. */
  const cells = { type: 'integer', minimum: 1, maximum: 1000 } as const;

  const commandInfo = {
    type: 'object',
    required: ['commandId', 'pid', 'cmd', 'background', 'pty', 'startedAt', 'status', 'attached'],
    properties: {
      commandId: { type: 'string' },
      pid: { type: 'integer' },
      cmd: { type: 'array', items: { type: 'string' } },
      background: { type: 'boolean' },
      pty: { type: 'boolean' },
      startedAt: { type: 'string', format: 'date-time' },
      status: { type: 'string', enum: ['running', 'exited'] },
      exitCode: { type: 'integer' },
      attached: { type: 'boolean' },
      outputMayBeIncomplete: { type: 'boolean' },
    },
  } as const;

  return {
    StartPtyRequest: {
      type: 'object',
      additionalProperties: false,
      required: ['cols', 'rows'],
      properties: {
        cols: cells,
        rows: cells,
        cmd: argv,
        cwd: guestPath,
        env: stringMap,
        user: guestUser,
      },
    },
    CommandInfo: commandInfo,
    CommandList: {
      type: 'object',
      required: ['commands'],
      properties: { commands: { type: 'array', items: commandInfo } },
    },
    FileStat: {
      type: 'object',
      required: ['name', 'path', 'type', 'size', 'mode', 'uid', 'gid', 'modifiedAt'],
      properties: {
        name: { type: 'string' },
        path: { type: 'string' },
        type: { type: 'string', enum: ['file', 'dir', 'symlink', 'other'] },
        size: { type: 'integer' },
        mode: { type: 'integer' },
        uid: { type: 'integer' },
        gid: { type: 'integer' },
        modifiedAt: { type: 'string', format: 'date-time' },
        symlinkTarget: { type: 'string' },
      },
    },
    RenameRequest: {
      type: 'object',
      additionalProperties: false,
      required: ['from', 'to'],
      properties: { from: guestPath, to: guestPath },
    },
  } as const;
}
