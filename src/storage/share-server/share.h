/*
 * What hull-share-server's files share: its rules for xattrs and modes, and the helpers that
 * reach a node's file (hull-share-server.c); the xattr operations (xattrs.c).
 */
#ifndef HULL_SHARE_H
#define HULL_SHARE_H

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "nodes.h"

/* What the kernel may cache: the guest is the only writer, bar the host's own later mounts. */
#define CACHE_SECONDS 1.0
#define SPECIAL_BITS (S_ISUID | S_ISGID)
#define HULL_MODE "user.hull.mode"
#define HULL_RDEV "user.hull.rdev"
#define HULL_PREFIX "user.hull."
#define VIRTFS_PREFIX "user.virtfs."

struct node *node_of(fuse_ino_t ino);
void proc_path(char buf[64], int fd);
int node_path(struct node *n, int *fd, char path[64]);
int read_only(int fd);
int writable_fd(struct node *n, int *fd);
int real_stat(struct node *n, struct stat *st);
int has_xattrs(const struct stat *st);

void hs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags);
void hs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void hs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void hs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
