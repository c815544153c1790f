/*
 * hull-share-server: serves a sandbox's share to its VMM, so that no guest file operation
 * becomes a host privilege while the guest still sees the owners, modes and file types it set.
 *
 *   hull-share-server UID GID     fd 3: /dev/fuse, already mounted (hull-jail mounts it over
 *                                 the share); fd 4: the share directory itself (O_PATH)
 *
 * The VMM serves this mount to the guest with 9p's mapped-xattr model: it reads a file's
 * owner, mode and device number as the xattrs user.virtfs.{uid,gid,mode,rdev} and sets them
 * the same way, and it makes symlinks and device nodes as regular files whose mode says what
 * they are. This server answers those xattrs from the real files (real owners and modes, real
 * symlinks), so the host and the bundle's own tools keep seeing ordinary files, and keeps
 * aside only what must not reach the host: the setuid and setgid bits, and file types other
 * than regular files, directories and symlinks (device nodes, fifos, sockets: a guest's
 * mknod leaves a regular file). Both live in the xattr user.hull.mode of a regular file or
 * directory; a device's number in user.hull.rdev. The guest may neither read nor set those,
 * nor any xattr but its own user.* ones and POSIX ACLs (xattrs.c).
 *
 * Below a read-only mount (a container's read-only root or volume, bound read-only by the
 * host) every write is refused with EROFS, here as by the kernel.
 *
 * To the host kernel every file here is the VMM's own 0600 file or 0700 directory and the
 * mount has no default_permissions, so the VMM needs no capability: this server, which runs
 * as the VMM's user with chown, dac_override and fowner, acts on the real files, always
 * through file descriptors of the share's tree (openat of one name, never "." or "..",
 * O_NOFOLLOW), so no path the guest can change leads it outside the share. The files the
 * kernel has looked up and the bounded set of descriptors held of them are in nodes.c.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "share.h"

#define FUSE_FD 3
#define SHARE_FD 4

static uid_t vmm_uid;
static gid_t vmm_gid;

struct node *node_of(fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? &root_node : (struct node *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct node *n) {
  return n == &root_node ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

void proc_path(char buf[64], int fd) {
  snprintf(buf, 64, "/proc/self/fd/%d", fd);
}

/*
 * A node's descriptor and its /proc path, which reopens the very file (no path the guest can
 * change): what setxattr, chmod and truncate, having no by-descriptor form for O_PATH, act on.
 */
int node_path(struct node *n, int *fd, char path[64]) {
  int err = node_fd(n, fd);
  if (!err) proc_path(path, *fd);
  return err;
}

/*
 * Writes below a read-only mount (a container's read-only root or volume, which the host bound
 * read-only into the share) are refused here too, whatever the VMM asks: EROFS, as the kernel
 * would answer.
 */
int read_only(int fd) {
  struct statvfs sv;
  if (fstatvfs(fd, &sv) < 0) return errno;
  return sv.f_flag & ST_RDONLY ? EROFS : 0;
}

/* The node's descriptor, if files may be written there. */
int writable_fd(struct node *n, int *fd) {
  int err = node_fd(n, fd);
  return err ? err : read_only(*fd);
}

/* A single name inside a directory: nothing that climbs out or names the directory itself. */
static int bad_name(const char *name) {
  if (!strcmp(name, ".") || !strcmp(name, "..") || strchr(name, '/')) return EPERM;
  if (strlen(name) > NAME_MAX) return ENAMETOOLONG;
  return 0;
}

int real_stat(struct node *n, struct stat *st) {
  int fd, err = node_fd(n, &fd);
  if (err) return err;
  return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? errno : 0;
}

/* Only regular files and directories carry xattrs (and the kernel allows user.* on no others). */
int has_xattrs(const struct stat *st) {
  return S_ISREG(st->st_mode) || S_ISDIR(st->st_mode);
}

/* What the host kernel sees: the VMM's own file or directory, and nothing to check. */
static void kernel_view(struct stat *st) {
  st->st_mode = S_ISDIR(st->st_mode) ? (S_IFDIR | 0700) : (S_IFREG | 0600);
  st->st_uid = vmm_uid;
  st->st_gid = vmm_gid;
  st->st_rdev = 0;
}

