/*
 * libpmem.so.1 for QEMU, without PMDK: the two functions QEMU 7.2 imports (LIBPMEM_1.0), done
 * as on ordinary memory.
 *
 * QEMU calls them only for a memory backend on persistent memory (`pmem=on`), which hull never
 * asks for. The real library brings libndctl, libdaxctl, libkmod and libcrypto with it, whose
 * relocations and start-up cost every QEMU memory of its own. hull-jail puts the directory
 * holding this file first in QEMU's library path (--library-path), so the loader takes it.
 */
#include <stddef.h>
#include <string.h>

/* Nothing to write back on memory that is not persistent: a barrier orders the stores. */
void pmem_persist(const void *addr, size_t len) {
  (void)addr;
  (void)len;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void *pmem_memcpy_persist(void *dest, const void *src, size_t len) {
  memcpy(dest, src, len);
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  return dest;
}
