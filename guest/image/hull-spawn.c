/*
 * hull-spawn: starts one process in a running container, as `crun exec --detach` would for a
 * process without a terminal, without crun: under software emulation every crun exec pays
 * for translating crun, its libraries and its JSON parsing afresh; this static program does
 * only the system calls that make the process.
 *
 *   hull-spawn -p PID -c CGROUP [-u UID] [-g GID] [-G GID,...] [-m UMASK] [-d CWD]
 *              [-B HEX] [-E HEX] [-P HEX] [-I HEX] [-A HEX] [-n] [-r RES,SOFT,HARD ...]
 *              -- FILE [ARG...]
 *
 * PID is the container's init: the process joins its namespaces. CGROUP is the container's
 * cgroup directory (as the guest sees it). -B/-E/-P/-I/-A are the capability sets (bounding,
 * effective, permitted, inheritable, ambient) as bit masks, -n sets no_new_privs, -r one
 * resource limit (RES its number, "-" for unlimited). The environment of hull-spawn is the
 * process's, unchanged. Stdin, stdout and stderr are the process's own.
 *
 * What it does, in crun exec's order:
 *   1. marks itself non-dumpable, so that nothing in the container can open /proc/N/{fd,exe,
 *      mem} of its child before that execs (the child inherits it; the exec resets it); opens
 *      PID's namespaces and the cgroup;
 *   2. joins PID's pid namespace for its children only, and forks the child into the cgroup
 *      (clone3 CLONE_INTO_CGROUP, as crun; on a kernel without it the child writes itself into
 *      cgroup.procs before entering the cgroup namespace): the child is in the container's pid
 *      namespace and cgroup; hull-spawn itself never is;
 *   3. the child marks every descriptor but 0, 1 and 2 close-on-exec, and joins the cgroup,
 *      IPC, UTS, network and last the mount namespace, which also sets its root and working
 *      directory to the container's root;
 *   4. resource limits (while it may still raise them), the working directory, the umask, and
 *      HOME from the container's /etc/passwd when the environment has none;
 *   5. drops the bounding set, sets the groups, gid and uid keeping its capabilities, then
 *      sets the effective, permitted and inheritable sets and raises the ambient ones;
 *   6. no_new_privs, then execve of FILE, looked up in the process's PATH as crun does.
 * Namespaces the container shares with the agent (the same inode) are not joined. A container
 * with a user or time namespace, a seccomp filter, or a process with a terminal or other
 * settings is left to crun (the agent decides: guest/agent/direct-exec.ts).
 *
 * It reports on descriptor 3: "PID\n" (the process's pid in the guest) once the process has
 * exec'd, and exits 0; or a one-line message, exit status 1, when any step failed (nothing
 * is left running then, and the child's exit is reaped here). The process is not waited for:
 * once hull-spawn exits it belongs to PID 1, which reaps it, as a process crun exec left.
 *
 * The agent runs it once as a server (`hull-spawn --serve --sealed /usr/bin/crun`, see serve()
 * and sealed_copy() below) and asks it for each process; the command line above is the same,
 * carried in the request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPORT_FD 3
#define MAX_GROUPS 64
#define MAX_RLIMITS 16
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The namespaces a child joins after the fork, in order: the mount namespace last. */
static const struct {
  const char *name;
  int type;
} JOINED[] = {
    {"cgroup", CLONE_NEWCGROUP}, {"ipc", CLONE_NEWIPC}, {"uts", CLONE_NEWUTS},
    {"net", CLONE_NEWNET},       {"mnt", CLONE_NEWNS},
};
#define JOINED_COUNT (sizeof JOINED / sizeof JOINED[0])

struct limit {
  int resource;
  struct rlimit value;
};

struct options {
  long pid;
  const char *cgroup;
  uid_t uid;
  gid_t gid;
  gid_t groups[MAX_GROUPS];
  int group_count;
  mode_t umask;
  const char *cwd;
  uint64_t bounding, effective, permitted, inheritable, ambient;
  int no_new_privs;
  struct limit limits[MAX_RLIMITS];
  int limit_count;
  char **argv;
};

/* In server mode, the request whose report this process writes (see serve()). */
static const char *request_id;