static int lookup_at(struct node *parent, const char *name, struct fuse_entry_param *e) {
  int dir, err = bad_name(name);
  if (!err) err = node_fd(parent, &dir);
  if (err) return err;
  int fd = open_at(dir, name, O_PATH | O_NOFOLLOW, 0);
  if (fd < 0) return errno;
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
    err = errno;
    close(fd);
    return err;
  }
  struct node *n;
  err = node_found(parent, name, fd, &st, &n);
  if (err) return err;
  memset(e, 0, sizeof *e);
  e->ino = ino_of(n);
  e->attr = st;
  kernel_view(&e->attr);
  e->attr_timeout = e->entry_timeout = CACHE_SECONDS;
  return 0;
}

static void reply_entry(fuse_req_t req, struct node *parent, const char *name) {
  struct fuse_entry_param e;
  int err = lookup_at(parent, name, &e);
  if (err) fuse_reply_err(req, err);
  else fuse_reply_entry(req, &e);
}

static void hs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  reply_entry(req, node_of(parent), name);
}

static void hs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t count) {
  node_forget(node_of(ino), count);
  fuse_reply_none(req);
}

static void hs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  for (size_t i = 0; i < count; i++) node_forget(node_of(forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

static void hs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct stat st;
  int err = real_stat(node_of(ino), &st);
  if (err) return (void)fuse_reply_err(req, err);
  kernel_view(&st);
  fuse_reply_attr(req, &st, CACHE_SECONDS);
}

/* An open file: a descriptor of a regular file, or the target of a symlink read as a file. */
struct handle {
  int fd;
  char *link;
  size_t link_len;
};

static void hs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi) {
  struct node *n = node_of(ino);
  struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
  struct stat st;
  char path[64];
  int fd, err = real_stat(n, &st);
  if (!err) err = writable_fd(n, &fd);
  if (err) return (void)fuse_reply_err(req, err);
  /* The VMM sets owners and modes through the user.virtfs xattrs, never this way. */
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
    return (void)fuse_reply_err(req, EPERM);
  proc_path(path, fd);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (!S_ISREG(st.st_mode)) return (void)fuse_reply_err(req, EINVAL);
    if ((h && h->fd >= 0 ? ftruncate(h->fd, attr->st_size) : truncate(path, attr->st_size)) < 0)
      return (void)fuse_reply_err(req, errno);
  }
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) tv[0].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_ATIME) tv[0] = attr->st_atim;
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) tv[1].tv_nsec = UTIME_NOW;
    else if (to_set & FUSE_SET_ATTR_MTIME) tv[1] = attr->st_mtim;
    int res = has_xattrs(&st) ? utimensat(AT_FDCWD, path, tv, 0)
                              : utimensat(fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
    if (res < 0) return (void)fuse_reply_err(req, errno == EINVAL ? EPERM : errno);
  }
  hs_getattr(req, ino, NULL);
}

/*
 * Removes what a request made at `name` in `dir` when it cannot be answered (the guest was
 * told it failed, so nothing of it may stay); only if it is still the very file made.
 */
static void undo_made(int dir, const char *name, const struct stat *made) {
  struct stat there;
  if (fstatat(dir, name, &there, AT_SYMLINK_NOFOLLOW) == 0 && there.st_dev == made->st_dev &&
      there.st_ino == made->st_ino)
    unlinkat(dir, name, S_ISDIR(there.st_mode) ? AT_REMOVEDIR : 0);
}

/*
 * Answers a request that made `name` in `parent`: its entry, or, when the file cannot be
 * looked up, the error, with the file removed again.
 */
static int entry_of_made(struct node *parent, int dir, const char *name, struct fuse_entry_param *e) {
  struct stat made;
  if (fstatat(dir, name, &made, AT_SYMLINK_NOFOLLOW) < 0) return errno;
  int err = lookup_at(parent, name, e);
  if (err) undo_made(dir, name, &made);
  return err;
}

static void hs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  (void)rdev;
  struct node *p = node_of(parent);
  int dir, err = bad_name(name);
  /* The VMM makes every special file as a regular one; a real device node never results. */
  if (!err && !S_ISREG(mode)) err = EPERM;
  if (!err) err = writable_fd(p, &dir);
  if (!err && mknodat(dir, name, S_IFREG | (mode & 0777), 0) < 0) err = errno;
  struct fuse_entry_param e;
  if (!err) err = entry_of_made(p, dir, name, &e);
  if (err) return (void)fuse_reply_err(req, err);
  node_of(e.ino)->created = 1;
  fuse_reply_entry(req, &e);
}

