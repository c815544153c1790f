import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

const print = new URL('./print.js', import.meta.url).href;

/** Runs `body` in a Node of its own, with printOut and printErr imported. */
function script(body: string): string[] {
  return [
    '--input-type=module',
    '-e',
    `import { printOut, printErr } from ${JSON.stringify(print)};\n${body}`,
  ];
}

test('printOut writes all of a large text to a pipe its reader drains slowly', async () => {
  const child = spawn(
    process.execPath,
    script("printOut('x'.repeat(1 << 20) + '\\n'); printErr('done\\n');"),
  );
  let out = 0;
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk;
  });
  // Paused for a while first: the 64 KiB pipe fills, and each write takes what fits.
  child.stdout.pause();
  await new Promise((resolve) => setTimeout(resolve, 200));
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.length;
  });
  child.stdout.resume();
  const status = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(status, 0, err);
  assert.equal(out, (1 << 20) + 1);
  assert.equal(err, 'done\n');
});

test('once its pipe is non-blocking, printOut writes everything, in order, through the stream', async () => {
  // Node makes a pipe non-blocking when it makes process.stdout, so a large write meets EAGAIN
  // while the reader drains the pipe: a later small write then finds room.
  const child = spawn(
    process.execPath,
    script(
      "process.stdout; for (let i = 0; i < 8; i++) { printOut('x'.repeat(1 << 18)); printOut(String(i) + '\\n'); }",
    ),
  );
  const out: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
  const status = await new Promise((resolve) => child.on('close', resolve));
  assert.equal(status, 0);
  const expected = Array.from({ length: 8 }, (_, i) => `${'x'.repeat(1 << 18)}${i}\n`).join('');
  const text = Buffer.concat(out).toString();
  assert.equal(text.length, expected.length);
  assert.ok(text === expected, 'the text came out of order');
});

test("printOut to a pipe whose reader has gone ends with hull's one-line error", () => {
  const child = spawnSync(
    'sh',
    [
      '-c',
      '"$0" "$@" | true',
      process.execPath,
      ...script(`
      await new Promise((resolve) => setTimeout(resolve, 300));
      try { printOut('x\\n'); } catch (err) { printErr(err.code + ': ' + err.message + '\\n'); }`),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(
    child.stderr,
    "ERR_OUTPUT: the reader of hull's output has gone (EPIPE): nothing more is printed\n",
  );
});

test('printErr throws nothing when the reader of stderr has gone', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hull-print-test-'));
  try {
    const out = join(dir, 'out');
    const child = spawnSync(
      'sh',
      [
        '-c',
        '"$0" "$@" 2>&1 >"$OUT" | true',
        process.execPath,
        ...script(`
        await new Promise((resolve) => setTimeout(resolve, 300));
        printErr('lost\\n');
        printOut('went on\\n');`),
      ],
      { encoding: 'utf8', env: { ...process.env, OUT: out } },
    );
    assert.equal(child.status, 0);
    assert.equal(readFileSync(out, 'utf8'), 'went on\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
