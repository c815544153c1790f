/*
 * hull-fifo-drain BOUND_MS STALL_MS FD...: waits until the readers of the pipes (FIFOs) open
 * on FD... have taken everything written to them.
 *
 * The shim runs it between a process's last output and the report of its exit: ctr of
 * containerd before 1.6.22 (Debian bookworm's 1.6.20) closes its FIFOs as soon as it learns
 * of the exit, before it has read them to the end, and what was still in a pipe was lost.
 * FIONREAD on the writer's end says how many bytes a pipe holds (Linux answers it on either
 * end); Node has no ioctl.
 *
 * Exits 0 as soon as every pipe is empty (at once when they already are); 1 when it gives up,
 * saying on stderr how much is left: BOUND_MS have passed, or no reader has taken a byte for
 * STALL_MS (a client that went away or never reads must not hold the exit); 2 on bad usage or
 * an fd FIONREAD refuses.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#define MAX_FDS 8
/** How often the pipes are looked at while a reader takes its time. */
#define POLL_MS 10

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_count(const char *text, long long max, long long *out) {
  char *end;
  errno = 0;
  long long value = strtoll(text, &end, 10);
  if (errno || end == text || *end || value < 0 || value > max) return -1;
  *out = value;
  return 0;
}

/** Bytes the pipes hold in all, or -1 (errno set) when one cannot be asked. */
static long long pending(const int *fds, int count) {
  long long total = 0;
  for (int i = 0; i < count; i++) {
    int bytes = 0;
    if (ioctl(fds[i], FIONREAD, &bytes) < 0) return -1;
    total += bytes;
  }
  return total;
}

int main(int argc, char **argv) {
  long long bound, stall, fd;
  int fds[MAX_FDS];
  int count = argc - 3;
  if (argc < 4 || count > MAX_FDS || parse_count(argv[1], 3600000, &bound) ||
      parse_count(argv[2], 3600000, &stall)) {
    fprintf(stderr, "usage: hull-fifo-drain BOUND_MS STALL_MS FD... (at most %d fds)\n", MAX_FDS);
    return 2;
  }
  for (int i = 0; i < count; i++) {
    if (parse_count(argv[3 + i], 1 << 20, &fd)) {
      fprintf(stderr, "hull-fifo-drain: %s is not a file descriptor\n", argv[3 + i]);
      return 2;
    }
    fds[i] = (int)fd;
  }
  long long start = now_ms();
  long long last_progress = start;
  long long left = pending(fds, count);
  while (left > 0) {
    long long now = now_ms();
    if (now - start >= bound || now - last_progress >= stall) {
      fprintf(stderr, "%lld bytes unread after %lld ms\n", left, now - start);
      return 1;
    }
    struct timespec pause = {.tv_sec = 0, .tv_nsec = POLL_MS * 1000000L};
    nanosleep(&pause, NULL);
    long long next = pending(fds, count);
    if (next >= 0 && next < left) last_progress = now_ms();
    left = next;
  }
  if (left < 0) {
    fprintf(stderr, "hull-fifo-drain: FIONREAD: %s\n", strerror(errno));
    return 2;
  }
  return 0;
}
