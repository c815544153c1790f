import type { ApiRoute } from './api-routes.js';

/** Routes of terminals, commands found again and file metadata (appended to API_ROUTES). */
export const SESSION_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'startPty',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/ptys',
    summary:
      "Start a process on a terminal (/bin/sh unless cmd says otherwise); it is a command: its stream (streamCommand) carries the terminal's output and input, and {type:'resize',cols,rows}",
    params: 'SandboxIdParams',
    body: 'StartPtyRequest',
    responses: { 201: 'StartCommandResponse' },
  },
  {
    operationId: 'listCommands',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/commands',
    summary:
      'List the commands and terminals of a sandbox that run, or whose exit is unread: what a client started before it restarted, or before the server did',
    params: 'SandboxIdParams',
    responses: { 200: 'CommandList' },
  },
  {
    operationId: 'killCommand',
    method: 'DELETE',
    url: '/v1/sandboxes/:sandboxId/commands/:commandId',
    summary: 'Kill a command or terminal (SIGKILL); an attached stream ends with its exit',
    params: 'CommandParams',
    responses: { 204: null },
  },
  {
    operationId: 'statFile',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/files/stat',
    summary: "Describe a path of the container's filesystem (a symlink itself, not what it points to)",
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    responses: { 200: 'FileStat' },
  },
  {
    operationId: 'renameFile',
    method: 'POST',
    url: '/v1/sandboxes/:sandboxId/files/rename',
    summary: "Rename (move) a file or directory; the destination's missing parents are made",
    params: 'SandboxIdParams',
    body: 'RenameRequest',
    responses: { 204: null },
  },
  {
    operationId: 'watchFiles',
    method: 'GET',
    url: '/v1/sandboxes/:sandboxId/files/watch',
    summary:
      "WebSocket: changes in a directory of the container (inotify in the guest, the path resolved in the container), as text frames: {type:'ready'}, then {type:'event',event:{type,name,path,isDir}} (type create, write, remove, rename or chmod), {type:'overflow'} when some were lost, {type:'end'} when the directory went away, {type:'error',error:{code,message}}; closing it ends the watch",
    params: 'SandboxIdParams',
    querystring: 'PathQuery',
    websocket: true,
    responses: { 101: null },
  },
];
