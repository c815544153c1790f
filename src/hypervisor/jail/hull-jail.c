/*
 * hull-jail: starts the VMM confined, as a jailer does, then becomes it (execve, same pid).
 *
 *   hull-jail [OPTIONS] -- PROGRAM ARGS...
 *     --cgroup FILE        write this process's pid to FILE (a cgroup.procs) first; repeatable
 *     --root DIR           a new mount namespace whose root is a fresh tmpfs mounted on DIR,
 *                          holding only what the options below put there, at the same paths
 *     --ro PATH            PATH read-only (what it names, if it is a symlink)
 *     --link PATH          the symlink PATH, as a symlink (/lib -> usr/lib)
 *     --rw PATH            PATH read-write
 *     --share PATH         PATH with its mounts below it: its top read-only, the mounts below
 *                          as they are, and mounts the host adds later showing up (slave)
 *     --writable-share PATH  the same with a writable top (hull's own snapshot-building guest)
 *     --share-server BIN   PROGRAM sees the share only through BIN (hull-share-server, placed in
 *                          the new root by --ro), started
 *                          here as the same user with chown, dac_override and fowner, serving a
 *                          FUSE mount laid over the share; PROGRAM then needs no capability
 *     --dev PATH           a character device under /dev, made again there for the --uid user
 *                          alone (mode 0600), as PROGRAM has no capability to open root's
 *     --proc               /proc with only this user's processes (hidepid, subset=pid)
 *     --uid N --gid N      run PROGRAM as this user and group, no supplementary groups, with
 *                          no capability in any set, the bounding set included
 *     --netns PATH         the network namespace the --tap devices are made in
 *     --tap NAME=FD        make the tap device NAME in --netns and leave it open on fd FD for
 *                          PROGRAM (the device lives as long as the fd); repeatable
 *     --plain-tap NAME=FD  the same, without virtio-net headers (IFF_VNET_HDR): see jail.ts
 *     --no-huge-pages      PROGRAM's memory in base pages only (PR_SET_THP_DISABLE, kept across
 *                          execve): QEMU asks for transparent huge pages on every RAM block,
 *                          and one written page of a small block then costs 2 MiB (see jail.ts)
 *     --library-path DIR   PROGRAM's dynamic loader looks in DIR first (LD_LIBRARY_PATH=DIR), an
 *                          absolute path also given with --ro: libraries hull puts in place of
 *                          ones QEMU links and never calls (see vmm-libs/). Not for the share server
 *
 * PROGRAM always runs in a new, empty network namespace: a VMM reaches its guest's network
 * only through the tap fds it is given, and its sockets by path.
 *
 * Then: no_new_privs, and a seccomp filter that refuses (EPERM) what would turn a guest's
 * file operation into a host privilege: setting setuid or setgid bits (chmod family, creating
 * a file with them), making character or block device nodes, and io_uring and openat2, whose
 * arguments a filter cannot see. Errors go to stderr as one line "hull-jail: ..." and exit 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <sched.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MAX_ITEMS 64

static void die(const char *what, const char *detail) {
  fprintf(stderr, "hull-jail: %s%s%s: %s\n", what, detail ? " " : "", detail ? detail : "",
          strerror(errno));
  exit(125);
}

static void usage(const char *message) {
  fprintf(stderr, "hull-jail: %s\n", message);
  exit(125);
}

struct path_item {
  char kind; /* 'r' read-only, 'w' read-write, 's' share, 'S' writable share, 'd' device, 'l' symlink */
  const char *path;
};

struct options {
  const char *cgroups[MAX_ITEMS];
  int ncgroups;
  const char *root;
  struct path_item paths[MAX_ITEMS];
  int npaths;
  int proc;
  int no_huge_pages;
  const char *library_path;
  long uid, gid;
  const char *netns;
  const char *share_server;
  struct {
    const char *name;
    int fd;
    int plain;
  } taps[MAX_ITEMS];
  int ntaps;
  char **argv;
};

static const char *share_path(const struct options *o) {
  for (int i = 0; i < o->npaths; i++)
    if (o->paths[i].kind == 's' || o->paths[i].kind == 'S') return o->paths[i].path;
  return NULL;
}

static long parse_id(const char *text) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  if (errno || *end || value <= 0 || value > 4294967294L) usage("--uid and --gid take a non-zero id");
  return value;
}

