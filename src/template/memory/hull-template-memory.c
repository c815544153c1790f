/*
 * hull-template-memory: holds one VM template's guest memory.
 *
 *   hull-template-memory NAME BYTES [DIR]
 *   hull-template-memory --adopt PATH [DIR]
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
 * --adopt takes over a sealed memfd another holder keeps (PATH: /proc/<holder>/fd/<n>), says
 * "fd N" and keeps it as if it had sealed it: so a holder started under a caller that waits for
 * every process below it (conmon is a subreaper) can be replaced by one started elsewhere.
 *
 * It keeps no descriptor but its memfd and stdio: whatever its starter had open without
 * close-on-exec (a pipe conmon got from podman) is closed first, so it holds up no one.
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
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "hull-template-memory: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* A new memfd NAME of SIZE bytes, its size sealed. */
static int create(const char *name, const char *size) {
  char *end;
  errno = 0;
  unsigned long long bytes = strtoull(size, &end, 10);
  if (errno || *end || bytes == 0 || bytes > (1ULL << 40)) {
    fprintf(stderr, "hull-template-memory: BYTES must be from 1 to 2^40\n");
    exit(2);
  }
  int fd = memfd_create(name, MFD_ALLOW_SEALING);
  if (fd < 0) die("memfd_create");
  if (ftruncate(fd, (off_t)bytes) != 0) die("sizing the memory");
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK) != 0) die("sealing its size");
  return fd;
}

/* The memfd at PATH, if it is sealed against every write and every change of size. */
static int adopt(const char *path) {
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) die("opening the memory to adopt");
  int seals = fcntl(fd, F_GET_SEALS);
  int all = F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK;
  if (seals < 0) die("reading the seals of the memory to adopt");
  if ((seals & all) != all) {
    fprintf(stderr, "hull-template-memory: the memory to adopt is not sealed\n");
    exit(1);
  }
  return fd;
}

int main(int argc, char **argv) {
  if (syscall(SYS_close_range, 3, ~0U, 0) < 0) die("close_range");
  int adopting = argc >= 3 && strcmp(argv[1], "--adopt") == 0;
  if (adopting ? argc > 4 : (argc != 3 && argc != 4)) {
    fprintf(stderr, "usage: hull-template-memory NAME BYTES [DIR] | --adopt PATH [DIR]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  int fd;
  int sealed = 0;
  if (adopting) {
    fd = adopt(argv[2]);
    sealed = 1;
  } else {
    fd = create(argv[1], argv[2]);
  }
  printf("fd %d\n", fd);
  fflush(stdout);

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