/*
 * Writes a one-line message to `fd` (the report descriptor, or the child's error pipe), in one
 * write: reports of concurrent requests share the server's socket. A report starts with the
 * request's id in server mode.
 */
static void say(int fd, const char *format, ...) {
  char line[600];
  int prefix = fd == REPORT_FD && request_id ? snprintf(line, 80, "%.64s ", request_id) : 0;
  va_list args;
  va_start(args, format);
  int n = prefix + vsnprintf(line + prefix, 512, format, args);
  va_end(args);
  if (n < prefix) return;
  if (n > prefix + 511) n = prefix + 511;
  line[n++] = '\n';
  ssize_t ignored = write(fd, line, n);
  (void)ignored;
}

static int usage(const char *why) {
  say(REPORT_FD, "hull-spawn: %s", why);
  return 1;
}

static int parse_u64(const char *text, int base, uint64_t max, uint64_t *out) {
  if (!*text || *text == '-' || *text == '+') return -1;
  char *end;
  errno = 0;
  unsigned long long value = strtoull(text, &end, base);
  if (errno || *end || value > max) return -1;
  *out = value;
  return 0;
}

static int parse_limit(char *text, struct limit *out) {
  char *soft = strchr(text, ',');
  char *hard = soft ? strchr(soft + 1, ',') : NULL;
  if (!soft || !hard) return -1;
  *soft++ = 0;
  *hard++ = 0;
  uint64_t resource, value;
  if (parse_u64(text, 10, RLIM_NLIMITS - 1, &resource)) return -1;
  out->resource = (int)resource;
  if (strcmp(soft, "-") == 0) out->value.rlim_cur = RLIM_INFINITY;
  else if (parse_u64(soft, 10, UINT64_MAX, &value)) return -1;
  else out->value.rlim_cur = value;
  if (strcmp(hard, "-") == 0) out->value.rlim_max = RLIM_INFINITY;
  else if (parse_u64(hard, 10, UINT64_MAX, &value)) return -1;
  else out->value.rlim_max = value;
  return 0;
}

static int parse_groups(char *text, struct options *o) {
  if (!*text) return 0;
  for (char *item = strtok(text, ","); item; item = strtok(NULL, ",")) {
    uint64_t gid;
    if (o->group_count == MAX_GROUPS || parse_u64(item, 10, UINT32_MAX - 1, &gid)) return -1;
    o->groups[o->group_count++] = (gid_t)gid;
  }
  return 0;
}

static int parse(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->umask = 022;
  int opt;
  uint64_t n;
  while ((opt = getopt(argc, argv, "+p:c:u:g:G:m:d:B:E:P:I:A:nr:")) != -1) {
    switch (opt) {
      case 'p':
        if (parse_u64(optarg, 10, INT_MAX, &n) || n < 2) return usage("-p: a container init's pid");
        o->pid = (long)n;
        break;
      case 'c':
        if (optarg[0] != '/') return usage("-c: an absolute cgroup directory");
        o->cgroup = optarg;
        break;
      case 'u':
        if (parse_u64(optarg, 10, UINT32_MAX - 1, &n)) return usage("-u: a uid");
        o->uid = (uid_t)n;
        break;
      case 'g':
        if (parse_u64(optarg, 10, UINT32_MAX - 1, &n)) return usage("-g: a gid");
        o->gid = (gid_t)n;
        break;
      case 'G':
        if (parse_groups(optarg, o)) return usage("-G: at most 64 gids, comma-separated");
        break;
      case 'm':
        if (parse_u64(optarg, 8, 0777, &n)) return usage("-m: an octal umask");
        o->umask = (mode_t)n;
        break;
      case 'd':
        if (optarg[0] != '/') return usage("-d: an absolute working directory");
        o->cwd = optarg;
        break;
      case 'B':
      case 'E':
      case 'P':
      case 'I':
      case 'A': {
        if (parse_u64(optarg, 16, UINT64_MAX, &n)) return usage("a capability set is a hex mask");
        uint64_t *set = opt == 'B'   ? &o->bounding
                        : opt == 'E' ? &o->effective
                        : opt == 'P' ? &o->permitted
                        : opt == 'I' ? &o->inheritable
                                     : &o->ambient;
        *set = n;
        break;
      }
      case 'n':
        o->no_new_privs = 1;
        break;
      case 'r':
        if (o->limit_count == MAX_RLIMITS || parse_limit(optarg, &o->limits[o->limit_count++]))
          return usage("-r: RESOURCE,SOFT,HARD (at most 16)");
        break;
      default:
        return usage("unknown option");
    }
  }
  if (!o->pid || !o->cgroup) return usage("-p and -c are required");
  if (optind >= argc || !argv[optind][0]) return usage("no program to run");
  o->argv = argv + optind;
  return 0;
}