static void parse(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof *o);
  o->uid = o->gid = -1;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    if (strcmp(a, "--proc") == 0) {
      o->proc = 1;
      continue;
    }
    if (strcmp(a, "--no-huge-pages") == 0) {
      o->no_huge_pages = 1;
      continue;
    }
    if (i + 1 >= argc) usage("an option lacks its value");
    const char *v = argv[++i];
    if (strcmp(a, "--cgroup") == 0) {
      if (o->ncgroups == MAX_ITEMS) usage("too many --cgroup");
      o->cgroups[o->ncgroups++] = v;
    } else if (strcmp(a, "--root") == 0) {
      o->root = v;
    } else if (strcmp(a, "--library-path") == 0) {
      /* One directory: the loader reads ':' and ';' as separators, and a relative one as the cwd's. */
      if (v[0] != '/' || strpbrk(v, ":;") || strlen(v) > PATH_MAX) usage("--library-path takes one absolute directory");
      o->library_path = v;
    } else if (strcmp(a, "--share-server") == 0) {
      o->share_server = v;
    } else if (strcmp(a, "--writable-share") == 0) {
      if (o->npaths == MAX_ITEMS) usage("too many paths");
      if (v[0] != '/') usage("paths must be absolute");
      o->paths[o->npaths].kind = 'S';
      o->paths[o->npaths++].path = v;
    } else if (!strcmp(a, "--ro") || !strcmp(a, "--rw") || !strcmp(a, "--share") || !strcmp(a, "--dev") ||
               !strcmp(a, "--link")) {
      if (o->npaths == MAX_ITEMS) usage("too many paths");
      if (v[0] != '/') usage("paths must be absolute");
      o->paths[o->npaths].kind = a[2] == 'r' ? (a[3] == 'o' ? 'r' : 'w') : a[2];
      o->paths[o->npaths++].path = v;
    } else if (strcmp(a, "--uid") == 0) {
      o->uid = parse_id(v);
    } else if (strcmp(a, "--gid") == 0) {
      o->gid = parse_id(v);
    } else if (strcmp(a, "--netns") == 0) {
      o->netns = v;
    } else if (strcmp(a, "--tap") == 0 || strcmp(a, "--plain-tap") == 0) {
      const char *eq = strchr(v, '=');
      char *end;
      if (o->ntaps == MAX_ITEMS) usage("too many --tap");
      if (!eq || eq == v || eq - v >= IFNAMSIZ) usage("--tap takes NAME=FD, NAME shorter than 16 bytes");
      long fd = strtol(eq + 1, &end, 10);
      if (*end || fd < 3 || fd > 1000) usage("--tap takes NAME=FD with FD from 3 to 1000");
      o->taps[o->ntaps].name = strndup(v, eq - v);
      o->taps[o->ntaps].plain = a[2] == 'p';
      o->taps[o->ntaps++].fd = (int)fd;
    } else {
      usage("unknown option");
    }
  }
  if (i >= argc) usage("no program to run: hull-jail [OPTIONS] -- PROGRAM ARGS...");
  if (o->uid < 0 || o->gid < 0) usage("--uid and --gid are required");
  if (o->npaths && !o->root) usage("paths need --root");
  if (o->ntaps && !o->netns) usage("--tap needs --netns");
  if (o->share_server && !share_path(o)) usage("--share-server needs --share or --writable-share");
  o->argv = argv + i;
}

static void join_cgroups(const struct options *o) {
  char pid[32];
  int len = snprintf(pid, sizeof pid, "%d", getpid());
  for (int i = 0; i < o->ncgroups; i++) {
    int fd = open(o->cgroups[i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, pid, len) != len) die("joining cgroup", o->cgroups[i]);
    close(fd);
  }
}

/* mkdir -p below the new root (which only this process sees). */
static void make_dirs(char *path) {
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
    *p = '/';
  }
  if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
}

