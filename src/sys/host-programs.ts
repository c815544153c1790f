import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { run } from './exec.js';

/**
 * The C programs hull runs on the host, beside its JavaScript: each does what Node cannot.
 * One list, read by the build (scripts/bundle.mjs, with the host's `cc`) and by the test that
 * cross-builds them for the other architecture (tests/e2e/host-programs.test.ts).
 */
export interface HostProgram {
  name: string;
  /** Sources, relative to the repository. */
  sources: string[];
  flags: string[];
  /** Libraries linked (`-lNAME`), found in the target's library directories. */
  libraries: string[];
  /** Header directories of those libraries, relative to a sysroot (`/` for the host). */
  includes: string[];
  /** A shared library's symbol versions (ld's --version-script), relative to the repository. */
  versionScript?: string;
}

export const HOST_PROGRAMS: readonly HostProgram[] = [
  // Passes terminals over unix sockets.
  { name: 'hull-tty', sources: ['src/sys/tty/hull-tty.c'], flags: ['-Os'], libraries: [], includes: [] },
  // Confines QEMU: namespaces, capabilities, seccomp.
  {
    name: 'hull-jail',
    sources: ['src/hypervisor/jail/hull-jail.c'],
    flags: ['-Os'],
    libraries: [],
    includes: [],
  },
  // Taken by QEMU for Debian's libcapstone.so.4, which it links and hull never uses (see the
  // source). A library in a directory of its own: hull-jail's --library-path names it.
  {
    name: 'vmm-libs/libcapstone.so.4',
    sources: ['src/hypervisor/jail/vmm-libs/capstone-stub.c'],
    flags: ['-Os', '-shared', '-fPIC', '-Wl,-soname,libcapstone.so.4'],
    libraries: [],
    includes: [],
  },
  // Taken by QEMU for PMDK's libpmem.so.1, which it calls only for persistent memory (see the
  // source); its symbols carry PMDK's version (the map file).
  {
    name: 'vmm-libs/libpmem.so.1',
    sources: ['src/hypervisor/jail/vmm-libs/pmem-stub.c'],
    flags: ['-Os', '-shared', '-fPIC', '-Wl,-soname,libpmem.so.1'],
    versionScript: 'src/hypervisor/jail/vmm-libs/pmem.map',
    libraries: [],
    includes: [],
  },
  // A Node addon: malloc_trim for a container's idle monitor (src/sys/malloc-trim.ts).
  {
    name: 'hull-malloc-trim.node',
    sources: ['src/sys/malloc-trim/hull-malloc-trim.c'],
    flags: ['-Os', '-shared', '-fPIC'],
    libraries: [],
    includes: [],
  },
  // Holds a VM template's memory in a sealed memfd.
  {
    name: 'hull-template-memory',
    sources: ['src/template/memory/hull-template-memory.c'],
    flags: ['-Os'],
    libraries: [],
    includes: [],
  },
  // Serves the share to QEMU over FUSE, keeping setuid/setgid bits and device nodes off the
  // host while the guest sees them (the operations in hull-share-server.c, the files it knows
  // and their descriptors in nodes.c, xattrs in xattrs.c). libfuse3 is the maintained FUSE
  // library; Node has no FUSE binding worth the name.
  {
    name: 'hull-share-server',
    sources: [
      'src/storage/share-server/hull-share-server.c',
      'src/storage/share-server/nodes.c',
      'src/storage/share-server/xattrs.c',
    ],
    flags: ['-O2'],
    libraries: ['fuse3'],
    includes: ['usr/include/fuse3'],
  },
  // Waits until a client has read a process's output FIFOs before the shim reports its exit
  // (FIONREAD; Node has no ioctl).
  {
    name: 'hull-fifo-drain',
    sources: ['src/shim/fifo-drain/hull-fifo-drain.c'],
    flags: ['-Os'],
    libraries: [],
    includes: [],
  },
  // Mounts and unmounts inside a share by file descriptor (openat2), following no symlink a
  // guest may have made; Node has neither openat2 nor mount(2).
  {
    name: 'hull-share-mount',
    sources: ['src/storage/share-mount/hull-share-mount.c'],
    flags: ['-O2'],
    libraries: [],
    includes: [],
  },
];

/**
 * Compiles every host program into `outDir` with `compiler`: the host's `cc`, or a cross
 * compiler such as aarch64-linux-gnu-gcc with `sysroot`, a Debian multiarch root of the
 * target (its libc6-dev and each library's -dev package unpacked), which gcc and ld then read
 * for every header, library and linker script.
 */
export async function compileHostPrograms(options: {
  compiler: string;
  repository: string;
  outDir: string;
  sysroot?: string;
  signal?: AbortSignal;
}): Promise<string[]> {
  const outputs: string[] = [];
  for (const program of HOST_PROGRAMS) {
    const output = join(options.outDir, program.name);
    await mkdir(dirname(output), { recursive: true });
    await run(
      options.compiler,
      [
        ...(options.sysroot ? [`--sysroot=${options.sysroot}`] : []),
        ...program.flags,
        ...(program.versionScript
          ? [`-Wl,--version-script=${join(options.repository, program.versionScript)}`]
          : []),
        '-Wall',
        ...program.includes.map((dir) => `-I${join(options.sysroot ?? '/', dir)}`),
        '-o',
        output,
        ...program.sources.map((source) => join(options.repository, source)),
        ...program.libraries.map((library) => `-l${library}`),
      ],
      { signal: options.signal, errorCode: 'ERR_INTERNAL', purpose: `compiling ${program.name}` },
    );
    outputs.push(output);
  }
  return outputs;
}