/* An open namespace of PID, or -1 when it is this process's own (nothing to join). */
static int namespace_of(long pid, const char *name, int *fd) {
  char path[64];
  struct stat theirs, ours;
  snprintf(path, sizeof path, "/proc/%ld/ns/%s", pid, name);
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd < 0) return -1;
  snprintf(path, sizeof path, "/proc/self/ns/%s", name);
  if (fstat(*fd, &theirs) || stat(path, &ours)) return -1;
  if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino) {
    close(*fd);
    *fd = -1;
  }
  return 0;
}

static int last_capability(void) {
  int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  char text[16] = {0};
  int last = -1;
  if (fd >= 0 && read(fd, text, sizeof text - 1) > 0) last = atoi(text);
  if (fd >= 0) close(fd);
  return last >= 0 && last < 64 ? last : CAP_LAST_CAP;
}

/*
 * HOME, when the process's environment has none: the user's home in the container's
 * /etc/passwd, else "/", as crun sets it. Read as a regular file only (a FIFO there would
 * block), at most 1 MiB of it.
 */
static void set_home(uid_t uid) {
  if (getenv("HOME")) return;
  const char *home = "/";
  static char line[4096];
  int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  struct stat st;
  FILE *file = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? fdopen(fd, "r") : NULL;
  if (!file && fd >= 0) close(fd);
  for (long read_bytes = 0; file && read_bytes < (1L << 20) && fgets(line, sizeof line, file);) {
    read_bytes += strlen(line);
    /* name:password:uid:gid:gecos:home:shell */
    char *fields[7] = {0};
    char *p = line;
    int n = 0;
    for (; n < 7 && p; n++) {
      fields[n] = p;
      p = strchr(p, ':');
      if (p) *p++ = 0;
    }
    uint64_t id;
    if (n < 6 || parse_u64(fields[2], 10, UINT32_MAX, &id) || id != uid) continue;
    fields[5][strcspn(fields[5], "\n")] = 0;
    if (fields[5][0]) home = fields[5];
    break;
  }
  setenv("HOME", home, 1);
  if (file) fclose(file);
}

/* Step 5, with the last capability number read before the mount namespace changed. */
static int set_credentials(const struct options *o, int last_cap, int err) {
  for (int cap = 0; cap <= last_cap; cap++) {
    if (!(o->bounding & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)) {
      say(err, "dropping capability %d from the bounding set: %s", cap, strerror(errno));
      return -1;
    }
  }
  if (setgroups(o->group_count, o->groups)) {
    say(err, "setgroups: %s", strerror(errno));
    return -1;
  }
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) || setresgid(o->gid, o->gid, o->gid) ||
      setresuid(o->uid, o->uid, o->uid)) {
    say(err, "setting uid %u and gid %u: %s", o->uid, o->gid, strerror(errno));
    return -1;
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {
      {(uint32_t)o->effective, (uint32_t)o->permitted, (uint32_t)o->inheritable},
      {(uint32_t)(o->effective >> 32), (uint32_t)(o->permitted >> 32), (uint32_t)(o->inheritable >> 32)},
  };
  if (syscall(SYS_capset, &header, data)) {
    say(err, "setting capabilities: %s", strerror(errno));
    return -1;
  }
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) && errno != EINVAL) {
    say(err, "clearing ambient capabilities: %s", strerror(errno));
    return -1;
  }
  for (int cap = 0; cap <= last_cap; cap++) {
    if ((o->ambient & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)) {
      say(err, "raising ambient capability %d: %s", cap, strerror(errno));
      return -1;
    }
  }
  if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0)) return -1;
  if (o->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) {
    say(err, "no_new_privs: %s", strerror(errno));
    return -1;
  }
  return 0;
}

