import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isHullError } from '../errors.js';
import { listFormat, outputFormat } from './output-format.js';

test('a listing verb takes --format table or json, and refuses anything else in one line', () => {
  assert.equal(listFormat('table'), 'table');
  assert.equal(listFormat('json'), 'json');
  for (const bad of ['', 'JSON', 'text', 'yaml']) {
    assert.throws(
      () => listFormat(bad),
      (err) => isHullError(err, 'ERR_USAGE') && err.message === `unknown format ${bad}: use table or json`,
    );
  }
});

test('a reporting verb takes --output text or json', () => {
  assert.equal(outputFormat('text'), 'text');
  assert.throws(
    () => outputFormat('table'),
    (err) => isHullError(err, 'ERR_USAGE'),
  );
});
