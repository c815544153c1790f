import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseRecord } from './file-watch.js';

const record = (text: string) => Buffer.from(text);

describe("hull-watch's records", () => {
  test('become events with the path in the watched directory', () => {
    assert.deepEqual(parseRecord('/w', record('0\t')), { type: 'ready' });
    assert.deepEqual(parseRecord('/w', record('100\ta')), {
      type: 'event',
      event: { type: 'create', name: 'a', path: '/w/a', isDir: false },
    });
    assert.deepEqual(parseRecord('/w/', record('40000100\td')), {
      type: 'event',
      event: { type: 'create', name: 'd', path: '/w/d', isDir: true },
    });
    const types = ['2', '4', '40', '80', '200', '400'].map(
      (mask) => (parseRecord('/w', record(`${mask}\tf`)) as { event: { type: string } }).event.type,
    );
    assert.deepEqual(types, ['write', 'chmod', 'rename', 'create', 'remove', 'remove']);
    assert.deepEqual(parseRecord('/w', record('4000\t')), { type: 'overflow' });
    assert.equal(parseRecord('/w', record('8000\t')), undefined);
  });

  test('that are malformed or too long say events may be missing, never pass a path on', () => {
    for (const bad of ['', 'xyz\ta', '100', '100\ta/../../etc', `100\t${'n'.repeat(600)}`, '123456789\ta']) {
      assert.deepEqual(parseRecord('/w', record(bad)), { type: 'overflow' }, bad);
    }
  });
});
