import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import type { AgentClient } from '../agent/client.js';
import { relayOutput } from './stdio-relay.js';

test("a host stream whose reader is gone (EPIPE) drops the rest of the output; the guest's is still read to its end", async () => {
  const chunks = ['first\n', 'second\n', 'third\n'].map((text) => Buffer.from(text));
  let reads = 0;
  const agent = {
    readOutput: async () => chunks[reads++] ?? new Uint8Array(0),
  } as unknown as AgentClient;
  let written = 0;
  const sink = new Writable({
    write(_chunk, _encoding, callback) {
      written++;
      callback(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    },
  });
  const end = await relayOutput(agent, { containerId: 'c' }, 'stdout', sink, {
    signal: new AbortController().signal,
    exited: new Promise(() => {}),
  });
  assert.equal(end, 'eof');
  assert.equal(reads, chunks.length + 1, 'every chunk and the end of stream were read from the guest');
  assert.equal(written, 1, 'nothing was written after the failure');
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(sink.destroyed, 'the failed stream was destroyed, its error heard');
});
