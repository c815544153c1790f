/*
 * hull-init: PID 1 of a hull guest.
 *
 * It starts the agent and then does the two things a Node program cannot do as PID 1:
 *  - reap every orphan (containers created by `crun create` are reparented here), and tell
 *    the agent each reaped pid and its wait status through a pipe on the agent's fd 3, so the
 *    agent learns exit codes of processes it did not fork itself;
 *  - never die silently: when the agent exits, say so on the console and power the VM off
 *    (QEMU runs with -no-reboot, so a reboot ends the VM and the host sees it exit).
 *
 * Before that it mounts what every container host needs (proc, sys, cgroup2, tmpfs, devpts):
 * mount(2) here costs nothing, where each `mount` command the agent spawned would cost tens
 * of milliseconds under software emulation. The sandbox's 9p share is the agent's to mount.
 *
 * The agent's V8 startup snapshot comes on its own read-only disk (serial "hull-snapshot"),
 * built by a guest of the same CPU model, because V8 refuses a snapshot made for other CPU
 * features. Should it be refused anyway (the image moved to another host), the agent dies
 * before it writes its ready byte on fd 4; hull-init then starts it again without the
 * snapshot and tells it so (HULL_AGENT_SNAPSHOT=rejected), and the agent tells the host.
 * With `hull.build_snapshot` on the kernel command line, hull-init instead builds that
 * snapshot into the 9p share and powers off: that is how `hull image build` makes it.
 *
 * With `hull.debug_console`, it also keeps a root shell on the virtio-serial port named
 * "debug.0" for `hull debug-console` (off unless the host's configuration asks for it): a
 * shell that ends, when the user leaves, is started again for the next one.
 *
 * It also starts reading ahead, into the page cache, the files listed in /opt/hull/page-cache.list
 * (crun and its libraries, see src/image/rootfs.ts): the reads go on in the background while
 * the agent starts, so a VM template is saved with them cached and its clones share them.
 *
 * Records on the reaper pipe are text lines "PID STATUS\n" (STATUS is the raw waitpid status).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <poll.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define SNAPSHOT_DIR "/run/hull/snapshot"
#define SNAPSHOT_BLOB SNAPSHOT_DIR "/agent.blob"
#define AGENT_SCRIPT "/opt/hull/agent.cjs"
#define SHARE_DIR "/run/hull/shared"
#define PAGE_CACHE_LIST "/opt/hull/page-cache.list"

/*
 * V8 runs the agent by its interpreter alone (--jitless: no optimizing nor baseline compiler, no
 * WebAssembly, which the agent does not use). Under software emulation each clone of a VM
 * template translates anew every guest instruction it runs: code V8 generates is new machine
 * code for each function, and TurboFan itself is a large body of code, which a clone's first
 * requests woke up (functions made hot in the template were optimized in the clone), while the
 * interpreter's handlers are one body of code shared by all functions. A templated
 * `hull run true` (medians of pairs, in turn): 1.20 s with the compilers, 0.97 s with
 * --no-opt (12 pairs), 0.89 against 0.97 with --jitless (10 pairs); its QEMU's peak memory
 * 165 -> 141 -> 136 MiB (less translated code). The agent relays bytes and starts processes;
 * it never runs long enough for compiled code to pay off.
 *
 * --no-memory-reducer-for-small-heaps: V8 otherwise arms its memory reducer the first time the
 * old generation grows 1 MiB before any full collection has run, as it does in each clone at
 * its first container, and the reducer then runs full collections seconds later in an idle
 * agent: marking and sweeping write over the heap's pages, which in a clone become pages of its
 * own (and nothing it frees returns to the host: clones report no free pages). A heap that has
 * had a full collection still gets the reducer. Three idle cloned busybox `sleep`s each side
 * by side, 20 / 60 s after their start: private guest pages 11.74 / 11.94 -> 8.55 / 9.07 MiB,
 * QEMU's anonymous memory besides translated code 33.3 / 33.5 -> 27.5 / 30.3 MiB (less of the
 * collector's code translated); a templated `hull run true` as fast (0.992 and, the order
 * swapped, 1.007; 14 pairs each). --no-memory-reducer did the same.
 *
 * --no-lazy: every function of the agent is compiled to bytecode when its script is, which is
 * when the agent's startup snapshot is built, and the snapshot keeps that bytecode; so does
 * every Node module the agent loads later, in a template's boot. V8 otherwise compiles a
 * function at its first call, and most of a clone's request paths (CreateSandbox, the create
 * past its warm-up, the spawn and reaper reports, a process's wait) were first called in the
 * clone: its V8 parsed and compiled 35 functions there (V8's function events: 150 ms of parse
 * and bytecode generation under TCG), and TCG translated V8's parser and bytecode generator
 * for it (172 KB of guest code, 13% of all a clone translates; QEMU's `info jit` and `-d
 * in_asm`). With it a templated `hull run true` translates 64.6k blocks instead of 73k, and
 * takes 0.901 s against 1.010 (medians, 16 pairs in turn, each with its own template); the
 * snapshot is 8.6 MB instead of 5.0.
 *
 * The snapshot is built under the flags it runs with, so that the two always agree (V8 refuses
 * a snapshot made under other flags).
 */
