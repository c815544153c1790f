/**
 * V8 flags for hull's helpers (a container's monitor, an exec's waiter, a pod's VM holder),
 * which live as long as what they hold and spend that life mostly idle, relaying stdio and
 * answering a socket: V8's lite mode, which compiles no optimized code and allocates feedback
 * lazily. Measured on eight idle cloned sandboxes side by side, a monitor's PSS was 16.2 MiB
 * in lite mode against 18.2 and 18.6 without; a protobuf round trip of a 64 KiB message (the
 * relay's large chunks) took 48 µs against 42, of a 512-byte one 24 against 6. Young-generation
 * semi-spaces of 1 MiB saved nothing there (18.8 MiB) and slowed the 64 KiB round trip to
 * 62 µs. WebAssembly is off, which lite mode would otherwise turn off with a warning written
 * to the helper's stderr: a container's.
 *
 * Bytecode is dropped by the first full collection after which its function has not run
 * (V8's default waits for five): most of a monitor's code runs once, to start its VM, and an
 * idle monitor has few full collections, the one it asks for when it goes quiet
 * (src/sys/malloc-trim.ts) among them. That one then leaves the bytecode of start-up behind:
 * a heap of 6.0 MiB instead of 6.8 (bytecode 120 KiB instead of 327, its constant pools and
 * feedback likewise). A function that runs again is compiled again from its source.
 */
export const HELPER_NODE_OPTIONS: readonly string[] = [
  '--lite-mode',
  '--no-expose-wasm',
  '--bytecode-old-age=1',
];
