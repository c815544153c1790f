/** Where the image puts the agent's addon (guest/agent/native/guest-syscalls.c). */
const ADDON = '/opt/hull/guest-syscalls.node';

interface GuestSyscalls {
  pipe(): [number, number];
  mount(source: string, target: string, type: string, flags: number, data: string): void;
  /** Credits host randomness to the kernel's pool and reseeds its generator. */
  addEntropy(bytes: Buffer): void;
  /** Sets the wall clock to `ms` since the epoch. */
  setRealtime(ms: number): void;
  /** A connected unix stream socket pair, close-on-exec. */
  socketPair(): [number, number];
  /** Sends `bytes` in one go, its first byte carrying `fds` (1 to 3); throws rather than block. */
  sendWithFds(socket: number, bytes: Buffer, fds: number[]): void;
}

let addon: GuestSyscalls | undefined;

/** The addon, loaded at first use, after the startup snapshot is restored: a snapshot holds no addon. */
export function syscalls(): GuestSyscalls {
  if (!addon) {
    const module = { exports: {} as GuestSyscalls };
    process.dlopen(module, ADDON);
    addon = module.exports;
  }
  return addon;
}