#define NODE_FLAGS "--jitless", "--no-memory-reducer-for-small-heaps", "--no-lazy"
static char *const agent_snapshot_argv[] = {"/usr/bin/node", NODE_FLAGS, "--snapshot-blob", SNAPSHOT_BLOB, NULL};
static char *const agent_script_argv[] = {"/usr/bin/node", NODE_FLAGS, AGENT_SCRIPT, NULL};
static char *const build_snapshot_argv[] = {
    "/usr/bin/node", NODE_FLAGS, "--snapshot-blob", SHARE_DIR "/agent.blob", "--build-snapshot", AGENT_SCRIPT, NULL,
};
#define AGENT_ENV(snapshot)                                                                                 \
  {                                                                                                          \
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "HULL_REAPER_FD=3", "HULL_READY_FD=4",               \
        "UV_THREADPOOL_SIZE=8", "HULL_AGENT_SNAPSHOT=" snapshot, NULL                                        \
  }
static char *const env_snapshot_used[] = AGENT_ENV("used");
static char *const env_snapshot_none[] = AGENT_ENV("none");
static char *const env_snapshot_rejected[] = AGENT_ENV("rejected");

static void power_off(const char *why) {
  fprintf(stderr, "hull-init: %s; powering off\n", why);
  fflush(stderr);
  sync();
  reboot(RB_AUTOBOOT);
  for (;;) pause();
}

/*
 * Reads a small text file (sysfs, procfs) into buf, NUL-terminated, without its trailing
 * newline; returns its length, or -1.
 */
static ssize_t read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  if (n > 0 && buf[n - 1] == '\n') n--;
  buf[n] = 0;
  return n;
}

struct guest_mount {
  const char *source, *target, *type;
  unsigned long flags;
  const char *data;
  int required;
};

/* The share's tag is fixed by hull's QEMU driver (storage/share.ts on the host). */
static const struct guest_mount mounts[] = {
    {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 1},
    {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 1},
    {"cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, "nsdelegate", 1},
    {"tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755", 1},
    {"tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 1},
    {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620", 1},
    {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 1},
};

/*
 * The sandbox share, mounted here only to build the snapshot into it: otherwise the agent
 * mounts it when the first container needs it (guest/agent/share.ts, whose tag and options
 * these must stay), so a VM not yet running a container holds no 9p attachment and can be saved.
 */
static const struct guest_mount share_mount = {
    "hullshare", SHARE_DIR, "9p", 0, "trans=virtio,version=9p2000.L,msize=262144,cache=mmap", 1};

/* mkdir -p, for the few nested mount points (/run/hull/snapshot, /run/hull/shared). */
static void make_dirs(const char *target) {
  char path[64];
  snprintf(path, sizeof path, "%s", target);
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    mkdir(path, 0755);
    *p = '/';
  }
  mkdir(path, 0755);
}

static void mount_one(const struct guest_mount *m) {
  make_dirs(m->target);
  if (mount(m->source, m->target, m->type, m->flags, m->data) != 0) {
    fprintf(stderr, "hull-init: cannot mount %s on %s: %s\n", m->type, m->target, strerror(errno));
    if (m->required) power_off("a required mount failed");
  }
}

static void mount_all(void) {
  for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) mount_one(&mounts[i]);
}

/*
 * Brings the loopback interface up. Pod containers share the guest's own network namespace
 * (it is the pod's network), where 127.0.0.1 must work as in any pod; one ioctl here costs
 * nothing, where running `ip` under emulation costs a process start.
 */
static void loopback_up(void) {
  int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &ifr) != 0 ||
      (ifr.ifr_flags |= IFF_UP, ioctl(sock, SIOCSIFFLAGS, &ifr) != 0))
    fprintf(stderr, "hull-init: cannot bring up lo: %s\n", strerror(errno));
  if (sock >= 0) close(sock);
}

/* "status N" or "signal N", for the console. */
static void describe_status(char *out, size_t size, int status) {
  if (WIFEXITED(status))
    snprintf(out, size, "status %d", WEXITSTATUS(status));
  else
    snprintf(out, size, "signal %d", WTERMSIG(status));
}