/* Step 6: FILE as is when it holds a slash, else the first executable regular file on PATH. */
static void exec_program(char **argv, int err) {
  const char *file = argv[0];
  if (strchr(file, '/')) {
    execv(file, argv);
    say(err, "exec `%s`: %s", file, strerror(errno));
    return;
  }
  const char *path = getenv("PATH");
  if (!path || !*path) path = DEFAULT_PATH;
  char candidate[PATH_MAX];
  for (const char *dir = path; *dir;) {
    const char *end = strchrnul(dir, ':');
    int n = snprintf(candidate, sizeof candidate, "%.*s/%s", (int)(end - dir), end == dir ? "." : dir, file);
    dir = *end ? end + 1 : end;
    struct stat st;
    if (n <= 0 || n >= (int)sizeof candidate || stat(candidate, &st) || !S_ISREG(st.st_mode) ||
        access(candidate, X_OK))
      continue;
    execv(candidate, argv);
    say(err, "exec `%s`: %s", candidate, strerror(errno));
    return;
  }
  say(err, "executable file `%s` not found in $PATH: No such file or directory", file);
}

/*
 * Forks a child born in the cgroup `cgroup_dir` (clone3's CLONE_INTO_CGROUP, as crun does):
 * moving a process between cgroups afterwards waits for an RCU grace period, slow under
 * emulation. On a kernel without it, a plain fork, and the child writes itself into
 * cgroup.procs; otherwise `*cgroup_procs` is closed and set to -1 (nothing left to do).
 */
static pid_t fork_into(int cgroup_dir, int *cgroup_procs) {
  struct {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
  } args = {.flags = 0x200000000ULL /* CLONE_INTO_CGROUP */, .exit_signal = SIGCHLD, .cgroup = (uint64_t)cgroup_dir};
  long pid = syscall(SYS_clone3, &args, sizeof args);
  if (pid >= 0) {
    close(*cgroup_procs);
    *cgroup_procs = -1;
    return (pid_t)pid;
  }
  if (errno != ENOSYS && errno != E2BIG && errno != EINVAL) return -1;
  return fork();
}

/* Steps 3 to 6, in the forked child; returns only on failure, having said why on `err`. */
static void child(const struct options *o, int joined[], int cgroup_procs, int last_cap, int err) {
  /* Whatever else the agent left open is closed at exec, as crun closes what it does not pass. */
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC)) {
    say(err, "close_range: %s", strerror(errno));
    return;
  }
  if (cgroup_procs >= 0 && write(cgroup_procs, "0", 1) != 1) {
    say(err, "joining the container's cgroup %s: %s", o->cgroup, strerror(errno));
    return;
  }
  if (cgroup_procs >= 0) close(cgroup_procs);
  for (size_t i = 0; i < JOINED_COUNT; i++) {
    if (joined[i] < 0) continue;
    if (setns(joined[i], JOINED[i].type)) {
      say(err, "joining the container's %s namespace: %s", JOINED[i].name, strerror(errno));
      return;
    }
    close(joined[i]);
  }
  for (int i = 0; i < o->limit_count; i++) {
    if (setrlimit(o->limits[i].resource, &o->limits[i].value)) {
      say(err, "setrlimit %d: %s", o->limits[i].resource, strerror(errno));
      return;
    }
  }
  if (o->cwd && chdir(o->cwd)) {
    say(err, "chdir to `%s`: %s", o->cwd, strerror(errno));
    return;
  }
  umask(o->umask);
  set_home(o->uid);
  if (set_credentials(o, last_cap, err)) return;
  exec_program(o->argv, err);
}

/*
 * The parent's side of a start, for spawn() and spawn_plain() alike: the child says why it
 * failed on `errors` (close-on-exec), so end of file without a word means it exec'd. Says the
 * child's pid, or its one-line reason, on REPORT_FD; returns the exit status.
 */
