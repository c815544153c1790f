/*
 * hull-share-server's xattrs: a file's owner, mode and device number as the VMM reads and sets
 * them (user.virtfs.{uid,gid,mode,rdev}, 9p's mapped-xattr model), answered from and applied to
 * the real file, with the setuid and setgid bits and special file types kept aside in
 * user.hull.*; and the guest's other xattrs, on an allow-list (see hull-share-server.c).
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "share.h"

static uint32_t kept_mode(struct node *n, const struct stat *st) {
  if (!has_xattrs(st)) return 0;
  char path[64];
  uint32_t value;
  int fd;
  if (node_path(n, &fd, path) || getxattr(path, HULL_MODE, &value, sizeof value) != sizeof value) return 0;
  value = le32toh(value);
  mode_t type = value & S_IFMT;
  /* A directory stays a directory; a regular file may stand for any type but these two. */
  if (S_ISDIR(st->st_mode) ? type != 0 : (type == S_IFDIR || type == S_IFLNK)) return 0;
  return value & (S_IFMT | SPECIAL_BITS);
}

/* The mode and device number the guest sees: the real ones, with what is kept aside. */
static void guest_view(struct node *n, const struct stat *st, uint32_t *mode, uint64_t *rdev) {
  uint32_t kept = kept_mode(n, st);
  mode_t type = (kept & S_IFMT) ? (kept & S_IFMT) : (st->st_mode & S_IFMT);
  /* The real bits too: an image's own setuid programs (su, passwd) keep theirs on the host. */
  *mode = type | (st->st_mode & 07777) | (kept & SPECIAL_BITS);
  if (S_ISLNK(st->st_mode)) *mode = S_IFLNK | 0777;
  /* A device's number: a host node's own, or the one kept for a node the guest made. */
  *rdev = 0;
  if (!S_ISCHR(type) && !S_ISBLK(type)) return;
  if (!(kept & S_IFMT)) {
    *rdev = st->st_rdev;
    return;
  }
  char path[64];
  uint64_t value;
  int fd;
  if (!node_path(n, &fd, path) && getxattr(path, HULL_RDEV, &value, sizeof value) == sizeof value)
    *rdev = le64toh(value);
}

static int set_kept(const char *path, const char *name, const void *value, size_t size, int keep) {
  if (keep) return setxattr(path, name, value, size, 0) < 0 ? errno : 0;
  return removexattr(path, name) < 0 && errno != ENODATA ? errno : 0;
}

/*
 * Turns the regular file the VMM just made (holding a symlink's target) into that symlink,
 * with the file's owner, in one rename over it.
 */