/* True when the kernel command line holds `word` as a whole word. */
static int cmdline_has(const char *word) {
  char buf[4096];
  if (read_text("/proc/cmdline", buf, sizeof buf) <= 0) return 0;
  size_t len = strlen(word);
  for (char *p = buf; (p = strstr(p, word)) != NULL; p += len) {
    int starts = p == buf || p[-1] == ' ';
    int ends = p[len] == 0 || p[len] == ' ' || p[len] == '\n';
    if (starts && ends) return 1;
  }
  return 0;
}

/* Mounts the disk whose virtio serial is "hull-snapshot", if the host attached one. */
static int mount_snapshot_disk(void) {
  DIR *dir = opendir("/sys/block");
  if (!dir) return 0;
  struct dirent *entry;
  int mounted = 0;
  while (!mounted && (entry = readdir(dir)) != NULL) {
    if (strncmp(entry->d_name, "vd", 2) != 0) continue;
    char path[300], serial[32];
    snprintf(path, sizeof path, "/sys/block/%s/serial", entry->d_name);
    if (read_text(path, serial, sizeof serial) <= 0 || strcmp(serial, "hull-snapshot") != 0) continue;
    snprintf(path, sizeof path, "/dev/%s", entry->d_name);
    make_dirs(SNAPSHOT_DIR);
    if (mount(path, SNAPSHOT_DIR, "erofs", MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) == 0)
      mounted = 1;
    else
      fprintf(stderr, "hull-init: cannot mount the snapshot disk %s: %s\n", path, strerror(errno));
  }
  closedir(dir);
  return mounted && access(SNAPSHOT_BLOB, R_OK) == 0;
}

/* Finds /dev/vportNpM whose sysfs name is `name`; 0 when there is none. */
static int find_port(const char *name, char *out, size_t size) {
  DIR *dir = opendir("/sys/class/virtio-ports");
  if (!dir) return 0;
  struct dirent *entry;
  int found = 0;
  while (!found && (entry = readdir(dir)) != NULL) {
    if (entry->d_name[0] == '.') continue;
    char path[300], port_name[64];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", entry->d_name);
    if (read_text(path, port_name, sizeof port_name) > 0 && strcmp(port_name, name) == 0) {
      snprintf(out, size, "/dev/%s", entry->d_name);
      found = 1;
    }
  }
  closedir(dir);
  return found;
}

/*
 * The debug console: waits until someone on the host connects to the port (until then the
 * port reads as hung up), then runs an interactive shell on it as root in the guest's own
 * namespaces. Returns the shell's pid, or -1.
 */
static pid_t start_debug_shell(const sigset_t *mask) {
  char port[300];
  if (!find_port("debug.0", port, sizeof port)) return -1;
  pid_t pid = fork();
  if (pid != 0) return pid;
  sigprocmask(SIG_SETMASK, mask, NULL);
  setsid();
  int fd = open(port, O_RDWR | O_CLOEXEC);
  if (fd < 0) _exit(126);
  for (;;) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 0) >= 0 && !(p.revents & POLLHUP)) break;
    usleep(200 * 1000);
  }
  if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0) _exit(126);
  char *const argv[] = {"/bin/sh", "-i", NULL};
  char *const env[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "PS1=hull-guest# ", "TERM=dumb", NULL};
  execve(argv[0], argv, env);
  _exit(127);
}

/* `hull.build_snapshot`: make the agent's startup snapshot in the share, then power off. */
static void build_snapshot(void) {
  mount_one(&share_mount);
  pid_t pid = fork();
  if (pid < 0) power_off("cannot fork to build the agent snapshot");
  if (pid == 0) {
    execve(build_snapshot_argv[0], build_snapshot_argv, env_snapshot_none);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) power_off("agent snapshot built");
  char how[32], why[96];
  describe_status(how, sizeof how, status);
  snprintf(why, sizeof why, "building the agent snapshot failed (%s)", how);
  power_off(why);
}

/*
 * Starts the agent with the reaper pipe's read end on fd 3 and the ready pipe's write end on
 * fd 4 (see start of file).
 */
/*
 * The boot phase times the agent reports (guest uptime, seconds): the initramfs's, passed
 * in the environment, and hull-init's own, read once its mounts are made.
 */
static char boot_times[3][48];

