/*
 * hull-share-server's nodes: one per file the kernel has looked up, kept until it forgets the
 * file, found by device and inode number.
 *
 * A node holds an O_PATH descriptor of its file only while it is among the most recently used
 * (at most a quarter of the open-files limit, and 4096), or while the file is open: the kernel
 * keeps every file it has looked up until memory pressure or FORGET, so holding a descriptor
 * for each would end in EMFILE for every lookup of the share once a guest has touched some
 * ten thousand files. An evicted node is reopened from its parent's descriptor by the one name
 * it was last seen under (openat, O_NOFOLLOW, never "." or ".."), and only if the file there is
 * still the same device and inode: a file renamed or replaced behind the server's back is
 * ESTALE, never confused with another. Each node keeps its parent alive, and a parent chain
 * never loops, so the reopening always ends at the share's own descriptor.
 */
#define _GNU_SOURCE
#include "nodes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUCKETS 4096
#define MOST_CACHED 4096
#define FEWEST_CACHED 8

static struct node *table[BUCKETS];
struct node root_node = {.fd = -1, .lookups = 2};
static struct node *newest, *oldest;
static size_t cached;
static uint64_t request = 1;

static unsigned bucket(dev_t dev, ino_t ino) {
  return (unsigned)((ino * 31 + dev) % BUCKETS);
}

static void hash_add(struct node *n) {
  unsigned b = bucket(n->dev, n->ino);
  n->next = table[b];
  table[b] = n;
}

static void hash_remove(struct node *n) {
  struct node **p = &table[bucket(n->dev, n->ino)];
  while (*p && *p != n) p = &(*p)->next;
  if (*p) *p = n->next;
}

struct node *node_find(dev_t dev, ino_t ino) {
  struct node *n = table[bucket(dev, ino)];
  while (n && !(n->dev == dev && n->ino == ino)) n = n->next;
  return n;
}

void nodes_init(int share_fd) {
  struct stat st;
  root_node.fd = share_fd;
  if (fstat(share_fd, &st) == 0) {
    root_node.dev = st.st_dev;
    root_node.ino = st.st_ino;
    /* Found again below itself (a bind of a directory above the share), it stays the root. */
    hash_add(&root_node);
  }
}

static void cache_remove(struct node *n) {
  if (!n->in_cache) return;
  if (n->newer) n->newer->older = n->older;
  else newest = n->older;
  if (n->older) n->older->newer = n->newer;
  else oldest = n->newer;
  n->newer = n->older = NULL;
  n->in_cache = 0;
  cached--;
}

static void cache_add(struct node *n) {
  if (n->in_cache || n->fd < 0 || n->pins || n == &root_node) return;
  n->older = newest;
  n->newer = NULL;
  if (newest) newest->newer = n;
  else oldest = n;
  newest = n;
  n->in_cache = 1;
  cached++;
}

static void touch(struct node *n) {
  n->used = request;
  if (n->in_cache && newest != n) {
    cache_remove(n);
    cache_add(n);
  }
}

static void evict(struct node *n) {
  cache_remove(n);
  close(n->fd);
  n->fd = -1;
}

/* Closes the oldest descriptors until `limit` are left, sparing those of this request if asked. */
static void shrink(size_t limit, int spare_this_request) {
  for (struct node *n = oldest, *newer; n && cached > limit; n = newer) {
    newer = n->newer;
    if (!spare_this_request || n->used != request) evict(n);
  }
}

size_t nodes_cache_limit(void) {
  struct rlimit limit;
  size_t most = MOST_CACHED;
  /* Read each time: lowering the server's limit (prlimit) lowers what it holds. */
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur / 4 < most)
    most = limit.rlim_cur / 4;
  return most < FEWEST_CACHED ? FEWEST_CACHED : most;
}

void nodes_next_request(void) {
  shrink(nodes_cache_limit(), 0);
  request++;
}

int open_at(int dir, const char *name, int flags, mode_t mode) {
  int fd = openat(dir, name, flags | O_CLOEXEC, mode);
  if (fd >= 0 || (errno != EMFILE && errno != ENFILE) || !cached) return fd;
  shrink(cached / 2, 1);
  return openat(dir, name, flags | O_CLOEXEC, mode);
}

int node_fd(struct node *n, int *fd) {
  if (n->fd < 0) {
    if (!n->parent) return ESTALE;
    int dir, err = node_fd(n->parent, &dir);
    if (err) return err;
    int reopened = open_at(dir, n->name, O_PATH | O_NOFOLLOW, 0);
    if (reopened < 0) return errno;
    struct stat st;
    if (fstatat(reopened, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != n->dev ||
        st.st_ino != n->ino) {
      close(reopened);
      return ESTALE;
    }
    n->fd = reopened;
    cache_add(n);
  }
  touch(n);
  *fd = n->fd;
  return 0;
}

static void release(struct node *n) {
  while (n && n != &root_node && !n->lookups && !n->children && !n->pins) {
    struct node *parent = n->parent;
    hash_remove(n);
    if (n->fd >= 0) evict(n);
    free(n->name);
    free(n);
    if (parent) parent->children--;
    n = parent;
  }
}

/* Whether `n` is `from` or one of its ancestors. */
static int is_above(struct node *n, struct node *from) {
  for (struct node *p = from; p; p = p->parent)
    if (p == n) return 1;
  return 0;
}

int node_moved(struct node *n, struct node *parent, const char *name) {
  if (n == &root_node || (n->parent == parent && !strcmp(n->name, name))) return 0;
  /*
   * A directory found below itself (the same directory bound twice, one inside the other)
   * keeps the place it was known by: a parent chain that looped would never reach the share.
   */
  if (is_above(n, parent)) return 0;
  char *copy = strdup(name);
  if (!copy) return ENOMEM;
  struct node *old = n->parent;
  free(n->name);
  n->name = copy;
  n->parent = parent;
  parent->children++;
  if (old) {
    old->children--;
    release(old);
  }
  return 0;
}

int node_found(struct node *parent, const char *name, int fd, const struct stat *st, struct node **out) {
  struct node *n = node_find(st->st_dev, st->st_ino);
  if (n) {
    if (n->fd < 0) {
      n->fd = fd;
      cache_add(n);
    } else {
      close(fd);
    }
    int err = node_moved(n, parent, name);
    if (err) return err;
  } else {
    n = calloc(1, sizeof *n);
    char *copy = n ? strdup(name) : NULL;
    if (!copy) {
      free(n);
      close(fd);
      return ENOMEM;
    }
    n->name = copy;
    n->fd = fd;
    n->dev = st->st_dev;
    n->ino = st->st_ino;
    n->parent = parent;
    parent->children++;
    hash_add(n);
    cache_add(n);
  }
  touch(n);
  n->lookups++;
  *out = n;
  return 0;
}

void node_forget(struct node *n, uint64_t count) {
  if (n == &root_node) return;
  n->lookups = count > n->lookups ? 0 : n->lookups - count;
  release(n);
}

void node_replace(struct node *n, int fd, const struct stat *st) {
  hash_remove(n);
  cache_remove(n);
  if (n->fd >= 0) close(n->fd);
  n->fd = fd;
  n->dev = st->st_dev;
  n->ino = st->st_ino;
  hash_add(n);
  cache_add(n);
  touch(n);
}

void node_pin(struct node *n) {
  if (n == &root_node) return;
  n->pins++;
  cache_remove(n);
}

void node_unpin(struct node *n) {
  if (n == &root_node || !n->pins) return;
  if (--n->pins) return;
  cache_add(n);
  release(n);
}
