import assert from 'node:assert/strict';
import { test } from 'node:test';
import { findSystemTool, SYSTEM_TOOL_DIRS, systemTool } from './system-tool.js';

test('system programs are found in the system directories whatever PATH says', () => {
  const saved = process.env.PATH;
  process.env.PATH = '/nonexistent';
  try {
    const nsenter = findSystemTool('nsenter');
    assert.ok(nsenter && SYSTEM_TOOL_DIRS.some((dir) => nsenter === `${dir}/nsenter`), String(nsenter));
    assert.equal(systemTool('no-such-program-hull'), 'no-such-program-hull', 'a missing one keeps its name');
    assert.equal(findSystemTool('no-such-program-hull'), undefined);
  } finally {
    process.env.PATH = saved;
  }
});