static void place(const struct options *o, const struct path_item *item) {
  const char *root = o->root;
  char target[PATH_MAX];
  if (snprintf(target, sizeof target, "%s%s", root, item->path) >= (int)sizeof target)
    usage("path too long");
  struct stat st;
  if ((item->kind == 'l' ? lstat(item->path, &st) : stat(item->path, &st)) < 0) die("stat", item->path);
  char *slash = strrchr(target, '/');
  *slash = 0;
  make_dirs(target);
  *slash = '/';
  if (item->kind == 'd') {
    if (strncmp(item->path, "/dev/", 5) || !S_ISCHR(st.st_mode)) usage("--dev takes a character device under /dev");
    if (mknod(target, S_IFCHR | 0600, st.st_rdev) < 0 || chown(target, o->uid, o->gid) < 0)
      die("making device node", target);
    return;
  }
  if (item->kind == 'l') {
    if (!S_ISLNK(st.st_mode)) usage("--link takes a symlink");
    char link[PATH_MAX];
    ssize_t n = readlink(item->path, link, sizeof link - 1);
    if (n < 0) die("readlink", item->path);
    link[n] = 0;
    if (symlink(link, target) < 0) die("symlink", target);
    return;
  }
  if (S_ISDIR(st.st_mode)) {
    if (mkdir(target, 0755) < 0 && errno != EEXIST) die("mkdir", target);
  } else {
    int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die("creating", target);
    close(fd);
  }
  if (mount(item->path, target, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind mount", item->path);
  unsigned long flags = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV;
  if (item->kind == 'r' || item->kind == 's') flags |= MS_RDONLY;
  /* Only the top mount: a share's container mounts below it stay writable. */
  if (mount(NULL, target, NULL, flags, NULL) < 0) die("remount", item->path);
}

static void build_root(const struct options *o) {
  if (unshare(CLONE_NEWNS) < 0) die("unshare", "mount namespace");
  /* Host mounts still reach in (a pod's next container); nothing made here leaks out. */
  if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) die("making / a slave", NULL);
  if (mount("tmpfs", o->root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
    die("mounting tmpfs on", o->root);
  /* Device nodes live on a tmpfs of their own, the one mount here that honours them. */
  char dev[PATH_MAX];
  snprintf(dev, sizeof dev, "%s/dev", o->root);
  int devices = 0;
  for (int i = 0; i < o->npaths; i++) devices |= o->paths[i].kind == 'd';
  if (devices) {
    make_dirs(dev);
    if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0) die("mounting tmpfs on", dev);
  }
  for (int i = 0; i < o->npaths; i++) place(o, &o->paths[i]);
  if (devices && mount(NULL, dev, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "mode=0755,size=64k") < 0)
    die("making /dev read-only", NULL);
  if (o->proc) {
    char target[PATH_MAX];
    snprintf(target, sizeof target, "%s/proc", o->root);
    make_dirs(target);
    unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
    if (mount("proc", target, "proc", flags, "hidepid=invisible,subset=pid") < 0 &&
        mount("proc", target, "proc", flags, "hidepid=2") < 0)
      die("mounting", target);
  }
  int old_root = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
  if (old_root < 0 || chdir(o->root) < 0) die("entering", o->root);
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root", o->root);
  /* The old root is stacked under the new one: detach it. */
  if (fchdir(old_root) < 0) die("fchdir", NULL);
  if (mount(NULL, ".", NULL, MS_REC | MS_SLAVE, NULL) < 0) die("making the old root a slave", NULL);
  if (umount2(".", MNT_DETACH) < 0) die("detaching the old root", NULL);
  close(old_root);
  if (chdir("/") < 0) die("chdir", "/");
  if (mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
    die("making the root read-only", NULL);
}

/*
 * Makes each tap device in the given network namespace and leaves it open on its fd, then
 * moves this process into a new, empty network namespace. A tap whose fd closes (the VMM
 * exits) is gone from its namespace with everything attached to it.
 */
static void open_taps(const struct options *o) {
  if (o->ntaps) {
    int here = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    int there = open(o->netns, O_RDONLY | O_CLOEXEC);
    if (here < 0) die("opening", "/proc/self/ns/net");
    if (there < 0) die("opening the network namespace", o->netns);
    if (setns(there, CLONE_NEWNET) < 0) die("entering the network namespace", o->netns);
    for (int i = 0; i < o->ntaps; i++) {
      int fd = open("/dev/net/tun", O_RDWR);
      if (fd < 0) die("opening", "/dev/net/tun");
      struct ifreq ifr;
      memset(&ifr, 0, sizeof ifr);
      ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (o->taps[i].plain ? 0 : IFF_VNET_HDR);
      strncpy(ifr.ifr_name, o->taps[i].name, IFNAMSIZ - 1);
      if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("making tap device", o->taps[i].name);
      if (fd != o->taps[i].fd) {
        if (dup2(fd, o->taps[i].fd) < 0) die("dup2", o->taps[i].name);
        close(fd);
      }
    }
    if (setns(here, CLONE_NEWNET) < 0) die("leaving the network namespace", o->netns);
    close(here);
    close(there);
  }
  if (unshare(CLONE_NEWNET) < 0) die("unshare", "network namespace");
}

static void drop_privileges(long uid, long gid, unsigned long long keep_caps) {
  for (int cap = 0; cap <= 63; cap++) {
    if (keep_caps & (1ULL << cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("dropping capability", NULL);
  }
  if (setgroups(0, NULL) < 0) die("setgroups", NULL);
  if (setresgid(gid, gid, gid) < 0) die("setresgid", NULL);
  if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die("PR_SET_KEEPCAPS", NULL);
  if (setresuid(uid, uid, uid) < 0) die("setresuid", NULL);
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  for (int w = 0; w < 2; w++) {
    __u32 bits = (__u32)(keep_caps >> (32 * w));
    data[w].effective = data[w].permitted = data[w].inheritable = bits;
  }
  if (syscall(SYS_capset, &header, data) < 0) die("capset", NULL);
  /* Ambient: kept across execve of a program that has no file capabilities. */
  for (int cap = 0; cap <= 63; cap++) {
    if (!(keep_caps & (1ULL << cap))) continue;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0) die("raising ambient capability", NULL);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("PR_SET_NO_NEW_PRIVS", NULL);
}

/* ---- the seccomp filter ---- */

#define MAX_FILTER 160
static struct sock_filter filter[MAX_FILTER];
static int nfilter;

static void emit(struct sock_filter insn) {
  if (nfilter == MAX_FILTER) usage("seccomp filter too long");
  filter[nfilter++] = insn;
}

#define LOAD(off) emit((struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, (off)))
#define ARG_LOW(n) (offsetof(struct seccomp_data, args) + 8 * (n))
#define RET(v) emit((struct sock_filter)BPF_STMT(BPF_RET | BPF_K, (v)))
#define JUMP(op, k, t, f) emit((struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, (k), (t), (f)))
#define ERRNO(e) (SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define SPECIAL_BITS (S_ISUID | S_ISGID)
#ifndef __O_TMPFILE
#define __O_TMPFILE 020000000
#endif

/* Each block: if the syscall is `nr`, decide; else fall through to the next block. */
static void refuse_mode_bits(int nr, int mode_arg) {
  LOAD(offsetof(struct seccomp_data, nr));
  JUMP(BPF_JEQ, nr, 0, 4);
  LOAD(ARG_LOW(mode_arg));
  JUMP(BPF_JSET, SPECIAL_BITS, 0, 1);
  RET(ERRNO(EPERM));
  RET(SECCOMP_RET_ALLOW);
}

static void refuse_created_with_mode_bits(int nr, int flags_arg, int mode_arg) {
  LOAD(offsetof(struct seccomp_data, nr));
  JUMP(BPF_JEQ, nr, 0, 6);
  LOAD(ARG_LOW(flags_arg));
  JUMP(BPF_JSET, O_CREAT | __O_TMPFILE, 0, 3);
  LOAD(ARG_LOW(mode_arg));
  JUMP(BPF_JSET, SPECIAL_BITS, 0, 1);
  RET(ERRNO(EPERM));
  RET(SECCOMP_RET_ALLOW);
}

static void refuse_device_nodes(int nr, int mode_arg) {
  LOAD(offsetof(struct seccomp_data, nr));
  JUMP(BPF_JEQ, nr, 0, 6);
  LOAD(ARG_LOW(mode_arg));
  emit((struct sock_filter)BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT));
  JUMP(BPF_JEQ, S_IFCHR, 2, 0);
  JUMP(BPF_JEQ, S_IFBLK, 1, 0);
  RET(SECCOMP_RET_ALLOW);
  RET(ERRNO(EPERM));
}

static void refuse(int nr, int error) {
  LOAD(offsetof(struct seccomp_data, nr));
  JUMP(BPF_JEQ, nr, 0, 1);
  RET(ERRNO(error));
}

/* The filter admits system calls of the architecture hull-jail is built for only. */
#if defined(__x86_64__)
#define HOST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define HOST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "hull-jail runs on x86_64 and aarch64 hosts"
#endif

static void install_filter(void) {
  LOAD(offsetof(struct seccomp_data, arch));
  JUMP(BPF_JEQ, HOST_AUDIT_ARCH, 1, 0);
  RET(SECCOMP_RET_KILL_PROCESS);
#ifdef __x86_64__
  LOAD(offsetof(struct seccomp_data, nr));
  /* x32 system calls share numbers with a flag bit: none of them is needed. */
  JUMP(BPF_JGE, 0x40000000, 0, 1);
  RET(ERRNO(ENOSYS));
#endif
  /*
   * arm64 has only the *at forms (the generic system call table): chmod, open, creat and
   * mknod are x86_64's older names for what fchmodat, openat and mknodat do there. The
   * numbers of the newer calls (425, 437, 452) are the same on both.
   */
#ifdef SYS_chmod
  refuse_mode_bits(SYS_chmod, 1);
#endif
  refuse_mode_bits(SYS_fchmod, 1);
  refuse_mode_bits(SYS_fchmodat, 2);
  refuse_mode_bits(452 /* fchmodat2 */, 2);
#ifdef SYS_open
  refuse_created_with_mode_bits(SYS_open, 1, 2);
#endif
  refuse_created_with_mode_bits(SYS_openat, 2, 3);
#ifdef SYS_creat
  refuse_mode_bits(SYS_creat, 1);
#endif
#ifdef SYS_mknod
  refuse_device_nodes(SYS_mknod, 1);
#endif
  refuse_device_nodes(SYS_mknodat, 2);
  refuse(437 /* openat2: its mode is behind a pointer */, ENOSYS);
  refuse(425 /* io_uring_setup: its operations bypass this filter */, ENOSYS);
  RET(SECCOMP_RET_ALLOW);
  struct sock_fprog prog = {(unsigned short)nfilter, filter};
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) die("installing seccomp filter", NULL);
}

/* What the share server keeps of root: enough to act on the real files for the guest. */
#define SHARE_SERVER_CAPS ((1ULL << CAP_CHOWN) | (1ULL << CAP_DAC_OVERRIDE) | (1ULL << CAP_FOWNER))

/*
 * Lays a FUSE mount over the share, served by the share server from a descriptor of the share
 * underneath it, so that PROGRAM reaches the share's files only through the server. The server
 * dies with PROGRAM (PR_SET_PDEATHSIG): this process becomes PROGRAM.
 */
static void serve_share(const struct options *o, int fuse) {
  const char *path = share_path(o);
  int share = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (share < 0) die("opening the share", path);
  char data[128];
  snprintf(data, sizeof data, "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fuse);
  if (mount("hull-share", path, "fuse.hull-share", MS_NOSUID | MS_NODEV | MS_NOEXEC, data) < 0)
    die("mounting the share server's view on", path);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) die("fork", NULL);
  if (pid == 0) {
    /* dup2 onto the same number keeps close-on-exec: clear it on both. */
    if (dup2(fuse, 3) < 0 || dup2(share, 4) < 0 || fcntl(3, F_SETFD, 0) < 0 || fcntl(4, F_SETFD, 0) < 0)
      die("passing descriptors to", o->share_server);
    if (syscall(SYS_close_range, 5, ~0U, 0) < 0) die("close_range", NULL);
    drop_privileges(o->uid, o->gid, SHARE_SERVER_CAPS);
    /* After the change of user, which clears a parent-death signal set before it. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != parent) _exit(125);
    install_filter();
    char uid[24], gid[24];
    snprintf(uid, sizeof uid, "%ld", o->uid);
    snprintf(gid, sizeof gid, "%ld", o->gid);
    char *argv[] = {"hull-share-server", uid, gid, NULL};
    char *env[] = {NULL};
    execve(o->share_server, argv, env);
    die("exec", o->share_server);
  }
  close(fuse);
  close(share);
}

int main(int argc, char **argv) {
  struct options o;
  parse(argc, argv, &o);
  join_cgroups(&o);
  open_taps(&o);
  /* Opened while the host's devices are in reach: the new root has no /dev/fuse. */
  int fuse = -1;
  if (o.share_server && (fuse = open("/dev/fuse", O_RDWR | O_CLOEXEC)) < 0) die("opening", "/dev/fuse");
  if (o.root) build_root(&o);
  if (o.share_server) serve_share(&o, fuse);
  if (o.no_huge_pages && prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0) die("PR_SET_THP_DISABLE", NULL);
  drop_privileges(o.uid, o.gid, 0);
  install_filter();
  char library_path[PATH_MAX + sizeof "LD_LIBRARY_PATH="];
  char *env[] = {"PATH=/usr/bin:/bin", NULL, NULL};
  if (o.library_path) {
    snprintf(library_path, sizeof library_path, "LD_LIBRARY_PATH=%s", o.library_path);
    env[1] = library_path;
  }
  execve(o.argv[0], o.argv, env);
  die("exec", o.argv[0]);
  return 125;
}
