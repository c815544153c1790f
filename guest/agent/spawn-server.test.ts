import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentError } from './errors.js';
import { encodeSpawnRequest, MAX_REQUEST_BYTES, parseSpawnReport } from './spawn-server.js';

test('a request: its length, then the id, the environment and the command line, each NUL-ended', () => {
  const request = encodeSpawnRequest('r1', ['A=1', 'B=2'], ['-p', '42', '--', 'true'])!;
  const body = 'r1\x002\0A=1\0B=2\0-p\x0042\0--\0true\0';
  assert.equal(request.readUInt32LE(0), Buffer.byteLength(body));
  assert.equal(request.subarray(4).toString(), body);
});

test('a request past hull-spawn bounds, or with a NUL inside a string, is not made', () => {
  assert.equal(encodeSpawnRequest('r1', ['A=a\0b'], ['true']), undefined);
  assert.equal(encodeSpawnRequest('r1', [], ['tr\0ue']), undefined);
  assert.equal(encodeSpawnRequest('r1', [`A=${'x'.repeat(MAX_REQUEST_BYTES)}`], ['true']), undefined);
  assert.equal(encodeSpawnRequest('r1', Array(65_536).fill('A=1'), ['true']), undefined);
  assert.ok(encodeSpawnRequest('r1', [`A=${'x'.repeat(MAX_REQUEST_BYTES - 64)}`], ['true']));
});

test("a report is a pid, or the reason nothing started as the process's error", () => {
  assert.equal(parseSpawnReport('1234'), 1234);
  for (const text of ['0', '-1', '01', '12a', '99999999999', '', 'executable file `x` not found in $PATH']) {
    assert.throws(
      () => parseSpawnReport(text),
      (err: unknown) =>
        err instanceof AgentError && err.kind === 'runtime-failed' && err.message.startsWith('exec: '),
      text,
    );
  }
});