static void hs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  struct node *p = node_of(parent);
  int dir, err = bad_name(name);
  if (!err) err = writable_fd(p, &dir);
  if (!err && mkdirat(dir, name, mode & 0777) < 0) err = errno;
  struct fuse_entry_param e;
  if (!err) err = entry_of_made(p, dir, name, &e);
  if (err) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

static void hs_symlink(fuse_req_t req, const char *target, fuse_ino_t parent, const char *name) {
  (void)target, (void)parent, (void)name;
  /* 9p's mapped-xattr model writes symlinks as files; this server makes the real ones. */
  fuse_reply_err(req, EPERM);
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int flags) {
  int dir, err = bad_name(name);
  if (!err) err = writable_fd(node_of(parent), &dir);
  if (!err && unlinkat(dir, name, flags) < 0) err = errno;
  fuse_reply_err(req, err);
}

static void hs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  remove_name(req, parent, name, 0);
}

static void hs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  remove_name(req, parent, name, AT_REMOVEDIR);
}

/* The node of what is now at `name` in `dir` (if the kernel holds one) is recorded there. */
static void record_place(struct node *parent, int dir, const char *name) {
  struct stat st;
  struct node *n;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && (n = node_find(st.st_dev, st.st_ino)))
    node_moved(n, parent, name);
}

static void hs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
  struct node *from = node_of(parent), *to = node_of(newparent);
  int from_dir, to_dir, err = bad_name(name);
  if (!err) err = bad_name(newname);
  if (!err && (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))) err = EINVAL;
  if (!err) err = writable_fd(from, &from_dir);
  if (!err) err = writable_fd(to, &to_dir);
  if (!err && renameat2(from_dir, name, to_dir, newname, flags) < 0) err = errno;
  if (!err) {
    /* An evicted node is reopened by its last name: the moved file's (files') are new. */
    record_place(to, to_dir, newname);
    if (flags & RENAME_EXCHANGE) record_place(from, from_dir, name);
  }
  fuse_reply_err(req, err);
}

static void hs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  struct node *n = node_of(ino), *p = node_of(newparent);
  struct stat st;
  char path[64];
  int fd, dir, err = bad_name(newname);
  if (!err) err = real_stat(n, &st);
  if (!err && !S_ISREG(st.st_mode)) err = EPERM;
  if (!err) err = writable_fd(p, &dir);
  if (!err) err = node_path(n, &fd, path);
  /* Through /proc: linking by descriptor (AT_EMPTY_PATH) would need dac_read_search. */
  if (!err && linkat(AT_FDCWD, path, dir, newname, AT_SYMLINK_FOLLOW) < 0) err = errno;
  struct fuse_entry_param e;
  if (!err && (err = lookup_at(p, newname, &e))) {
    struct stat made;
    if (fstat(fd, &made) == 0) undo_made(dir, newname, &made);
  }
  if (err) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

static struct handle *open_handle(struct node *n, int flags, int *err) {
  struct stat st;
  int fd;
  *err = real_stat(n, &st);
  if (!*err) *err = node_fd(n, &fd);
  if (!*err && ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))) *err = read_only(fd);
  if (*err) return NULL;
  struct handle *h = calloc(1, sizeof *h);
  if (!h) {
    *err = ENOMEM;
    return NULL;
  }
  h->fd = -1;
  if (S_ISLNK(st.st_mode)) {
    /* The VMM reads a symlink's target as the file's contents. */
    if ((flags & O_ACCMODE) != O_RDONLY) *err = EPERM;
    else if (!(h->link = malloc(PATH_MAX))) *err = ENOMEM;
    else {
      ssize_t len = readlinkat(fd, "", h->link, PATH_MAX);
      if (len < 0) *err = errno;
      else h->link_len = (size_t)len;
    }
  } else if (S_ISREG(st.st_mode)) {
    char path[64];
    proc_path(path, fd);
    h->fd = open_at(AT_FDCWD, path, flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW), 0);
    if (h->fd < 0) *err = errno;
  } else {
    /* A host fifo or device node is never opened for the guest. */
    *err = EACCES;
  }
  if (*err) {
    free(h->link);
    free(h);
    return NULL;
  }
  return h;
}

/* An open file keeps its node's descriptor: the guest may stat it after removing its name. */
static void reply_open(fuse_req_t req, struct node *n, struct handle *h, struct fuse_file_info *fi) {
  node_pin(n);
  fi->fh = (uintptr_t)h;
  fuse_reply_open(req, fi);
}

