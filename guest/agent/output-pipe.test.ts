import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';
import { OutputPipe } from './output-pipe.js';

test('a read whose call has already ended rejects at once instead of waiting for output', async () => {
  const pipe = new OutputPipe(new PassThrough());
  const ended = new AbortController();
  ended.abort(new Error('the call timed out'));
  const outcome = await Promise.race([
    pipe.read(0, ended.signal).then(
      () => 'read',
      (err: Error) => err.message,
    ),
    new Promise((resolve) => setTimeout(() => resolve('still waiting'), 500)),
  ]);
  assert.equal(outcome, 'the call timed out');
});

test('a waiting read gets the next output, and an empty answer at end of stream', async () => {
  const source = new PassThrough();
  const pipe = new OutputPipe(source);
  const signal = new AbortController().signal;
  const first = pipe.read(0, signal);
  source.write('hello');
  assert.equal((await first).toString(), 'hello');
  const last = pipe.read(0, signal);
  source.end();
  assert.equal((await last).length, 0);
});
