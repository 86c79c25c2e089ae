/* bgsave — serialises the model for a Raft snapshot in a forked child, as
 * Redis's BGSAVE does, so the loop thread that owns the model pauses only for
 * fork() (a few ms) instead of the whole serialisation (~5 ms per MB).
 *
 * The child holds a copy-on-write image of the model exactly as it was at the
 * fork, serialises it with model_snapshot_dump, compresses it into a memfd
 * (snapz.h: what raft writes is that frame) and exits; it runs at SCHED_IDLE,
 * so it takes CPU only when the replica and its PostgreSQL leave some. glibc keeps malloc usable in the child of a threaded
 * process (its arena locks are held across fork); the child touches nothing but
 * the model and the memfd, logs nothing and leaves with _exit.
 *
 * Lifecycle: bgsave_start (loop thread) → bgsave_collect (any one thread, e.g. a
 * libuv worker) → bgsave_release (loop thread, always). */
#ifndef LATTICE_BGSAVE_H
#define LATTICE_BGSAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct model;

struct bgsave {
	pid_t pid;    /* the child; 0 when none */
	int fd;       /* the memfd it writes; -1 when none */
	void *base;   /* the packed snapshot once collected (mapped or raft_malloc'd) */
	size_t len;
	bool mapped;  /* base is an mmap of the memfd (else raft_malloc'd) */
	int err;      /* errno of a failed start */
};

/* Loop thread: forks a child serialising m as of index. Returns 0, or -1 when
 * no child could be started (b->err says why; nothing to release). */
int bgsave_start(struct bgsave *b, const struct model *m, uint64_t index);
/* Waits for the child and makes its output b->base/b->len. Returns 0, or -1
 * with a message in err when the child failed. Blocks: not on the loop thread. */
int bgsave_collect(struct bgsave *b, char *err, size_t errlen);
/* Frees buf (b->base after collect; the caller may have handed it on and give it
 * back here), kills and reaps a child still running, closes the memfd. */
void bgsave_release(struct bgsave *b, void *buf);

#endif
