/*
 * The files hull-share-server's kernel has looked up ("nodes"), and the bounded set of O_PATH
 * descriptors it holds of them (see nodes.c).
 */
#ifndef HULL_SHARE_NODES_H
#define HULL_SHARE_NODES_H

#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct node {
  struct node *next;                 /* in its hash bucket */
  struct node *newer, *older;        /* in the descriptor cache, while it holds fd unpinned */
  int in_cache;
  int fd;                            /* O_PATH descriptor, or -1 while evicted */
  uint64_t used;                     /* the request that last used fd */
  dev_t dev;
  ino_t ino;
  uint64_t lookups;                  /* the kernel's references, until FORGET */
  uint64_t children;                 /* nodes that name this one as their parent */
  unsigned pins;                     /* open files: their node keeps its descriptor */
  /* Where it was last seen: one name in its parent, to reopen it by once evicted. */
  struct node *parent;
  char *name;
  /*
   * A regular file this server just made: the VMM makes symlinks and device nodes that way,
   * then says what they are by setting their mode.
   */
  int created;
  /*
   * What the VMM last read of the file's owner, mode and device number: it asks for all four
   * xattrs at each stat. Dropped when the guest changes them here; a change made on the host
   * shows after the server's cache time, as the kernel's own cache of the file does.
   */
  struct view {
    uint32_t uid, gid, mode;
    uint64_t rdev;
  } view;
  uint64_t view_until;
};

/* The share itself: never evicted, never forgotten. */
extern struct node root_node;

void nodes_init(int share_fd);
/* The node's descriptor, reopened from its parent if it was evicted; 0 or an errno. */
int node_fd(struct node *n, int *fd);
/*
 * Records that `name` in `parent` is the file `fd` (O_PATH, taken over) with `st`: the node
 * already known for that file or a new one, with one more lookup. 0 or an errno.
 */
int node_found(struct node *parent, const char *name, int fd, const struct stat *st, struct node **out);
/* The kernel forgets `count` lookups of `n`. */
void node_forget(struct node *n, uint64_t count);
/* The node of a file, if the kernel holds one. */
struct node *node_find(dev_t dev, ino_t ino);
/* `n` is now at `name` in `parent` (after a rename). */
int node_moved(struct node *n, struct node *parent, const char *name);
/* `n` now stands for another file, `fd` (taken over) with `st`, at the same place. */
void node_replace(struct node *n, int fd, const struct stat *st);
/* An open file keeps its node's descriptor while it is open. */
void node_pin(struct node *n);
void node_unpin(struct node *n);
/* Called between requests: closes the least recently used descriptors beyond the bound. */
void nodes_next_request(void);
/* The bound on descriptors of evictable nodes. */
size_t nodes_cache_limit(void);
/*
 * openat(2) that, out of descriptors, closes half the cached ones (but those of the request
 * under way) and tries once more.
 */
int open_at(int dir, const char *name, int flags, mode_t mode);

#endif
