import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toTextLine } from './log.js';

test('text log lines put time, level and msg first, quoted as runc does', () => {
  const line = toTextLine(
    '{"level":"error","time":"2026-01-01T00:00:00.000Z","scope":"cli","msg":"no \\"image\\"","code":"ERR_X"}',
  );
  assert.equal(
    line,
    'time="2026-01-01T00:00:00.000Z" level=error msg="no \\"image\\"" scope="cli" code="ERR_X"\n',
  );
});
