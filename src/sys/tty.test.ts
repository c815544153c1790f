import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { openHostTerminal } from './tty.js';

/** The caller's side, as conmon does it (it takes the pty master and sets the sizes given). */
const CALLER = resolve(fileURLToPath(import.meta.url), '../../../../tests/fixtures/console-receiver.py');

async function withCaller(
  sizes: string[],
  body: (caller: { socket: string; output: () => string; sized: Promise<void> }) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hull-tty-'));
  const socket = join(dir, 'console.sock');
  const child = spawn('python3', [CALLER, socket, ...sizes], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const seen = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the caller never said ${text}: ${output}`)), 10_000);
      const check = () => {
        if (!output.includes(text)) return;
        clearTimeout(timer);
        resolve();
      };
      child.stdout.on('data', check);
      check();
    });
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString();
  });
  try {
    await seen('listening');
    await body({ socket, output: () => output, sized: seen('sized') });
  } finally {
    child.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

test('the last size the caller gives the terminal is the one reported', async () => {
  const sizes = Array.from({ length: 20 }, (_, i) => `${10 + i}x${20 + i}`);
  await withCaller(sizes, async (caller) => {
    const terminal = await openHostTerminal(caller.socket, AbortSignal.timeout(10_000));
    const reported: string[] = [];
    terminal.onResize((rows, columns) => reported.push(`${rows}x${columns}`));
    await caller.sized;
    for (let i = 0; i < 100 && reported.at(-1) !== sizes.at(-1); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(reported.at(-1), sizes.at(-1), `reported: ${reported.join(' ')}`);
    await terminal.close();
  });
});

test('what was written just before the terminal closes reaches the caller', async () => {
  await withCaller([], async (caller) => {
    const terminal = await openHostTerminal(caller.socket, AbortSignal.timeout(10_000));
    await caller.sized;
    const text = 'the last lines of a short-lived process\n'.repeat(8000);
    terminal.output.write(text);
    await terminal.close();
    for (let i = 0; i < 100 && caller.output().length < text.length; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const received = caller.output().replace('listening\nsized\n', '');
    assert.equal(received.length, text.length, 'characters that reached the caller');
    assert.ok(received === text, 'they are what was written');
  });
});
