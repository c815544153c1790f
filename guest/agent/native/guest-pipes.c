/*
 * guest-pipes: the one system call the guest agent needs that Node does not offer.
 *
 * Node gives a child process socketpairs for 'pipe' stdio. A container process whose stdout
 * is a socket cannot reopen it: open("/dev/stdout") (/proc/self/fd/1) fails with ENXIO, and
 * programs that log to /dev/stdout (nginx, httpd) exit. runc gives pipes; so does hull, made
 * here with pipe2() and handed to crun as plain file descriptors.
 *
 * A Node-API addon (ABI-stable, loaded by the agent with process.dlopen) rather than a helper
 * process: a pipe must be made in the process that keeps its other end.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <node_api.h>

/* pipe() -> [readFd, writeFd], both close-on-exec; throws an Error naming errno otherwise. */
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    char message[128];
    snprintf(message, sizeof message, "pipe2: %s", strerror(errno));
    napi_throw_error(env, "ERR_GUEST_PIPE", message);
    return NULL;
  }
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
  napi_throw_error(env, "ERR_GUEST_PIPE", "cannot return the pipe's descriptors");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "pipe", NAPI_AUTO_LENGTH, make_pipe, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "pipe", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
