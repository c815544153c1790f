/*
 * guest-syscalls: the system calls the guest agent needs that Node does not offer.
 *
 *  - pipe(): Node gives a child process socketpairs for 'pipe' stdio. A container process
 *    whose stdout is a socket cannot reopen it: open("/dev/stdout") (/proc/self/fd/1) fails
 *    with ENXIO, and programs that log to /dev/stdout (nginx, httpd) exit. runc gives pipes;
 *    so does hull, made here with pipe2() and handed to crun as plain file descriptors.
 *  - mount(): the agent mounts the sandbox share itself when the first container needs it
 *    (a VM that has not mounted it yet can be saved and cloned); a mount(2) here costs nothing
 *    where spawning mount(8) costs a process start under software emulation.
 *  - addEntropy(): a VM cloned from a template starts with its template's RNG state; the host's
 *    random bytes are credited to the pool (RNDADDENTROPY) and the generator reseeded at once
 *    (RNDRESEEDCRNG), so clones never draw the same numbers.
 *  - setRealtime(): the wall clock set to the millisecond (date(1) takes whole seconds).
 *  - socketPair() and sendWithFds(): the agent's channel to hull-spawn's server, which takes
 *    each process's stdio descriptors with its request (SCM_RIGHTS, which Node cannot send).
 *
 * A Node-API addon (ABI-stable, loaded by the agent with process.dlopen) rather than a helper
 * process: a pipe must be made in the process that keeps its other end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <linux/random.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>

static void throw_errno(napi_env env, const char *code, const char *what) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", what, strerror(errno));
  napi_throw_error(env, code, message);
}

/* Returns a made pair of descriptors as a JS array [fd, fd]; closes both if it cannot. */
static napi_value fd_pair(napi_env env, int fds[2], const char *code, const char *what) {
  napi_value pair, end;
  if (napi_create_array_with_length(env, 2, &pair) != napi_ok) goto fail;
  for (uint32_t i = 0; i < 2; i++) {
    if (napi_create_int32(env, fds[i], &end) != napi_ok) goto fail;
    if (napi_set_element(env, pair, i, end) != napi_ok) goto fail;
  }
  return pair;
fail:
  close(fds[0]);
  close(fds[1]);
  napi_throw_error(env, code, what);
  return NULL;
}

/* pipe() -> [readFd, writeFd], both close-on-exec; throws an Error naming errno otherwise. */
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    throw_errno(env, "ERR_GUEST_PIPE", "pipe2");
    return NULL;
  }
  return fd_pair(env, fds, "ERR_GUEST_PIPE", "cannot return the pipe's descriptors");
}

/* Copies string argument `index` into `out`; 0 when it is not a string that fits. */
static int string_arg(napi_env env, napi_value *args, size_t index, char *out, size_t size) {
  size_t length;
  if (napi_get_value_string_utf8(env, args[index], out, size, &length) != napi_ok) return 0;
  return length < size - 1;
}

/* mount(source, target, type, flags, data): mount(2) with flags as a number; throws on errno. */
static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  char source[256], target[256], type[32], data[512];
  uint32_t flags;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 5 ||
      !string_arg(env, args, 0, source, sizeof source) || !string_arg(env, args, 1, target, sizeof target) ||
      !string_arg(env, args, 2, type, sizeof type) || napi_get_value_uint32(env, args[3], &flags) != napi_ok ||
      !string_arg(env, args, 4, data, sizeof data)) {
    napi_throw_type_error(env, "ERR_GUEST_MOUNT", "mount(source, target, type, flags, data) takes four short strings and a number");
    return NULL;
  }
  if (mount(source, target, type, flags, data[0] ? data : NULL) != 0) {
    char what[300];
    snprintf(what, sizeof what, "mount %s on %s", type, target);
    throw_errno(env, "ERR_GUEST_MOUNT", what);
    return NULL;
  }
  return NULL;
}

/* Largest entropy buffer taken: the kernel's pool is 256 bits; more only costs time. */
#define MAX_ENTROPY_BYTES 512

