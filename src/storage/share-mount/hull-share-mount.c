/*
 * hull-share-mount: mounts and unmounts inside a sandbox share without following any path
 * the guest may have changed.
 *
 *   hull-share-mount bind SHARE REL dir|file SOURCE [recursive] [readonly]
 *       makes REL inside SHARE (its missing directories, then a directory or an empty file)
 *       and bind-mounts SOURCE there (with its submounts when recursive; read-only, each of
 *       them, when readonly)
 *   hull-share-mount unmount SHARE REL
 *       detaches the mount at REL inside SHARE (lazily, as umount -l does)
 *   hull-share-mount shared DIR
 *       makes DIR (a sandbox's share, which hull has just made) a mount point of its own whose
 *       later submounts propagate to its copies, as `mount --bind DIR DIR` then
 *       `mount --make-shared DIR` do: one small process on the start's path instead of two
 *       runs of mount(8)
 *   hull-share-mount mountpoints ROOTFS dir|file:PATH...
 *       makes each PATH that is missing inside ROOTFS (its missing directories, then a
 *       directory or an empty file), resolving it as the container will, inside ROOTFS
 *       (RESOLVE_IN_ROOT): where a container with a read-only root will mount its volumes,
 *       made before the root is bound read-only, as runc makes them
 *
 *   hull-share-mount COMMAND... + COMMAND...
 *       runs the commands in order, stopping at the first that fails: a container's mount
 *       points, root and bind mounts are placed in one process instead of one each (a spawn
 *       from Node costs a start 5-8 ms of CPU)
 *
 * Every step opens one name below the last with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS
 * | RESOLVE_NO_MAGICLINKS), so a symlink anywhere in REL (a guest can make them inside a
 * container's root filesystem) fails with ELOOP instead of leading elsewhere on the host, and
 * the mount is made on, or taken from, the very directory opened (/proc/self/fd/N). SOURCE
 * comes from the container's configuration, as runc takes it. Node has neither openat2 nor
 * mount(2). Errors: one line on stderr, exit 1.
 *
 * The bind is made detached (open_tree), made read-only there when asked (mount_setattr) and
 * only then attached (move_mount): the share propagates new mounts to the VMM's own mount
 * namespace, but not a later remount, so a bind made read-only after it was attached would
 * stay writable where the VMM's file server acts on it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void die(const char *what, const char *detail) {
  fprintf(stderr, "hull-share-mount: %s %s: %s\n", what, detail, strerror(errno));
  exit(1);
}

static int open_beneath(int dir, const char *name, int flags) {
  struct open_how how = {
      .flags = (unsigned long long)(flags | O_CLOEXEC),
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, dir, name, &how, sizeof how);
}

/* One name, never one that climbs or stays put. */
static void check_name(const char *name, const char *rel) {
  if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
    errno = EINVAL;
    die("refusing the path", rel);
  }
}

/*
 * Opens REL's parent directory inside SHARE (making what is missing when `make`), one name at
 * a time; returns it and leaves the last name in *last.
 */
static int open_parent(const char *share, char *rel, int make, char **last) {
  int dir = open(share, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) die("opening the share", share);
  char *name = rel;
  for (char *slash; (slash = strchr(name, '/')); name = slash + 1) {
    *slash = 0;
    check_name(name, rel);
    if (make && mkdirat(dir, name, 0755) < 0 && errno != EEXIST) die("making directory", name);
    int next = open_beneath(dir, name, O_PATH | O_DIRECTORY);
    if (next < 0) die("opening directory", name);
    close(dir);
    dir = next;
  }
  check_name(name, rel);
  *last = name;
  return dir;
}

static int open_in_root(int root, const char *path, int flags) {
  struct open_how how = {
      .flags = (unsigned long long)(flags | O_CLOEXEC),
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, root, path, &how, sizeof how);
}

/*
 * Makes `path` (absolute in the container) inside `root` if it is missing: each missing name
 * is made in the directory its prefix resolves to inside the root, never following a link out.
 * A path with ".." in it, or one that cannot be made, is left to the container's runtime.
 */
