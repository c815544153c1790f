/*
 * hull-watch PID DIR: reports changes in the directory DIR of the container whose process is
 * PID, as that container sees DIR.
 *
 * It first enters PID's mount namespace: setns(2) sets this process's root and working
 * directory to that namespace's root, the container's own. DIR, its `..` components and the
 * symlinks on its way are then resolved by the kernel exactly as for the container's processes:
 * none can lead out of the container (`..` stops at its root, an absolute symlink starts from
 * it). Nothing is opened for writing; the only output is what inotify reports.
 *
 * Output, on stdout, one record per event, each ended by a NUL (a name may hold a newline):
 *   "MASK\tNAME"   MASK the inotify mask in hex, NAME the entry's name in DIR ("" for DIR)
 * The first record, "0\t", says the watch is in place. Exit status: 0 when DIR is gone or
 * unmounted, 2 no such directory, 3 not a directory, 4 DIR is on 9p (see below), 1 anything
 * else (a message on stderr).
 *
 * On 9p (a container root shared from the host) inotify sees nothing: the guest's 9p client,
 * with any cache mode but loose, makes a new inode at every lookup, so a change made through
 * a later lookup never reaches the inode being watched. statfs cannot tell (9p reports the
 * host's file system type); a second lookup can: a second watch of the same path lands on
 * the same inode, and so has the same watch descriptor, unless the file system made a new one.
 * Refused rather than silent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

static int fail(int status, const char *what) {
  fprintf(stderr, "hull-watch: %s: %s\n", what, strerror(errno));
  return status;
}

int main(int argc, char **argv) {
  if (argc != 3 || argv[2][0] != '/') {
    fprintf(stderr, "usage: hull-watch PID /DIR\n");
    return 1;
  }
  char ns[64];
  snprintf(ns, sizeof ns, "/proc/%d/ns/mnt", atoi(argv[1]));
  int nsfd = open(ns, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return fail(1, "opening the container's mount namespace");
  if (setns(nsfd, CLONE_NEWNS) != 0) return fail(1, "entering the container's mount namespace");
  close(nsfd);
  if (chdir("/") != 0) return fail(1, "chdir /");

  int fd = inotify_init1(IN_CLOEXEC);
  if (fd < 0) return fail(1, "inotify_init1");
  const uint32_t mask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO |
                        IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;
  int wd = inotify_add_watch(fd, argv[2], mask);
  if (wd < 0) {
    if (errno == ENOENT) return fail(2, argv[2]);
    if (errno == ENOTDIR) return fail(3, argv[2]);
    return fail(1, argv[2]);
  }
  int again = inotify_add_watch(fd, argv[2], mask);
  if (again < 0) return fail(1, argv[2]);
  if (again != wd) {
    fprintf(stderr, "hull-watch: %s: its file system makes a new inode at every lookup (9p): inotify sees no change there\n", argv[2]);
    return 4;
  }
  if (fputs("0\t", stdout) == EOF || fputc('\0', stdout) == EOF || fflush(stdout) == EOF) return 1;

  char buffer[64 * 1024] __attribute__((aligned(__alignof__(struct inotify_event))));
  for (;;) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(1, "reading inotify events");
    for (char *p = buffer; p < buffer + n;) {
      const struct inotify_event *event = (const struct inotify_event *)p;
      p += sizeof *event + event->len;
      const char *name = event->len ? event->name : "";
      printf("%x\t%s", event->mask, name);
      fputc('\0', stdout);
      if (event->mask & (IN_IGNORED | IN_UNMOUNT)) {
        fflush(stdout);
        return 0;
      }
    }
    if (fflush(stdout) == EOF) return 1;
  }
}
