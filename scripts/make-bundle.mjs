#!/usr/bin/env node
// Writes a busybox OCI bundle (the test fixture) to DIR, running the given command.
//   node scripts/make-bundle.mjs DIR [--hostname NAME] [COMMAND...]
import { mkdir } from 'node:fs/promises';
import { makeBusyboxBundle } from '../dist/tests/fixtures/bundle.js';

let [dir, ...args] = process.argv.slice(2);
if (!dir) {
  console.error('usage: make-bundle.mjs DIR [--hostname NAME] [COMMAND...]');
  process.exit(2);
}
let hostname;
if (args[0] === '--hostname') [, hostname, ...args] = args;
await mkdir(dir, { recursive: true });
await makeBusyboxBundle(dir, args.length ? args : ['sh'], (spec) => {
  if (hostname) spec.hostname = hostname;
});