static void make_mountpoint(int root, const char *path, int is_dir) {
  char prefix[PATH_MAX] = "", name[NAME_MAX + 1];
  size_t len = 0;
  for (const char *at = path + strspn(path, "/"); *at;) {
    size_t n = strcspn(at, "/");
    const char *rest = at + n + strspn(at + n, "/");
    if ((n == 2 && !strncmp(at, "..", 2)) || n > NAME_MAX || len + n + 2 > sizeof prefix) return;
    if (!(n == 1 && *at == '.')) {
      memcpy(name, at, n);
      name[n] = 0;
      int parent = len ? open_in_root(root, prefix, O_PATH | O_DIRECTORY) : dup(root);
      if (parent < 0) return;
      int made;
      if (!*rest && !is_dir) {
        int fd = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        made = fd >= 0 || errno == EEXIST;
        if (fd >= 0) close(fd);
      } else {
        made = mkdirat(parent, name, 0755) == 0 || errno == EEXIST;
      }
      close(parent);
      if (!made) return;
      if (len) prefix[len++] = '/';
      memcpy(prefix + len, name, n + 1);
      len += n;
    }
    at = rest;
  }
}

/* One command: argv[1] names it, argv[0] is whatever precedes it (the program, or "+"). */
static int command(int argc, char **argv) {
  char fd_path[64];
  if (argc >= 6 && argc <= 8 && !strcmp(argv[1], "bind")) {
    int recursive = 0, readonly = 0;
    for (int i = 6; i < argc; i++) {
      if (!strcmp(argv[i], "recursive")) recursive = 1;
      else if (!strcmp(argv[i], "readonly")) readonly = 1;
      else return fprintf(stderr, "hull-share-mount: unknown bind option %s\n", argv[i]), 1;
    }
    int is_dir = !strcmp(argv[4], "dir");
    if (!is_dir && strcmp(argv[4], "file")) return fprintf(stderr, "hull-share-mount: dir or file\n"), 1;
    char *last;
    int parent = open_parent(argv[2], argv[3], 1, &last);
    if (is_dir) {
      if (mkdirat(parent, last, 0755) < 0 && errno != EEXIST) die("making directory", last);
    } else {
      int fd = open_beneath(parent, last, O_WRONLY | O_CREAT | O_NOFOLLOW);
      if (fd < 0) die("making file", last);
      close(fd);
    }
    int target = open_beneath(parent, last, O_PATH | (is_dir ? O_DIRECTORY : 0));
    if (target < 0) die("opening", last);
    struct stat st;
    if (fstat(target, &st) < 0 || (is_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
      errno = EEXIST;
      die("a different file is at", argv[3]);
    }
    int tree = open_tree(AT_FDCWD, argv[5], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
    if (tree < 0) die("binding", argv[5]);
    struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
    if (readonly && mount_setattr(tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &attr, sizeof attr) < 0)
      die("making read-only the bind of", argv[5]);
    if (move_mount(tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
      die("bind-mounting", argv[5]);
    close(tree);
    close(target);
    close(parent);
    return 0;
  }
  if (argc >= 3 && !strcmp(argv[1], "mountpoints")) {
    int root = open(argv[2], O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (root < 0) die("opening the root filesystem", argv[2]);
    for (int i = 3; i < argc; i++) {
      int is_dir = !strncmp(argv[i], "dir:", 4);
      if (!is_dir && strncmp(argv[i], "file:", 5)) return fprintf(stderr, "hull-share-mount: dir: or file:\n"), 1;
      make_mountpoint(root, argv[i] + (is_dir ? 4 : 5), is_dir);
    }
    close(root);
    return 0;
  }
  if (argc == 3 && !strcmp(argv[1], "shared")) {
    if (mount(argv[2], argv[2], NULL, MS_BIND, NULL) < 0) die("making a mount point of", argv[2]);
    if (mount(NULL, argv[2], NULL, MS_SHARED, NULL) < 0) die("sharing mounts under", argv[2]);
    return 0;
  }
  if (argc == 4 && !strcmp(argv[1], "unmount")) {
    char *last;
    int parent = open_parent(argv[2], argv[3], 0, &last);
    int target = open_beneath(parent, last, O_PATH);
    if (target < 0) die("opening", argv[3]);
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", target);
    if (umount2(fd_path, MNT_DETACH) < 0) die("unmounting", argv[3]);
    close(target);
    close(parent);
    return 0;
  }
  fprintf(stderr,
          "hull-share-mount: usage: bind SHARE REL dir|file SOURCE [recursive] [readonly] | unmount SHARE REL"
          " | shared DIR | mountpoints ROOTFS dir|file:PATH... [+ COMMAND...]\n");
  return 1;
}

/* Commands joined by "+" run in order, each as if alone; the first to fail ends the run. */
int main(int argc, char **argv) {
  for (int start = 0; start < argc;) {
    int end = start + 1;
    while (end < argc && strcmp(argv[end], "+")) end++;
    if (command(end - start, argv + start)) return 1;
    start = end;
  }
  return 0;
}
