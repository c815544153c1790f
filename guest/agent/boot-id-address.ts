import { readFile } from 'node:fs/promises';

/**
 * Where this guest's kernel keeps its boot id: the guest-physical address of `sysctl_bootid`
 * (drivers/char/random.c), the 16 bytes /proc/sys/kernel/random/boot_id shows. The kernel
 * makes them at the first read, while byte 8 is 0, and never again (generate_random_uuid sets
 * that byte's top bits): the host zeroes that byte in a copy of a saved running VM before it
 * runs, so the copy makes its own at its next read (see src/hypervisor/qemu/boot-id.ts).
 *
 * The kernel image is mapped linearly (x86-64 and arm64: __pa_symbol), and /proc/iomem's
 * "Kernel data" begins at __pa_symbol(_sdata): the symbol's physical address is that start
 * plus its offset from _sdata. Root sees the real values in both files (kptr_restrict < 2).
 */
export function bootIdAddressOf(kallsyms: string, iomem: string): bigint | undefined {
  const bootId = symbolAddress(kallsyms, 'sysctl_bootid');
  const sdata = symbolAddress(kallsyms, '_sdata');
  const kernelData = /^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel data$/m.exec(iomem);
  if (bootId === undefined || sdata === undefined || !kernelData) return undefined;
  const dataStart = BigInt(`0x${kernelData[1]}`);
  // Hidden addresses read as 0; the boot id is in data or bss, both after _sdata.
  if (sdata === 0n || dataStart === 0n || bootId <= sdata) return undefined;
  return dataStart + (bootId - sdata);
}

/**
 * A core kernel symbol's address in /proc/kallsyms ("ADDR TYPE NAME", no [module] after it).
 * Found by plain search, each hit's line then checked whole: a regular expression tried at
 * each of the file's 5 MB of positions takes the guest half a second under TCG.
 */
function symbolAddress(kallsyms: string, name: string): bigint | undefined {
  const needle = ` ${name}\n`;
  const text = kallsyms.endsWith('\n') ? kallsyms : `${kallsyms}\n`;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
    const line = text.slice(text.lastIndexOf('\n', at) + 1, at + needle.length - 1);
    const found = /^([0-9a-f]{8,16}) [a-zA-Z] (\S+)$/.exec(line);
    if (found && found[2] === name) return BigInt(`0x${found[1]}`);
  }
  return undefined;
}

let cached: Promise<bigint> | undefined;

/** This guest's boot id address, 0 if it cannot be told; read once (a few hundred ms under TCG). */
export function bootIdAddress(): Promise<bigint> {
  cached ??= Promise.all([readFile('/proc/kallsyms', 'utf8'), readFile('/proc/iomem', 'utf8')])
    .then(([kallsyms, iomem]) => bootIdAddressOf(kallsyms, iomem) ?? 0n)
    .catch(() => {
      // A read that failed (memory pressure, say) is asked again next time; a kernel without
      // the symbols answers 0 for good.
      cached = undefined;
      return 0n;
    });
  return cached;
}
