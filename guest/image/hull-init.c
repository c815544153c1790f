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
 * Before that it mounts what every container host needs (proc, sys, cgroup2, tmpfs, devpts)
 * and the sandbox's 9p share: mount(2) here costs nothing, where each `mount` command the
 * agent spawned would cost tens of milliseconds under software emulation.
 *
 * Records on the pipe are text lines "PID STATUS\n" (STATUS is the raw waitpid status).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* The agent starts from its startup snapshot when the image has one (see guest/agent/entry.ts). */
static char *const agent_snapshot_argv[] = {"/usr/bin/node", "--snapshot-blob", "/opt/hull/agent.blob", NULL};
static char *const agent_script_argv[] = {"/usr/bin/node", "/opt/hull/agent.cjs", NULL};
static char *const agent_env[] = {
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "HULL_REAPER_FD=3", "UV_THREADPOOL_SIZE=8", NULL,
};

static void power_off(const char *why) {
  fprintf(stderr, "hull-init: %s; powering off\n", why);
  fflush(stderr);
  sync();
  reboot(RB_AUTOBOOT);
  for (;;) pause();
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
    {"hullshare", "/run/hull/shared", "9p", 0, "trans=virtio,version=9p2000.L,msize=262144,cache=mmap", 0},
};

static void mount_all(void) {
  for (size_t i = 0; i < sizeof mounts / sizeof mounts[0]; i++) {
    const struct guest_mount *m = &mounts[i];
    /* mkdir -p for the few nested targets (/run/hull/shared). */
    char path[64];
    snprintf(path, sizeof path, "%s", m->target);
    for (char *p = path + 1; *p; p++) {
      if (*p != '/') continue;
      *p = 0;
      mkdir(path, 0755);
      *p = '/';
    }
    mkdir(path, 0755);
    if (mount(m->source, m->target, m->type, m->flags, m->data) != 0) {
      fprintf(stderr, "hull-init: cannot mount %s on %s: %s\n", m->type, m->target, strerror(errno));
      if (m->required) power_off("a required mount failed");
    }
  }
}

int main(void) {
  if (getpid() != 1) {
    fprintf(stderr, "hull-init: must run as PID 1 of a hull guest\n");
    return 1;
  }
  mount_all();
  sigset_t all, old;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &old);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) power_off("cannot create the reaper pipe");
  pid_t agent = fork();
  if (agent < 0) power_off("cannot fork the agent");
  if (agent == 0) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    setsid();
    /* dup2 onto itself keeps O_CLOEXEC, and pipe2 may well have returned fd 3. */
    if (fds[0] == 3) {
      if (fcntl(3, F_SETFD, 0) != 0) _exit(126);
    } else if (dup2(fds[0], 3) != 3) {
      _exit(126);
    }
    char *const *argv = access("/opt/hull/agent.blob", R_OK) == 0 ? agent_snapshot_argv : agent_script_argv;
    execve(argv[0], argv, agent_env);
    fprintf(stderr, "hull-init: cannot start the agent: %s\n", strerror(errno));
    _exit(127);
  }
  close(fds[0]);
  int report = fds[1];

  for (;;) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      power_off("no children left");
    }
    if (pid == agent) {
      char why[96];
      if (WIFEXITED(status))
        snprintf(why, sizeof why, "agent exited with status %d", WEXITSTATUS(status));
      else
        snprintf(why, sizeof why, "agent killed by signal %d", WTERMSIG(status));
      power_off(why);
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