/* addEntropy(buffer): credits `buffer` (from the host's getrandom) to the kernel's pool, then reseeds. */
static napi_value add_entropy(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  void *data;
  size_t length;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_buffer_info(env, args[0], &data, &length) != napi_ok || length == 0 || length > MAX_ENTROPY_BYTES) {
    napi_throw_type_error(env, "ERR_GUEST_ENTROPY", "addEntropy(buffer) takes 1 to 512 bytes");
    return NULL;
  }
  struct rand_pool_info *pool = malloc(sizeof *pool + length);
  if (!pool) {
    napi_throw_error(env, "ERR_GUEST_ENTROPY", "out of memory");
    return NULL;
  }
  pool->entropy_count = (int)(length * 8);
  pool->buf_size = (int)length;
  memcpy(pool->buf, data, length);
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  int ok = fd >= 0 && ioctl(fd, RNDADDENTROPY, pool) == 0 && ioctl(fd, RNDRESEEDCRNG) == 0;
  int saved = errno;
  if (fd >= 0) close(fd);
  memset(pool->buf, 0, length);
  free(pool);
  if (!ok) {
    errno = saved;
    throw_errno(env, "ERR_GUEST_ENTROPY", "reseeding the kernel's random number generator");
  }
  return NULL;
}

/* setRealtime(ms): sets CLOCK_REALTIME to `ms` milliseconds since the epoch. */
static napi_value set_realtime(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  double ms;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 1 ||
      napi_get_value_double(env, args[0], &ms) != napi_ok || !(ms > 0 && ms < 1e15)) {
    napi_throw_type_error(env, "ERR_GUEST_CLOCK", "setRealtime(ms) takes milliseconds since the epoch");
    return NULL;
  }
  struct timespec now = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
  if (clock_settime(CLOCK_REALTIME, &now) != 0) throw_errno(env, "ERR_GUEST_CLOCK", "clock_settime");
  return NULL;
}

/* socketPair() -> [fd, fd]: a connected unix stream socket pair, both close-on-exec. */
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    throw_errno(env, "ERR_GUEST_SOCKET", "socketpair");
    return NULL;
  }
  return fd_pair(env, fds, "ERR_GUEST_SOCKET", "cannot return the socket's descriptors");
}

/*
 * sendWithFds(socket, bytes, [fd, fd, fd]): sends `bytes` in one sendmsg, its first byte
 * carrying the descriptors; never blocks (the socket may be Node's, non-blocking): throws with
 * errno's name, EAGAIN included, when not all of it could be sent.
 */
static napi_value send_with_fds(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  int32_t socket_fd;
  void *data;
  size_t length;
  uint32_t count;
  bool is_array;
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc != 3 ||
      napi_get_value_int32(env, args[0], &socket_fd) != napi_ok ||
      napi_get_buffer_info(env, args[1], &data, &length) != napi_ok || length == 0 ||
      napi_is_array(env, args[2], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, args[2], &count) != napi_ok || count == 0 || count > 3) {
    napi_throw_type_error(env, "ERR_GUEST_SOCKET", "sendWithFds(fd, buffer, [1 to 3 fds])");
    return NULL;
  }
  int fds[3];
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    if (napi_get_element(env, args[2], i, &element) != napi_ok ||
        napi_get_value_int32(env, element, &fds[i]) != napi_ok || fds[i] < 0) {
      napi_throw_type_error(env, "ERR_GUEST_SOCKET", "sendWithFds: a descriptor is a number");
      return NULL;
    }
  }
  char control[CMSG_SPACE(3 * sizeof(int))];
  memset(control, 0, sizeof control);
  struct iovec iov = {data, length};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                           .msg_controllen = CMSG_SPACE(count * sizeof(int))};
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(count * sizeof(int));
  memcpy(CMSG_DATA(cmsg), fds, count * sizeof(int));
  ssize_t sent;
  do sent = sendmsg(socket_fd, &message, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (sent < 0 && errno == EINTR);
  if (sent < 0) throw_errno(env, "ERR_GUEST_SOCKET", "sendmsg");
  else if ((size_t)sent != length) napi_throw_error(env, "ERR_GUEST_SOCKET", "sendmsg: sent in part");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  const napi_property_descriptor functions[] = {
      {"pipe", NULL, make_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, do_mount, NULL, NULL, NULL, napi_default, NULL},
      {"addEntropy", NULL, add_entropy, NULL, NULL, NULL, napi_default, NULL},
      {"setRealtime", NULL, set_realtime, NULL, NULL, NULL, napi_default, NULL},
      {"socketPair", NULL, socket_pair, NULL, NULL, NULL, napi_default, NULL},
      {"sendWithFds", NULL, send_with_fds, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