static void hs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  int err;
  struct handle *h = open_handle(node_of(ino), fi->flags, &err);
  if (!h) return (void)fuse_reply_err(req, err);
  reply_open(req, node_of(ino), h, fi);
}

static void hs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi) {
  struct node *p = node_of(parent);
  int dir, err = bad_name(name);
  if (!err) err = writable_fd(p, &dir);
  if (err) return (void)fuse_reply_err(req, err);
  /*
   * Made here (O_EXCL) or opened as it was, so that a failure below removes only a file this
   * request made. Non-blocking until it is known to be a regular file: a host fifo there is
   * never opened.
   */
  int flags = (fi->flags | O_NOFOLLOW | O_NONBLOCK) & ~(O_NOCTTY | O_CREAT | O_EXCL);
  int fd = open_at(dir, name, flags | O_CREAT | O_EXCL, mode & 0777), made = fd >= 0;
  if (fd < 0 && errno == EEXIST && !(fi->flags & O_EXCL)) fd = open_at(dir, name, flags, 0);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  struct stat opened;
  if (fstat(fd, &opened) < 0 || !S_ISREG(opened.st_mode) ||
      (!(fi->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0))
    err = EACCES;
  struct handle *h = err ? NULL : calloc(1, sizeof *h);
  struct fuse_entry_param e;
  if (!err) err = h ? lookup_at(p, name, &e) : ENOMEM;
  if (err) {
    if (made) undo_made(dir, name, &opened);
    close(fd);
    free(h);
    return (void)fuse_reply_err(req, err);
  }
  h->fd = fd;
  struct node *n = node_of(e.ino);
  n->created = made;
  node_pin(n);
  fi->fh = (uintptr_t)h;
  fuse_reply_create(req, &e, fi);
}

static void hs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->link) {
    size_t from = off < 0 || (size_t)off > h->link_len ? h->link_len : (size_t)off;
    size_t len = h->link_len - from < size ? h->link_len - from : size;
    return (void)fuse_reply_buf(req, h->link + from, len);
  }
  struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
  buf.buf[0].fd = h->fd;
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void hs_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
                         struct fuse_file_info *fi) {
  (void)ino;
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->fd < 0) return (void)fuse_reply_err(req, EBADF);
  struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
  out.buf[0].fd = h->fd;
  out.buf[0].pos = off;
  ssize_t res = fuse_buf_copy(&out, in, 0);
  if (res < 0) fuse_reply_err(req, (int)-res);
  else fuse_reply_write(req, (size_t)res);
}

static void hs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino, (void)fi;
  fuse_reply_err(req, 0);
}

static void hs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  if (h->fd >= 0) close(h->fd);
  free(h->link);
  free(h);
  node_unpin(node_of(ino));
  fuse_reply_err(req, 0);
}

static void hs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  (void)ino;
  struct handle *h = (struct handle *)(uintptr_t)fi->fh;
  int res = h->fd < 0 ? 0 : datasync ? fdatasync(h->fd) : fsync(h->fd);
  fuse_reply_err(req, res < 0 ? errno : 0);
}

struct dir_handle {
  DIR *dir;
  off_t offset;
};

static void hs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  int dir, err = node_fd(node_of(ino), &dir);
  if (err) return (void)fuse_reply_err(req, err);
  int fd = open_at(dir, ".", O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return (void)fuse_reply_err(req, errno);
  struct dir_handle *d = calloc(1, sizeof *d);
  if (!d || !(d->dir = fdopendir(fd))) {
    int err = d ? errno : ENOMEM;
    close(fd);
    free(d);
    return (void)fuse_reply_err(req, err);
  }
  fi->fh = (uintptr_t)d;
  fuse_reply_open(req, fi);
}

static void hs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  (void)ino;
  struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
  char *buf = malloc(size);
  if (!buf) return (void)fuse_reply_err(req, ENOMEM);
  if (off != d->offset) {
    seekdir(d->dir, off);
    d->offset = off;
  }
  size_t used = 0;
  for (;;) {
    errno = 0;
    long here = telldir(d->dir);
    struct dirent *entry = readdir(d->dir);
    if (!entry) break;
    /* The kernel sees only its view's two types; the VMM asks each file's mode anyway. */
    struct stat st = {.st_ino = entry->d_ino, .st_mode = (entry->d_type == DT_DIR ? S_IFDIR : S_IFREG)};
    off_t next = telldir(d->dir);
    size_t len = fuse_add_direntry(req, buf + used, size - used, entry->d_name, &st, next);
    if (len > size - used) {
      seekdir(d->dir, here);
      break;
    }
    used += len;
    d->offset = next;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
}

