import type { Command } from 'commander';
import type { GlobalOptions } from '../cli/global-options.js';
import { DEFAULT_ADMISSION } from './admission.js';
import { DEFAULT_MAX_UPLOAD_BYTES } from './limits.js';
import { DEFAULT_API_SOCKET } from './listen-address.js';
import type { ServeOptions } from './run.js';

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('serve the sandboxes API (HTTP and WebSocket; the SDK is hull/sdk) until SIGTERM')
    .option(
      '--listen <address>',
      'unix:/PATH, or HOST:PORT (TCP, which needs --token-file)',
      `unix:${DEFAULT_API_SOCKET}`,
    )
    .option('--token-file <file>', 'a file holding the bearer token every request must carry')
    .option('--max-upload-mib <n>', 'the largest file upload', String(DEFAULT_MAX_UPLOAD_BYTES / 1024 / 1024))
    .option(
      '--max-sandboxes <n>',
      'live sandboxes the server holds; past it creates get 429 ERR_LIMIT',
      String(DEFAULT_ADMISSION.maxSandboxes),
    )
    .option(
      '--max-requests <n>',
      'requests in hand at once; past it requests get 503 ERR_BUSY',
      String(DEFAULT_ADMISSION.maxRequests),
    )
    .option(
      '--max-starting <n>',
      'sandboxes booted at once; further creates wait their turn (default: two per CPU)',
    )
    .action(async (options: ServeOptions, command: Command) => {
      // Loaded by this verb only: the HTTP framework and its schema checker would otherwise be
      // evaluated by every hull process, each sandbox's monitor included.
      const { serve } = await import('./run.js');
      await serve(options, command.optsWithGlobals<GlobalOptions>());
    });
}