static void note_boot_times(void) {
  const char *initramfs = getenv("HULL_T_INITRAMFS"), *root = getenv("HULL_T_ROOT");
  char uptime[64] = "";
  if (read_text("/proc/uptime", uptime, sizeof uptime) < 0) uptime[0] = 0;
  char *space = strchr(uptime, ' ');
  if (space) *space = 0;
  snprintf(boot_times[0], sizeof boot_times[0], "HULL_T_INITRAMFS=%.20s", initramfs ? initramfs : "");
  snprintf(boot_times[1], sizeof boot_times[1], "HULL_T_ROOT=%.20s", root ? root : "");
  snprintf(boot_times[2], sizeof boot_times[2], "HULL_T_INIT=%.20s", uptime);
}

/* The agent's environment: `base` (NULL-terminated) and the boot phase times. */
static char *const *agent_env(char *const *base) {
  static char *env[16];
  size_t n = 0;
  for (; base[n] && n < 12; n++) env[n] = base[n];
  for (size_t i = 0; i < 3; i++) env[n++] = boot_times[i];
  env[n] = NULL;
  return env;
}

static pid_t start_agent(int reaper_read, int ready_write, char *const *argv, char *const *base_env,
                         const sigset_t *mask) {
  char *const *env = agent_env(base_env);
  pid_t agent = fork();
  if (agent < 0) power_off("cannot fork the agent");
  if (agent != 0) return agent;
  sigprocmask(SIG_SETMASK, mask, NULL);
  setsid();
  /* Move both ends above the target fds first, so neither dup2 overwrites the other. */
  int r = fcntl(reaper_read, F_DUPFD, 10), w = fcntl(ready_write, F_DUPFD, 10);
  if (r < 0 || w < 0 || dup2(r, 3) != 3 || dup2(w, 4) != 4) _exit(126);
  close(r);
  close(w);
  execve(argv[0], argv, env);
  fprintf(stderr, "hull-init: cannot start the agent: %s\n", strerror(errno));
  _exit(127);
}

/*
 * readahead(2) queues the reads and returns; the root disk's I/O then runs in QEMU beside the
 * guest's CPU. A file that cannot be read is skipped: it only costs its reads later.
 */
static void read_ahead_listed_files(void) {
  FILE *list = fopen(PAGE_CACHE_LIST, "re");
  if (!list) return;
  char path[4096];
  while (fgets(path, sizeof path, list)) {
    path[strcspn(path, "\n")] = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st;
    if (fstat(fd, &st) == 0) readahead(fd, 0, (size_t)st.st_size);
    close(fd);
  }
  fclose(list);
}

/* True once the agent has written its ready byte (it stays in the pipe after the agent died). */
static int agent_was_ready(int ready_read) {
  char byte;
  return read(ready_read, &byte, 1) == 1;
}

int main(void) {
  if (getpid() != 1) {
    fprintf(stderr, "hull-init: must run as PID 1 of a hull guest\n");
    return 1;
  }
  mount_all();
  note_boot_times();
  loopback_up();
  if (cmdline_has("hull.build_snapshot")) build_snapshot();
  int from_snapshot = mount_snapshot_disk();
  read_ahead_listed_files();
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);

  int fds[2], ready[2];
  if (pipe2(fds, O_CLOEXEC) != 0 || pipe2(ready, O_CLOEXEC | O_NONBLOCK) != 0)
    power_off("cannot create the agent's pipes");
  pid_t agent = start_agent(fds[0], ready[1], from_snapshot ? agent_snapshot_argv : agent_script_argv,
                            from_snapshot ? env_snapshot_used : env_snapshot_none, &old);
  int report = fds[1];
  pid_t debug_shell = cmdline_has("hull.debug_console") ? start_debug_shell(&old) : -1;

  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      power_off("no children left");
    }
    if (pid == agent && from_snapshot && !agent_was_ready(ready[0])) {
      char how[32];
      describe_status(how, sizeof how, status);
      fprintf(stderr, "hull-init: the agent did not start from its snapshot (%s); starting it without\n", how);
      from_snapshot = 0;
      agent = start_agent(fds[0], ready[1], agent_script_argv, env_snapshot_rejected, &old);
      continue;
    }
    if (pid == agent) {
      char how[32], why[96];
      describe_status(how, sizeof how, status);
      snprintf(why, sizeof why, "agent %s with %s", WIFEXITED(status) ? "exited" : "killed", how);
      power_off(why);
    }
    if (pid == debug_shell) {
      debug_shell = start_debug_shell(&old);
      continue;
    }
    if (report >= 0) {
      char line[32];
      int n = snprintf(line, sizeof line, "%d %d\n", (int)pid, status);
      if (write(report, line, (size_t)n) < 0 && errno == EPIPE) {
        close(report);
        report = -1;
      }
    }
  }
}
