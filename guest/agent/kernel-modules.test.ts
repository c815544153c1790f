import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reportsFreePages } from './kernel-modules.js';

test('a guest booted as a template (and so its clones) leaves free page reporting off; others report', () => {
  assert.equal(reportsFreePages('console=ttyS0 quiet panic=-1 hull.template\n'), false);
  assert.equal(reportsFreePages('console=ttyS0 hull.template hull.debug'), false);
  assert.equal(reportsFreePages('console=ttyS0 quiet panic=-1\n'), true);
  assert.equal(reportsFreePages('console=ttyS0 hull.templated hull.template_x'), true, 'whole words only');
});