static void hs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
  closedir(d->dir);
  free(d);
  fuse_reply_err(req, 0);
}

static void hs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  (void)ino;
  struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
  int fd = dirfd(d->dir);
  fuse_reply_err(req, (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? errno : 0);
}

static void hs_statfs(fuse_req_t req, fuse_ino_t ino) {
  struct statvfs sv;
  int fd, err = node_fd(node_of(ino), &fd);
  if (err) return (void)fuse_reply_err(req, err);
  if (fstatvfs(fd, &sv) < 0) return (void)fuse_reply_err(req, errno);
  fuse_reply_statfs(req, &sv);
}

static void hs_init(void *userdata, struct fuse_conn_info *conn) {
  (void)userdata;
  /* Every write and mode change goes to this server at once; nothing is cached for write. */
  conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_POSIX_ACL);
}

static const struct fuse_lowlevel_ops ops = {
    .init = hs_init,
    .lookup = hs_lookup,
    .forget = hs_forget,
    .forget_multi = hs_forget_multi,
    .getattr = hs_getattr,
    .setattr = hs_setattr,
    .mknod = hs_mknod,
    .mkdir = hs_mkdir,
    .symlink = hs_symlink,
    .unlink = hs_unlink,
    .rmdir = hs_rmdir,
    .rename = hs_rename,
    .link = hs_link,
    .open = hs_open,
    .create = hs_create,
    .read = hs_read,
    .write_buf = hs_write_buf,
    .flush = hs_flush,
    .release = hs_release,
    .fsync = hs_fsync,
    .opendir = hs_opendir,
    .readdir = hs_readdir,
    .releasedir = hs_releasedir,
    .fsyncdir = hs_fsyncdir,
    .statfs = hs_statfs,
    .setxattr = hs_setxattr,
    .getxattr = hs_getxattr,
    .listxattr = hs_listxattr,
    .removexattr = hs_removexattr,
};

static long parse_id(const char *text) {
  char *end;
  errno = 0;
  long value = strtol(text, &end, 10);
  return errno || *end || value < 0 || value > 4294967294L ? -1 : value;
}

int main(int argc, char **argv) {
  long uid = argc == 3 ? parse_id(argv[1]) : -1, gid = argc == 3 ? parse_id(argv[2]) : -1;
  if (uid < 0 || gid < 0) {
    fprintf(stderr, "hull-share-server: usage: hull-share-server UID GID (fd 3 /dev/fuse, fd 4 the share)\n");
    return 2;
  }
  vmm_uid = (uid_t)uid;
  vmm_gid = (gid_t)gid;
  /* The VMM runs as the same user: it may not trace or read this process. */
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  /* This server lives as long as its VMM, its parent (hull-jail set this too; again, in case). */
  prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* Room for the files the guest holds open, each a descriptor here (see nodes.c). */
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  struct stat st;
  if (fstat(SHARE_FD, &st) < 0 || !S_ISDIR(st.st_mode)) {
    fprintf(stderr, "hull-share-server: fd 4 is not the share directory\n");
    return 2;
  }
  char *fuse_argv[] = {argv[0], NULL};
  struct fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
  if (!se || fuse_session_mount(se, "/dev/fd/3") != 0) {
    fprintf(stderr, "hull-share-server: cannot serve /dev/fuse on fd 3\n");
    return 2;
  }
  nodes_init(SHARE_FD);
  /*
   * One thread: measured against four (libfuse's pool) on a guest copying and removing a
   * Debian image's documentation, one was 1.7 times faster (fewer hand-offs on a host whose
   * cores the guest's emulation keeps busy). libfuse's own loop, with the descriptor cache
   * trimmed between requests (never during one, whose descriptors are in use).
   */
  struct fuse_buf buf = {.mem = NULL};
  int res = 0;
  while (!fuse_session_exited(se)) {
    res = fuse_session_receive_buf(se, &buf);
    if (res == -EINTR) continue;
    if (res <= 0) break;
    fuse_session_process_buf(se, &buf);
    nodes_next_request();
  }
  free(buf.mem);
  fuse_session_destroy(se);
  return res < 0 ? 1 : 0;
}
