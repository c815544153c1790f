import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import {
  formatIdentity,
  identityOf,
  isAlive,
  liveStartTime,
  parseIdentity,
  parseProcStat,
  signalIfAlive,
} from './process-identity.js';

/** A /proc/<pid>/stat line with `comm` as the command name and the given state and start time. */
function statLine(comm: string, state: string, startTime: string): string {
  const middle = Array.from({ length: 18 }, (_, i) => String(i + 4)).join(' ');
  return `4242 (${comm}) ${state} ${middle} ${startTime} 9999 1 2 3\n`;
}

test('the start time is read past a command name holding spaces and parentheses', () => {
  assert.deepEqual(parseProcStat(statLine('a) S 1 2 (b', 'S', '123456')), {
    state: 'S',
    startTime: '123456',
  });
  assert.deepEqual(parseProcStat(statLine('x', 'Z', '7')), { state: 'Z', startTime: '7' });
  assert.equal(parseProcStat('4242 (truncated'), undefined);
  assert.equal(parseProcStat('4242 (x) S 1 2'), undefined);
});

test('this process is alive under its own identity, and not under another start time', () => {
  const own = identityOf(process.pid);
  assert.ok(own?.startTime, 'a live process has a start time');
  assert.equal(own.startTime, liveStartTime(process.pid));
  assert.ok(isAlive(own));
  assert.ok(!isAlive({ pid: process.pid, startTime: String(Number(own.startTime) + 1) }), 'a reused pid');
  assert.ok(isAlive({ pid: process.pid }), 'a record without a start time is trusted by pid, as before');
  assert.ok(!isAlive({ pid: 0 }) && !isAlive({ pid: -1 }));
});

test('a process whose pid now names another is not signalled', async () => {
  const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    await once(sleeper, 'spawn');
    const real = identityOf(sleeper.pid!)!;
    const stale = { pid: real.pid, startTime: String(Number(real.startTime) - 1) };
    assert.equal(signalIfAlive(stale, 'SIGKILL'), false);
    assert.equal(liveStartTime(sleeper.pid!), real.startTime, 'the unrelated process is still alive');
    assert.equal(signalIfAlive(real, 'SIGKILL'), true, 'the recorded process itself is signalled');
    await once(sleeper, 'exit');
    assert.ok(!isAlive(real), 'an exited process is not alive');
  } finally {
    sleeper.kill('SIGKILL');
  }
});

test('a zombie (dead, not yet reaped) is not alive, though kill(pid, 0) succeeds on it', async () => {
  // The background sleep ends after the shell became `sleep 30`, which never reaps it.
  const parent = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  try {
    const [line] = (await once(parent.stdout!, 'data')) as [Buffer];
    const zombie = Number(line.toString().trim());
    const deadline = Date.now() + 5000;
    while (liveStartTime(zombie) !== undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    process.kill(zombie, 0);
    assert.equal(liveStartTime(zombie), undefined);
    assert.ok(!isAlive({ pid: zombie }));
  } finally {
    parent.kill('SIGKILL');
  }
});

test('a recorded identity reads back, and a bare pid (an older record) has no start time', () => {
  assert.deepEqual(parseIdentity(formatIdentity({ pid: 12, startTime: '345' })), {
    pid: 12,
    startTime: '345',
  });
  assert.deepEqual(parseIdentity('12\n'), { pid: 12 });
  assert.equal(formatIdentity({ pid: 12 }), '12');
  assert.equal(parseIdentity('x'), undefined);
  assert.equal(parseIdentity('0'), undefined);
});
