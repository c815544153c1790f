import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { CONTAINER_VERBS } from './container-verbs.js';
import { LIGHT_VERBS } from './light-verbs.js';
import { CONTAINER_WORDS, LIGHT_WORDS, verbWord } from './verb-word.js';
import { VERBS, verbsFor } from './verbs.js';

test('the verb is the first word after the global options; help names none, the version the empty one', () => {
  const argv = (...words: string[]) => ['node', 'hull', ...words];
  assert.equal(verbWord(argv('list')), 'list');
  assert.equal(verbWord(argv('--root', 'state', '--debug', 'state', 'x')), 'state');
  assert.equal(verbWord(argv('--root=/r', '--log-format', 'json', 'kill', 'x')), 'kill');
  assert.equal(verbWord(argv('--config', 'c.toml', '--log', 'l', 'run', '--help')), 'run');
  assert.equal(verbWord(argv('--help', 'list')), undefined);
  assert.equal(verbWord(argv()), undefined);
  assert.equal(verbWord(argv('-v')), '');
});

test('each verb module registers exactly the words the table loads it for', async () => {
  for (const verb of VERBS) {
    const program = new Command('hull').enablePositionalOptions();
    (await verb.load())(program);
    const words = program.commands.flatMap((c) => [c.name(), ...c.aliases()]);
    assert.deepEqual(words.sort(), [...verb.words].sort());
  }
});

test('a known verb loads its module only; help and unknown words load every verb', async () => {
  assert.equal((await verbsFor(['node', 'hull', 'state', 'x'])).length, 1);
  assert.equal((await verbsFor(['node', 'hull', '--version'])).length, 0);
  assert.equal((await verbsFor(['node', 'hull', 'lsit'])).length, VERBS.length);
  assert.equal((await verbsFor(['node', 'hull', '--help'])).length, VERBS.length);
});

test('the light program registers the same verbs as the full program for its words', async () => {
  for (const word of LIGHT_WORDS.filter((w) => w !== '')) {
    const full = VERBS.find((v) => v.words.includes(word));
    assert.ok(full, word);
    assert.equal(LIGHT_VERBS[word], await full.load(), word);
  }
});

test('the container program registers the same verbs as the full program for its words', async () => {
  for (const word of CONTAINER_WORDS) {
    const full = VERBS.find((v) => v.words.includes(word));
    assert.ok(full, word);
    assert.equal(CONTAINER_VERBS[word], await full.load(), word);
  }
});
