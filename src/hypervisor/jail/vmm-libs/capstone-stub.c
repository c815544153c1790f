/*
 * libcapstone.so.4 for QEMU, without Capstone: every function fails, as Capstone does for an
 * architecture it was built without.
 *
 * Debian's QEMU links Capstone, a disassembler it calls only to print guest or host code
 * (`-d in_asm`, `-d out_asm`, the monitor's `x/i`), which hull never asks for. Loading the real
 * library costs every QEMU about 1.4 MiB of private memory: its tables of pointers are
 * relocated, page by page, at each start. hull-jail puts the directory holding this file first
 * in QEMU's library path (--library-path), so the dynamic loader takes it instead; QEMU's
 * disassembly then prints nothing, as with a QEMU built without Capstone.
 *
 * Only the symbols QEMU 7.2 imports (`nm -D --undefined-only qemu-system-x86_64 | grep cs_`),
 * with Capstone 4's types reduced to what the calls pass.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef size_t csh;
typedef struct cs_insn cs_insn;

/* Capstone 4's cs_err values used here. */
enum { CS_ERR_OK = 0, CS_ERR_ARCH = 2, CS_ERR_HANDLE = 3 };

int cs_open(int arch, int mode, csh *handle) {
  (void)arch;
  (void)mode;
  if (handle) *handle = 0;
  return CS_ERR_ARCH;
}

int cs_option(csh handle, int type, size_t value) {
  (void)handle;
  (void)type;
  (void)value;
  return CS_ERR_HANDLE;
}

int cs_close(csh *handle) {
  if (handle) *handle = 0;
  return CS_ERR_OK;
}

cs_insn *cs_malloc(csh handle) {
  (void)handle;
  return NULL;
}

bool cs_disasm_iter(csh handle, const uint8_t **code, size_t *size, uint64_t *address, cs_insn *insn) {
  (void)handle;
  (void)code;
  (void)size;
  (void)address;
  (void)insn;
  return false;
}