static int report_child(pid_t pid, int errors[2]) {
  close(errors[1]);
  char why[512];
  ssize_t n;
  do n = read(errors[0], why, sizeof why - 1);
  while (n < 0 && errno == EINTR);
  close(errors[0]);
  if (n < 0) {
    say(REPORT_FD, "reading the child's report: %s", strerror(errno));
    return 1;
  }
  if (n > 0) {
    /* The child wrote before _exit: reap it here, so that no exit reaches PID 1 unclaimed. */
    why[n] = 0;
    const char *line = strtok(why, "\n");
    say(REPORT_FD, "%s", line ? line : "the child failed without saying why");
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return 1;
  }
  say(REPORT_FD, "%d", (int)pid);
  return 0;
}

/* One request: everything above but the parsing. Reports on REPORT_FD; returns the exit status. */
static int spawn(struct options o) {
  int last_cap = last_capability();
  int pid_ns, joined[JOINED_COUNT];
  if (namespace_of(o.pid, "pid", &pid_ns)) {
    say(REPORT_FD, "opening the pid namespace of process %ld: %s", o.pid, strerror(errno));
    return 1;
  }
  for (size_t i = 0; i < JOINED_COUNT; i++) {
    if (namespace_of(o.pid, JOINED[i].name, &joined[i])) {
      say(REPORT_FD, "opening the %s namespace of process %ld: %s", JOINED[i].name, o.pid, strerror(errno));
      return 1;
    }
  }
  char procs[PATH_MAX];
  if (snprintf(procs, sizeof procs, "%s/cgroup.procs", o.cgroup) >= (int)sizeof procs)
    return usage("-c: too long");
  int cgroup_dir = open(o.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int cgroup_procs = open(procs, O_WRONLY | O_CLOEXEC);
  if (cgroup_dir < 0 || cgroup_procs < 0) {
    say(REPORT_FD, "opening %s: %s", procs, strerror(errno));
    return 1;
  }
  if (pid_ns >= 0 && setns(pid_ns, CLONE_NEWPID)) {
    say(REPORT_FD, "joining the container's pid namespace: %s", strerror(errno));
    return 1;
  }
  /* The child says why it failed on this pipe; end of file without a word means it exec'd. */
  int errors[2];
  if (pipe2(errors, O_CLOEXEC)) {
    say(REPORT_FD, "pipe: %s", strerror(errno));
    return 1;
  }
  pid_t pid = fork_into(cgroup_dir, &cgroup_procs);
  if (pid < 0) {
    say(REPORT_FD, "fork: %s", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    close(errors[0]);
    close(cgroup_dir);
    close(REPORT_FD);
    if (pid_ns >= 0) close(pid_ns);
    child(&o, joined, cgroup_procs, last_cap, errors[1]);
    _exit(127);
  }
  return report_child(pid, errors);
}

/*
 * Server mode (`hull-spawn --serve`), which the agent starts once: descriptor 3 is a stream
 * socket to the agent. A request is a 4-byte length (host order) and that many bytes, the
 * first of them carrying three descriptors (SCM_RIGHTS: the process's stdin, stdout, stderr):
 *   ID \0 ENVCOUNT \0 ENV... ARGS...       every string NUL-ended
 * ENV the process's environment, ARGS the command line's options and program as above. For
 * each, a child of the server (small, so its fork is cheap where forking the agent is not)
 * does what the command line would and writes "ID PID\n" or "ID MESSAGE\n" to the socket. A
 * malformed request is answered with a message (under its id when it has one); a broken
 * stream (a short read, missing descriptors) ends the server, as the agent's end closing does.
 */
#define MAX_REQUEST_BYTES (1 << 20)
#define MAX_STRINGS 65536

static int read_exactly(int fd, char *buffer, size_t size) {
  for (size_t done = 0; done < size;) {
    ssize_t n = read(fd, buffer + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    done += n;
  }
  return 0;
}

/* The request's length and its three descriptors; 1 at the end of the stream, -1 on error. */
static int receive_header(uint32_t *length, int fds[3]) {
  char control[CMSG_SPACE(3 * sizeof(int))];
  struct iovec iov = {length, sizeof *length};
  struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do n = recvmsg(REPORT_FD, &message, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  while (n < 0 && errno == EINTR);
  if (n == 0) return 1;
  if (n != sizeof *length || (message.msg_flags & (MSG_CTRUNC | MSG_TRUNC))) return -1;
  struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
  if (!cmsg || cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS ||
      cmsg->cmsg_len != CMSG_LEN(3 * sizeof(int))) {
    /* Close whatever came, however many. */
    for (; cmsg; cmsg = CMSG_NXTHDR(&message, cmsg)) {
      if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
      int *received = (int *)CMSG_DATA(cmsg);
      for (size_t i = 0; i < (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) close(received[i]);
    }
    return -1;
  }
  memcpy(fds, CMSG_DATA(cmsg), 3 * sizeof(int));
  return 0;
}

/* Splits the request into strings; the id, environment and command line as argv-style arrays. */
static int split_request(char *body, uint32_t length, char ***env, char ***argv, int *argc) {
  if (length == 0 || body[length - 1] != 0) return -1;
  size_t count = 0;
  for (uint32_t i = 0; i < length; i++) count += body[i] == 0;
  if (count < 3 || count > MAX_STRINGS) return -1;
  char **strings = calloc(count + 2, sizeof *strings);
  if (!strings) return -1;
  /* strings[0] stands for argv[0] of the command line. */
  strings[0] = "hull-spawn";
  char *p = body;
  for (size_t i = 1; i <= count; i++, p += strlen(p) + 1) strings[i] = p;
  request_id = strings[1];
  uint64_t env_count;
  if (!request_id[0] || strlen(request_id) > 64 || parse_u64(strings[2], 10, count - 2, &env_count)) return -1;
  /* Environment: strings[3 .. 3+env_count); its array NULL-ended in place of argv[0]'s slot. */
  char **environment = calloc(env_count + 1, sizeof *environment);
  if (!environment) return -1;
  memcpy(environment, strings + 3, env_count * sizeof *environment);
  *env = environment;
  /* The command line: "hull-spawn" then what follows the environment. */
  char **command = strings + 2 + env_count;
  command[0] = "hull-spawn";
  *argv = command;
  *argc = (int)(count - 1 - env_count);
  return 0;
}

/*
 * Programs the server starts from a sealed copy in memory (`--serve --sealed FILE`). crun, at
 * every start, re-executes itself from a read-only copy of its binary (a bind mount of
 * /proc/self/exe, a mount, a remount and an unmount, then its dynamic loading a second time)
 * so that a container cannot overwrite it through /proc/PID/exe (CVE-2019-5736), unless
 * its executable already is a memfd sealed against every write, shrink and growth. Under
 * software emulation that second start costs tens of milliseconds per crun command; one
 * sealed copy, made at the agent's start (a template's clones share it), gives the same
 * protection: nothing, not even this server, can change it once sealed.
 */
#define MAX_SEALED 4
#define STR_(x) #x
#define STR(x) STR_(x)
#define SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)
static struct {
  const char *path;
  int fd;
} sealed[MAX_SEALED];
static int sealed_count;

/* The sealed copy of `path` (close-on-exec), or -1 with errno set. */
static int sealed_copy(const char *path) {
  int source = open(path, O_RDONLY | O_CLOEXEC);
  if (source < 0) return -1;
  int copy = memfd_create(path, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (copy < 0) goto fail;
  char buffer[65536];
  for (;;) {
    ssize_t n = read(source, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) goto fail;
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(copy, buffer + done, n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) goto fail;
      done += w;
    }
  }
  /* Nobody but root may open it for writing (which the seals then refuse, see spawn_plain). */
  if (fchmod(copy, 0555) || fcntl(copy, F_ADD_SEALS, SEALS)) goto fail;
  close(source);
  return copy;
fail:;
  int saved = errno;
  close(source);
  if (copy >= 0) close(copy);
  errno = saved;
  return -1;
}

/* The sealed copy made for `path` at the server's start, or -1. */
static int sealed_fd(const char *path) {
  for (int i = 0; i < sealed_count; i++)
    if (strcmp(sealed[i].path, path) == 0) return sealed[i].fd;
  return -1;
}

/*
 * `--plain FILE [ARG...]` (server mode only): starts FILE, an absolute path, in the guest as it
 * is, outside any container: the agent's own tools (crun) without a fork of the agent. The
 * report is the same; the process, once this child exits, is PID 1's, which reaps it and tells
 * the agent its exit status.
 */
static int spawn_plain(char **argv) {
  if (!argv[0] || argv[0][0] != '/') return usage("--plain: an absolute program path");
  int errors[2];
  if (pipe2(errors, O_CLOEXEC)) {
    say(REPORT_FD, "pipe: %s", strerror(errno));
    return 1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    say(REPORT_FD, "fork: %s", strerror(errno));
    return 1;
  }
  if (pid == 0) {
    close(errors[0]);
    close(REPORT_FD);
    if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC)) {
      say(errors[1], "close_range: %s", strerror(errno));
      _exit(127);
    }
    int copy = sealed_fd(argv[0]);
    /*
     * The copy cannot be changed, but it can be kept from running: a process that got a handle
     * on it (/proc/PID/exe of a crun it started, say) and reopened it for writing makes every
     * exec of it fail with ETXTBSY while it holds that. The program's own file runs then, and
     * crun protects itself as it would without the copy.
     */
    if (copy >= 0) fexecve(copy, argv, environ);
    execv(argv[0], argv);
    say(errors[1], "exec %s: %s", argv[0], strerror(errno));
    _exit(127);
  }
  return report_child(pid, errors);
}

/* A child of the server, for one request: its stdio, environment and options, then spawn(). */
static int serve_one(char *body, uint32_t length, int fds[3]) {
  signal(SIGCHLD, SIG_DFL);
  char **env, **argv;
  int argc;
  if (split_request(body, length, &env, &argv, &argc)) return usage("a malformed request");
  for (int i = 0; i < 3; i++) {
    if (dup2(fds[i], i) < 0) {
      say(REPORT_FD, "dup2: %s", strerror(errno));
      return 1;
    }
  }
  environ = env;
  if (argc >= 2 && strcmp(argv[1], "--plain") == 0) return spawn_plain(argv + 2);
  struct options o;
  optind = 1;
  if (parse(argc, argv, &o)) return 1;
  return spawn(o);
}

static int serve(void) {
  /* Children that handled a request are reaped by the kernel; their own children reset this. */
  signal(SIGCHLD, SIG_IGN);
  for (;;) {
    uint32_t length;
    int fds[3];
    int got = receive_header(&length, fds);
    if (got == 1) return 0;
    if (got < 0 || length == 0 || length > MAX_REQUEST_BYTES) return 1;
    char *body = malloc(length);
    if (!body || read_exactly(REPORT_FD, body, length)) return 1;
    pid_t pid = fork();
    if (pid == 0) _exit(serve_one(body, length, fds));
    for (int i = 0; i < 3; i++) close(fds[i]);
    free(body);
    if (pid < 0) return 1;
  }
}

int main(int argc, char **argv) {
  if (fcntl(REPORT_FD, F_GETFD) < 0) return 1;
  /* Nothing in a container may open this process's or its children's /proc entries. */
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) return usage("cannot mark itself non-dumpable");
  if (argc >= 2 && strcmp(argv[1], "--serve") == 0) {
    /* `--sealed FILE`, each an absolute path; a copy that cannot be made is said and skipped. */
    for (int i = 2; i < argc; i += 2) {
      if (strcmp(argv[i], "--sealed") || i + 1 >= argc || argv[i + 1][0] != '/' || sealed_count == MAX_SEALED)
        return usage("--serve [--sealed FILE]... (FILE an absolute path, at most " STR(MAX_SEALED) ")");
      if (sealed_fd(argv[i + 1]) >= 0) continue;
      int fd = sealed_copy(argv[i + 1]);
      if (fd < 0) fprintf(stderr, "hull-spawn: no sealed copy of %s: %s\n", argv[i + 1], strerror(errno));
      else {
        sealed[sealed_count].path = argv[i + 1];
        sealed[sealed_count++].fd = fd;
      }
    }
    return serve();
  }
  struct options o;
  if (parse(argc, argv, &o)) return 1;
  return spawn(o);
}