static int make_symlink(struct node *n, const struct stat *st) {
  if (!n->created || !n->parent || st->st_size >= PATH_MAX || st->st_nlink != 1) return EPERM;
  char target[PATH_MAX], path[64], temp[64];
  int node, dir, err = node_path(n, &node, path);
  if (!err) err = node_fd(n->parent, &dir);
  if (err) return err;
  int fd = open_at(AT_FDCWD, path, O_RDONLY, 0);
  if (fd < 0) return errno;
  ssize_t len = pread(fd, target, PATH_MAX - 1, 0);
  close(fd);
  if (len <= 0 || memchr(target, 0, (size_t)len)) return EINVAL;
  target[len] = 0;
  const char *name = n->name;
  struct stat there;
  if (fstatat(dir, name, &there, AT_SYMLINK_NOFOLLOW) < 0) return errno;
  if (there.st_dev != n->dev || there.st_ino != n->ino) return EPERM;
  snprintf(temp, sizeof temp, ".hull-symlink-%d-%lu", getpid(), (unsigned long)n->ino);
  if (symlinkat(target, dir, temp) < 0) return errno;
  if (fchownat(dir, temp, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
      renameat(dir, temp, dir, name) < 0) {
    err = errno;
    unlinkat(dir, temp, 0);
    return err;
  }
  /* The kernel's node now stands for the symlink. */
  int link_fd = open_at(dir, name, O_PATH | O_NOFOLLOW, 0);
  struct stat ls;
  if (link_fd < 0 || fstatat(link_fd, "", &ls, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
    err = errno;
    if (link_fd >= 0) close(link_fd);
    return err;
  }
  node_replace(n, link_fd, &ls);
  n->created = 0;
  n->view_until = 0;
  return 0;
}

static int set_mode(struct node *n, uint32_t mode) {
  struct stat st;
  int err = real_stat(n, &st);
  if (err) return err;
  mode_t want = mode & S_IFMT;
  if (S_ISLNK(st.st_mode)) return want && want != S_IFLNK ? EPERM : 0;
  if (S_ISREG(st.st_mode) && S_ISLNK(want)) return make_symlink(n, &st);
  uint32_t shown;
  uint64_t rdev;
  guest_view(n, &st, &shown, &rdev);
  /* A file's type is set once, when the VMM makes it; later modes keep it. */
  mode_t type = shown & S_IFMT;
  if (want && want != type) {
    if (!n->created || S_ISDIR(st.st_mode) || want == S_IFDIR) return EPERM;
    type = want;
  }
  char path[64];
  int fd;
  if ((err = node_path(n, &fd, path))) return err;
  if (!has_xattrs(&st)) return mode & SPECIAL_BITS ? EPERM : (chmod(path, mode & 0777) < 0 ? errno : 0);
  if (chmod(path, mode & 07777 & ~SPECIAL_BITS) < 0) return errno;
  uint32_t kept = (type == (st.st_mode & S_IFMT) ? 0 : type) | (mode & SPECIAL_BITS);
  uint32_t value = htole32(kept);
  err = set_kept(path, HULL_MODE, &value, sizeof value, kept != 0);
  if (!err) n->created = 0;
  return err;
}

/* One of the four user.virtfs xattrs the VMM keeps a file's owner, mode and device number in. */
static int is_virtfs_attr(const char *name) {
  if (strncmp(name, VIRTFS_PREFIX, strlen(VIRTFS_PREFIX))) return 0;
  const char *which = name + strlen(VIRTFS_PREFIX);
  return !strcmp(which, "uid") || !strcmp(which, "gid") || !strcmp(which, "mode") || !strcmp(which, "rdev");
}

/*
 * The other xattrs a guest may read and set: its own user.* ones (9p's mapped model keeps a
 * guest's POSIX ACLs there too, as user.virtfs.system.posix_acl_*) and POSIX ACLs, which grant
 * no more than the modes it sets. Never what the server keeps aside, nor security.* (file
 * capabilities, SELinux labels), trusted.* or any other namespace: those are host privileges.
 */
static int guest_xattr(const char *name) {
  if (!strncmp(name, HULL_PREFIX, strlen(HULL_PREFIX))) return 0;
  return !strncmp(name, "user.", 5) || !strcmp(name, "system.posix_acl_access") ||
         !strcmp(name, "system.posix_acl_default");
}

static int set_virtfs(struct node *n, const char *which, const char *value, size_t size) {
  uint32_t v32;
  uint64_t v64;
  if (!strcmp(which, "rdev")) {
    if (size != sizeof v64) return EINVAL;
    memcpy(&v64, value, sizeof v64);
    struct stat st;
    int err = real_stat(n, &st);
    if (err) return err;
    uint32_t kept = kept_mode(n, &st);
    if (!S_ISCHR(kept) && !S_ISBLK(kept)) return v64 == 0 || v64 == st.st_rdev ? 0 : EPERM;
    char path[64];
    int fd;
    if ((err = node_path(n, &fd, path))) return err;
    return set_kept(path, HULL_RDEV, &v64, sizeof v64, 1);
  }
  if (size != sizeof v32) return EINVAL;
  memcpy(&v32, value, sizeof v32);
  v32 = le32toh(v32);
  if (!strcmp(which, "mode")) return set_mode(n, v32);
  uid_t uid = !strcmp(which, "uid") ? v32 : (uid_t)-1;
  gid_t gid = !strcmp(which, "gid") ? v32 : (gid_t)-1;
  int fd, err = node_fd(n, &fd);
  if (err) return err;
  return fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

/*
 * Names outside the allow-list are "not supported" (EOPNOTSUPP), as on a filesystem without
 * that namespace and as 9p itself answers for them: tools that copy xattrs (cp -a, tar, rsync
 * -X) then skip them, where EPERM would read as a failure of the copy.
 */
void hs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags) {
  struct node *n = node_of(ino);
  int fd, err = writable_fd(n, &fd);
  if (err) return (void)fuse_reply_err(req, err);
  if (is_virtfs_attr(name)) {
    err = set_virtfs(n, name + strlen(VIRTFS_PREFIX), value, size);
    n->view_until = 0;
    return (void)fuse_reply_err(req, err);
  }
  if (!strncmp(name, HULL_PREFIX, strlen(HULL_PREFIX))) return (void)fuse_reply_err(req, EPERM);
  if (!guest_xattr(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  struct stat st;
  char path[64];
  err = real_stat(n, &st);
  if (!err && !has_xattrs(&st)) err = EPERM;
  if (!err) err = node_path(n, &fd, path);
  if (!err && setxattr(path, name, value, size, flags) < 0) err = errno;
  fuse_reply_err(req, err);
}

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The owner, mode and device number the guest sees, from the cache when it is fresh. */
static int view_of(struct node *n, struct view *v) {
  uint64_t now = now_ns();
  if (now < n->view_until) {
    *v = n->view;
    return 0;
  }
  struct stat st;
  int err = real_stat(n, &st);
  if (err) return err;
  v->uid = st.st_uid;
  v->gid = st.st_gid;
  guest_view(n, &st, &v->mode, &v->rdev);
  n->view = *v;
  n->view_until = now + (uint64_t)(CACHE_SECONDS * 1e9);
  return 0;
}

void hs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  struct node *n = node_of(ino);
  if (is_virtfs_attr(name)) {
    const char *which = name + strlen(VIRTFS_PREFIX);
    struct view v;
    int err = view_of(n, &v);
    if (err) return (void)fuse_reply_err(req, err);
    union {
      uint32_t v32;
      uint64_t v64;
    } answer;
    size_t len = 4;
    if (!strcmp(which, "uid")) answer.v32 = htole32(v.uid);
    else if (!strcmp(which, "gid")) answer.v32 = htole32(v.gid);
    else if (!strcmp(which, "mode")) answer.v32 = htole32(v.mode);
    else answer.v64 = htole64(v.rdev), len = 8;
    if (size == 0) return (void)fuse_reply_xattr(req, len);
    if (size < len) return (void)fuse_reply_err(req, ERANGE);
    return (void)fuse_reply_buf(req, (const char *)&answer, len);
  }
  struct stat st;
  int err = real_stat(n, &st);
  if (err) return (void)fuse_reply_err(req, err);
  if (!guest_xattr(name) || !has_xattrs(&st)) return (void)fuse_reply_err(req, ENODATA);
  char path[64];
  int fd;
  if ((err = node_path(n, &fd, path))) return (void)fuse_reply_err(req, err);
  if (size > XATTR_SIZE_MAX) size = XATTR_SIZE_MAX;
  char *buf = size ? malloc(size) : NULL;
  if (size && !buf) return (void)fuse_reply_err(req, ENOMEM);
  ssize_t res = getxattr(path, name, buf, size);
  if (res < 0) fuse_reply_err(req, errno);
  else if (size == 0) fuse_reply_xattr(req, (size_t)res);
  else fuse_reply_buf(req, buf, (size_t)res);
  free(buf);
}

void hs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  struct node *n = node_of(ino);
  struct stat st;
  int err = real_stat(n, &st);
  if (err) return (void)fuse_reply_err(req, err);
  char *list = malloc(XATTR_LIST_MAX);
  if (!list) return (void)fuse_reply_err(req, ENOMEM);
  ssize_t len = 0;
  if (has_xattrs(&st)) {
    char path[64];
    int fd;
    err = node_path(n, &fd, path);
    if (!err && (len = listxattr(path, list, XATTR_LIST_MAX)) < 0) err = errno;
    if (err) {
      free(list);
      return (void)fuse_reply_err(req, err);
    }
  }
  /* Only what the guest may read: neither what this server keeps aside nor the host's labels. */
  size_t kept = 0;
  for (ssize_t at = 0; at < len;) {
    size_t one = strlen(list + at) + 1;
    if (guest_xattr(list + at)) {
      memmove(list + kept, list + at, one);
      kept += one;
    }
    at += (ssize_t)one;
  }
  if (size == 0) fuse_reply_xattr(req, kept);
  else if (size < kept) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, list, kept);
  free(list);
}

void hs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  struct node *n = node_of(ino);
  if (!strncmp(name, HULL_PREFIX, strlen(HULL_PREFIX)) || is_virtfs_attr(name))
    return (void)fuse_reply_err(req, EPERM);
  if (!guest_xattr(name)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  struct stat st;
  char path[64];
  int fd, err = writable_fd(n, &fd);
  if (!err) err = real_stat(n, &st);
  if (!err && !has_xattrs(&st)) err = ENODATA;
  if (!err) err = node_path(n, &fd, path);
  if (!err && removexattr(path, name) < 0) err = errno;
  fuse_reply_err(req, err);
}

