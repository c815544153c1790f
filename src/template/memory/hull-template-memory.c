/*
 * hull-template-memory: holds one VM template's guest memory.
 *
 *   hull-template-memory NAME BYTES [DIR]
 *
 * DIR, the template's directory, is not used: it shows in ps whose template a holder keeps.
 * Makes a memfd of BYTES (its size sealed), says "fd N" on stdout, then takes commands, one a
 * line, on stdin:
 *
 *   seal     seals it against every write, for good (F_SEAL_WRITE, then F_SEAL_SEAL); says
 *            "sealed", or "error MESSAGE" (a writable shared mapping of it still exists)
 *
 * At the end of its input it exits, unless it sealed the memfd: then it closes its stdio and
 * keeps the memfd until it is killed (`hull template rm`).
 *
 * Why a process: the memory of a template is what every clone of it maps, copy-on-write, from
 * /proc/<this>/fd/N, opened for it by hull-jail as root. The template's VMM writes it once
 * (mapped shared) and exits; after the seal nobody can write it again, while each clone may still
 * map it private and writable. A file on a tmpfs cannot be sealed, and the clone's VMM (QEMU
 * 7.2) opens its memory file read-write even to map it private, so an unsealed file would let
 * one compromised VMM change the memory every other clone starts from. Node cannot make a
 * memfd; this program exists for that and holds nothing else.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "hull-template-memory: %s: %s\n", what, strerror(errno));
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: hull-template-memory NAME BYTES [DIR]\n");
    return 2;
  }
  char *end;
  errno = 0;
  unsigned long long bytes = strtoull(argv[2], &end, 10);
  if (errno || *end || bytes == 0 || bytes > (1ULL << 40)) {
    fprintf(stderr, "hull-template-memory: BYTES must be from 1 to 2^40\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int fd = memfd_create(argv[1], MFD_ALLOW_SEALING);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, (off_t)bytes) != 0) die("sizing the memory");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) != 0) die("sealing its size");
  printf("fd %d\n", fd);
  fflush(stdout);

  int sealed = 0;
  char line[64];
  while (fgets(line, sizeof line, stdin)) {
    if (strcmp(line, "seal\n") == 0) {
      if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SEAL) == 0) {
        sealed = 1;
        printf("sealed\n");
      } else {
        printf("error sealing the memory: %s\n", strerror(errno));
      }
    } else {
      printf("error unknown command\n");
    }
    fflush(stdout);
  }
  if (!sealed) return 0;
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) {
    dup2(null, 0);
    dup2(null, 1);
    dup2(null, 2);
    if (null > 2) close(null);
  }
  for (;;) pause();
}
