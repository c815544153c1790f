import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { planFromPrivatePages, privatePagesOf, ramMappingOf, sameMemory } from './template-pages.js';

// A stand-in for a cloned VMM: a process mapping a memfd named as template memory is, private,
// that writes some of its pages and only reads others.
const CLONE = `
import mmap, os, sys
size = 64 * 4096
fd = os.memfd_create('hull-template-unit-test', 0)
os.write(fd, bytes([7]) * size)
m = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
for page in (1, 5, 6, 63):
    m[page * 4096] = 9
for page in (2, 3, 40):
    _ = m[page * 4096]
print(fd, flush=True)
sys.stdin.read()
`;

const root = process.getuid?.() === 0;

test('a clone’s RAM: the pages it wrote are its own, the ones it only read or never touched are the template’s', {
  skip: !root && 'map_files needs root',
}, async () => {
  const child = spawn('python3', ['-c', CLONE], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const [line] = await createInterface({ input: child.stdout! })
      [Symbol.asyncIterator]()
      .next()
      .then((r) => [r.value as string]);
    const fd = Number(line);
    const mapping = await ramMappingOf(child.pid!, 64 * 4096);
    assert.ok(mapping, 'the mapping is found');
    const memfd = await stat(`/proc/${child.pid}/fd/${fd}`, { bigint: true });
    assert.ok(sameMemory(mapping.memory, { dev: String(memfd.dev), ino: String(memfd.ino) }));
    assert.ok(!sameMemory(mapping.memory, { dev: String(memfd.dev), ino: String(memfd.ino + 1n) }));
    assert.equal(await ramMappingOf(child.pid!, 32 * 4096), undefined, 'not a RAM block of that size');
    const bits = await privatePagesOf(child.pid!, mapping, AbortSignal.timeout(5000));
    const plan = planFromPrivatePages(bits, mapping.bytes);
    const own = Array.from({ length: 64 }, (_, i) => i).filter((i) => plan.mustSend(i));
    assert.deepEqual(own, [1, 5, 6, 63]);
  } finally {
    child.kill('SIGKILL');
  }
});
