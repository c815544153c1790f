import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, open, readdir, rename, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { archProfile } from '../../src/hypervisor/arch.js';
import { compileHostPrograms, HOST_PROGRAMS } from '../../src/sys/host-programs.js';
import { privateDirs } from './harness.js';

const run = promisify(execFile);
const REPOSITORY = resolve(fileURLToPath(import.meta.url), '../../../..');

/**
 * Debian's arm64 libfuse3-dev unpacked with what it depends on (libc6-dev, the kernel's
 * headers), never run: the sysroot the cross compiler builds against.
 */
const ARM64_LIBS = '/var/tmp/hull-test-images/arm64-host-libs';

async function arm64Libraries(): Promise<string> {
  if (
    await access(join(ARM64_LIBS, '.complete')).then(
      () => true,
      () => false,
    )
  )
    return ARM64_LIBS;
  const work = `${ARM64_LIBS}.tmp-${process.pid}`;
  try {
    await run(
      'mmdebstrap',
      ['--quiet', '--variant=extract', '--architectures=arm64', '--include=libfuse3-dev', 'bookworm', work],
      {
        maxBuffer: 1 << 26,
      },
    );
    await (await open(join(work, '.complete'), 'w')).close();
    await rm(ARM64_LIBS, { recursive: true, force: true });
    await rename(work, ARM64_LIBS);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return ARM64_LIBS;
}

/** An ELF file's class, byte order and machine (e_machine). */
async function elfHeader(file: string): Promise<{ class64: boolean; machine: number }> {
  const handle = await open(file, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(20), 0, 20, 0);
    assert.deepEqual([...buffer.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], `${file} is an ELF file`);
    return {
      class64: buffer[4] === 2,
      machine: buffer[5] === 2 ? buffer.readUInt16BE(18) : buffer.readUInt16LE(18),
    };
  } finally {
    await handle.close();
  }
}

/**
 * hull on an arm64 host: every C program hull builds for the host builds for arm64 with
 * Debian's cross compiler (no arm64 machine is here to run them; the ELF header says what
 * they are built for).
 */
describe('hull on an arm64 host', { timeout: 600_000 }, () => {
  test("every host program cross-builds for arm64 with Debian's aarch64 compiler (ELF machine 183)", async () => {
    const dirs = await privateDirs('host-programs');
    try {
      const arm64 = archProfile('arm64');
      const outputs = await compileHostPrograms({
        compiler: arm64.crossCompiler,
        repository: REPOSITORY,
        outDir: dirs.scratch,
        sysroot: await arm64Libraries(),
      });
      assert.deepEqual(
        outputs.map((o) => o.split('/').pop()),
        [
          'hull-tty',
          'hull-jail',
          'libcapstone.so.4',
          'libpmem.so.1',
          'hull-malloc-trim.node',
          'hull-template-memory',
          'hull-share-server',
          'hull-fifo-drain',
          'hull-share-mount',
        ],
      );
      assert.equal(outputs.length, HOST_PROGRAMS.length);
      for (const output of outputs) {
        assert.deepEqual(await elfHeader(output), { class64: true, machine: 183 }, `${output} is EM_AARCH64`);
        assert.equal(arm64.elfMachine, 183);
      }
      // The host's own build of the same list, for comparison: x86_64's machine.
      for (const program of HOST_PROGRAMS) {
        const host = join(REPOSITORY, 'dist', 'native', program.name);
        assert.equal((await elfHeader(host)).machine, archProfile('x86_64').elfMachine, host);
      }
    } finally {
      await dirs.cleanup();
    }
  });
});

/** The dynamic symbols `nm` lists for `args`, each as NAME or NAME@VERSION. */
async function dynamicSymbols(args: string[]): Promise<Set<string>> {
  const { stdout } = await run('nm', ['-D', ...args]);
  return new Set(
    stdout
      .split('\n')
      .map((line) => line.trim().split(' ').pop()!.replace('@@', '@'))
      .filter(Boolean),
  );
}

/**
 * The stand-in libraries QEMU loads in place of Debian's (src/hypervisor/jail/vmm-libs/): each
 * installed QEMU that links one must find there every symbol it takes from the real library,
 * with its version, or its dynamic loader (Debian binds every symbol at start) would refuse to
 * start it.
 */
describe("QEMU's stand-in libraries", () => {
  test('each defines every symbol each installed QEMU takes from the library it stands for, and the loader takes it', async () => {
    const dir = join(REPOSITORY, 'dist', 'native', 'vmm-libs');
    const standIns = await readdir(dir);
    assert.deepEqual(standIns.sort(), ['libcapstone.so.4', 'libpmem.so.1']);
    let checked = 0;
    for (const arch of ['x86_64', 'arm64'] as const) {
      const binary = `/usr/bin/${archProfile(arch).qemuBinary}`;
      if (
        !(await access(binary).then(
          () => true,
          () => false,
        ))
      )
        continue;
      const system = (await run('ldd', [binary])).stdout;
      const withStandIns = (await run('ldd', [binary], { env: { ...process.env, LD_LIBRARY_PATH: dir } }))
        .stdout;
      const imported = await dynamicSymbols(['--undefined-only', binary]);
      for (const name of standIns) {
        const real = new RegExp(`${name.replaceAll('.', '\\.')} => (\\S+) `).exec(system)?.[1];
        if (!real) continue;
        assert.ok(
          withStandIns.includes(`${name} => ${join(dir, name)} `),
          `${binary} loads ${name} from ${dir}`,
        );
        const fromReal = [...(await dynamicSymbols(['--defined-only', real]))].filter((s) => imported.has(s));
        assert.ok(fromReal.length > 0, `${binary} takes symbols from ${real}`);
        const standIn = await dynamicSymbols(['--defined-only', join(dir, name)]);
        for (const symbol of fromReal)
          assert.ok(standIn.has(symbol), `${name} defines ${symbol} for ${binary}`);
        checked++;
      }
    }
    assert.ok(checked > 0, 'no installed QEMU links a library hull stands in for');
  });
});
