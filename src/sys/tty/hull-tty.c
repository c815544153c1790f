/*
 * hull-tty: terminals across the VM boundary, in the two places Node cannot pass an fd.
 *
 *   hull-tty send SOCKET   (host) make a pty, send its master to the caller's console socket
 *                          (SCM_RIGHTS, as runc does), and relay the slave: slave -> stdout,
 *                          stdin -> slave. The slave is raw: the guest's pty does the line
 *                          discipline. The slave is this process's controlling terminal, so a
 *                          resize by the caller raises SIGWINCH; each size goes to fd 3 as
 *                          "ROWS COLS\n".
 *   hull-tty recv SOCKET   (guest) listen on SOCKET for crun's --console-socket, receive the
 *                          container's pty master, and relay it: master -> stdout,
 *                          stdin -> master. "ROWS COLS\n" lines read on fd 3 resize it.
 *
 * Either mode prints "ready\n" on stderr once the relay runs. send exits at the end of its
 * stdin (all the container printed is then in the terminal, for the caller to read); recv when
 * the terminal closes (the process on it has exited).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t resized = 1;
static void on_winch(int sig) { (void)sig; resized = 1; }

static int die(const char *what) {
  fprintf(stderr, "hull-tty: %s: %s\n", what, strerror(errno));
  return 1;
}

static int socket_address(const char *path, struct sockaddr_un *addr) {
  memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof addr->sun_path) { errno = ENAMETOOLONG; return -1; }
  strcpy(addr->sun_path, path);
  return 0;
}

static int send_fd(int sock, int fd) {
  char byte = 0;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return sendmsg(sock, &msg, 0) < 0 ? -1 : 0;
}

static int recv_fd(int sock) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  if (recvmsg(sock, &msg, 0) <= 0) return -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
      return fd;
    }
  }
  errno = EBADMSG;
  return -1;
}

static int write_all(int fd, const char *buf, ssize_t n) {
  while (n > 0) {
    ssize_t w = write(fd, buf, (size_t)n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    buf += w; n -= w;
  }
  return 0;
}

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Copies term <-> stdin/stdout until the terminal closes; `control` carries sizes. */
static int relay(int term, int control, int sending_sizes) {
  char buf[65536];
  int in_open = 1, ctl_open = control >= 0;
  char line[64];
  size_t line_len = 0;
  struct winsize sent = {0};
  long long recheck_until = 0; /* ms on the monotonic clock; 0: no size to look at again */
  for (;;) {
    int timeout = -1;
    if (sending_sizes && (resized || recheck_until)) {
      /* The kernel signals SIGWINCH before it stores the new size, so a size read at once may
       * still be the old one: after each signal the size is read again for 100 ms. */
      long long now = now_ms();
      if (resized) recheck_until = now + 100;
      resized = 0;
      struct winsize ws;
      if (ioctl(term, TIOCGWINSZ, &ws) == 0 && control >= 0 &&
          (ws.ws_row != sent.ws_row || ws.ws_col != sent.ws_col)) {
        sent = ws;
        dprintf(control, "%u %u\n", ws.ws_row, ws.ws_col);
      }
      if (now >= recheck_until) recheck_until = 0;
      else timeout = 20;
    }
    struct pollfd fds[3] = {{.fd = term, .events = POLLIN}, {.fd = in_open ? 0 : -1, .events = POLLIN},
                            {.fd = (!sending_sizes && ctl_open) ? control : -1, .events = POLLIN}};
    if (poll(fds, 3, timeout) < 0) { if (errno == EINTR) continue; return die("poll"); }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(term, buf, sizeof buf);
      if (n <= 0) { if (n < 0 && errno == EINTR) continue; return 0; }
      if (write_all(1, buf, n) < 0) return 0;
    }
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(0, buf, sizeof buf);
      /* In the guest (recv) stdin is what the user types: the terminal stays, as a terminal
       * has no end of input. On the host (send) it is the container's output, and its end
       * means everything has been written to the terminal: the relay is done. */
      if (n <= 0) { if (sending_sizes) return 0; in_open = 0; }
      else if (write_all(term, buf, n) < 0) return 0;
    }
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = read(control, line + line_len, sizeof line - 1 - line_len);
      if (n <= 0) { ctl_open = 0; continue; }
      line_len += (size_t)n;
      line[line_len] = 0;
      char *nl;
      while ((nl = strchr(line, '\n'))) {
        *nl = 0;
        unsigned rows, cols;
        if (sscanf(line, "%u %u", &rows, &cols) == 2) {
          struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
          ioctl(term, TIOCSWINSZ, &ws);
        }
        line_len -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, line_len + 1);
      }
      if (line_len >= sizeof line - 1) line_len = 0;
    }
  }
}

static int do_send(const char *path) {
  int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) return die("cannot create a pty");
  char *name = ptsname(master);
  if (!name) return die("ptsname");
  if (setsid() < 0 && errno != EPERM) return die("setsid");
  int slave = open(name, O_RDWR | O_CLOEXEC);
  if (slave < 0) return die("cannot open the pty");
  ioctl(slave, TIOCSCTTY, 0);
  struct termios raw;
  if (tcgetattr(slave, &raw) == 0) { cfmakeraw(&raw); tcsetattr(slave, TCSANOW, &raw); }
  struct sockaddr_un addr;
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || socket_address(path, &addr) < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0)
    return die("cannot connect to the console socket");
  if (send_fd(sock, master) < 0) return die("cannot send the terminal");
  close(sock);
  close(master);
  signal(SIGWINCH, on_winch);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGHUP, SIG_IGN);
  fprintf(stderr, "ready\n");
  return relay(slave, 3, 1);
}

static int do_recv(const char *path) {
  struct sockaddr_un addr;
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0 || socket_address(path, &addr) < 0) return die("socket");
  unlink(path);
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 1) < 0) return die("cannot listen");
  fprintf(stderr, "ready\n");
  int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) return die("accept");
  int master = recv_fd(conn);
  if (master < 0) return die("cannot receive the terminal");
  close(conn);
  close(listener);
  unlink(path);
  signal(SIGPIPE, SIG_IGN);
  return relay(master, 3, 0);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "send") == 0) return do_send(argv[2]);
  if (argc == 3 && strcmp(argv[1], "recv") == 0) return do_recv(argv[2]);
  fprintf(stderr, "usage: hull-tty send|recv SOCKET\n");
  return 2;
}
