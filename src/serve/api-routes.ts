import type { SchemaName } from './api-schemas.js';
import { SESSION_ROUTES } from './api-session-routes.js';

/**
 * The API's routes as data: server.ts registers each with its schemas, openapi.ts publishes
 * each from the same entry, so what is checked and what is documented cannot drift apart.
 */
export interface ApiRoute {
  operationId: string;
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** fastify's form: `/v1/sandboxes/:sandboxId`. */
  url: string;
  summary: string;
  params?: SchemaName;
  querystring?: SchemaName;
  /** A JSON body checked against this schema, or 'binary': a raw byte stream. */
  body?: SchemaName | 'binary';
  /** Status → a JSON schema, 'binary' (bytes), or null (no body). */
  responses: Record<number, SchemaName | 'binary' | null>;
  /** A WebSocket: the GET is an upgrade; `responses` documents its refusals. */
  websocket?: boolean;
}

export const API_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'createSandbox',
    method: 'POST',
    url: '/v1/sandboxes',
    summary: 'Create a sandbox (a container in its own VM) from a container image reference',
    body: 'CreateSandboxRequest',
    responses: { 201: 'SandboxInfo' },
  },
  {
    operationId: 'listSandboxes',
    method: 'GET',
    url: '/v1/sandboxes',
    summary: 'List sandboxes, optionally those whose metadata has every key=value given',
    querystring: 'SandboxListQuery',
    responses: { 200: 'SandboxList' },
  },
  {
    operationId: 'getSandbox',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId',
    summary: 'Describe a sandbox',
    params: 'SandboxIdParams',
    responses: { 200: 'SandboxInfo' },
  },
  {
    operationId: 'killSandbox',
    method: 'DELETE',
    url: '/v1/sandboxes/:sandboxId',
    summary: 'Kill a sandbox; nothing of it is left',
    params: 'SandboxIdParams',
    responses: { 204: null },
  },
  {
    operationId: 'setSandboxTimeout',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/timeout',
    summary: "Set a sandbox's time to live, from now",
    params: 'SandboxIdParams',
    body: 'SetTimeoutRequest',
    responses: { 200: 'SandboxInfo' },
  },
  {
    operationId: 'pauseSandbox',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/pause',
    summary:
      "Pause a sandbox to disk: its VM's memory and devices saved beside its disk, then no VM runs; its time to live stops until it is resumed",
    params: 'SandboxIdParams',
    responses: { 200: 'SandboxInfo' },
  },
  {
    operationId: 'resumeSandbox',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/resume',
    summary:
      'Resume a paused sandbox: its processes go on where they were, its clock set to now (open TCP connections may break, as after a laptop sleep); a damaged saved state is refused with ERR_SAVED_STATE and the sandbox stays paused',
    params: 'SandboxIdParams',
    responses: { 200: 'SandboxInfo' },
  },
  {
    operationId: 'forkSandbox',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/fork',
    summary:
      "Fork a running sandbox: `count` running copies, each going on from the parent's memory, processes and files as they were, with its own disk, address, MAC, hostname and fresh entropy (its memory shared copy-on-write with the others'); the parent runs on. Open TCP connections may break in the copies",
    params: 'SandboxIdParams',
    body: 'ForkRequest',
    responses: { 201: 'SandboxList' },
  },
  {
    operationId: 'snapshotSandbox',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/snapshots',
    summary:
      'Keep a snapshot of a running sandbox (its memory, processes and files), which runs on; sandboxes start from it with fromSnapshot',
    params: 'SandboxIdParams',
    body: 'CreateSnapshotRequest',
    responses: { 201: 'SnapshotInfo' },
  },
  {
    operationId: 'listSnapshots',
    method: 'GET',
    url: '/v1/snapshots',
    summary: 'List the snapshots kept',
    responses: { 200: 'SnapshotList' },
  },
  {
    operationId: 'getSnapshot',
    method: 'GET',
    url: '/v1/snapshots/:snapshotId',
    summary: 'Describe a snapshot',
    params: 'SnapshotIdParams',
    responses: { 200: 'SnapshotInfo' },
  },
  {
    operationId: 'removeSnapshot',
    method: 'DELETE',
    url: '/v1/snapshots/:snapshotId',
    summary: 'Remove a snapshot; the sandboxes started from it live on',
    params: 'SnapshotIdParams',
    responses: { 204: null },
  },
  {
    operationId: 'portUrl',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/ports',
    summary:
      "A base URL on the host (http://HOST:PORT) reaching a TCP port the sandbox listens on, made on the first request, gone with the sandbox; refused with ERR_NO_NETWORK for network 'none'",
    params: 'SandboxIdParams',
    body: 'PortRequest',
    responses: { 200: 'PortUrl' },
  },
  {
    operationId: 'startCommand',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/commands',
    summary: 'Start a command in the sandbox; its output waits for the stream',
    params: 'SandboxIdParams',
    body: 'StartCommandRequest',
    responses: { 201: 'StartCommandResponse' },
  },
  {
    operationId: 'streamCommand',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/commands/:commandId/stream',
    summary:
      "WebSocket: the command's output (binary frames: first byte 1 stdout, 2 stderr), then a text frame {type:'exit',exitCode}; the client sends stdin as binary frames and {type:'stdin-end'} or {type:'kill'} as text",
    params: 'CommandParams',
    websocket: true,
    responses: { 101: null },
  },
  {
    operationId: 'readFile',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/files',
    summary: "Read a file of the container's filesystem, streamed",
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    responses: { 200: 'binary' },
  },
  {
    operationId: 'writeFile',
    method: 'PUT',
    url: '/v1/sandboxes/:sandboxId/files',
    summary: 'Write a file (missing parent directories are made), streamed',
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    body: 'binary',
    responses: { 204: null },
  },
  {
    operationId: 'removeFile',
    method: 'DELETE',
    url: '/v1/sandboxes/:sandboxId/files',
    summary: 'Remove a file or a directory tree',
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    responses: { 204: null },
  },
  {
    operationId: 'listFiles',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/files/list',
    summary: "List a directory's entries",
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    responses: { 200: 'FileList' },
  },
  {
    operationId: 'fileExists',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/files/exists',
    summary: 'Whether a path exists',
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    responses: { 200: 'ExistsResponse' },
  },
  {
    operationId: 'makeDir',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/files/dirs',
    summary: 'Make a directory and its missing parents',
    params: 'SandboxIdParams',
    body: 'PathRequest',
    responses: { 204: null },
  },
  ...SESSION_ROUTES,
];
