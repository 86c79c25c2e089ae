/* disk — keeps canonical raft away from a full disk.
 *
 * raft 0.15 does not survive its log running out of room: a failed append with
 * more than one append in flight truncates its in-memory log twice and walks off
 * its entry table (a segfault in libraft), and a snapshot that cannot be written
 * is retried after every applied entry. So latticed asks raft to write only
 * while the data dir has room for what raft may allocate next:
 *
 *  - log segments: raft preallocates open segments (segment_size each) and
 *    keeps a pool of prepared ones; while the pool holds one, the next segment
 *    switch needs no new space, otherwise a whole segment must still fit;
 *  - the next snapshot, once one did not fit (its size is known then);
 *  - a reserve on top (--disk-reserve-mb) for raft's metadata and the rest.
 *
 * A full disk is not fatal: writes are refused (503 disk_full), reads go on,
 * /readyz says why, and writes resume by themselves once space is back.
 * Loop thread only. docs/operations.md "Disk space" is the user's view. */
#ifndef LATTICE_DISK_H
#define LATTICE_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One look at the data dir (disk_read fills it; tests make their own). */
struct disk_reading {
	int err;           /* errno of a failed statvfs/opendir, else 0 */
	uint64_t free;     /* bytes available (f_bavail * f_frsize) */
	uint64_t total;    /* bytes in the file system */
	unsigned open_segments; /* raft's open-N files: the one written + the prepared pool */
	uint64_t spool;    /* bytes in the PostgreSQL projection's spool file (0: none) */
};

enum disk_state {
	DISK_OK = 0,
	DISK_FULL,      /* not enough room for what raft may need next */
	DISK_ERROR,     /* the data dir cannot be examined */
	DISK_LOG_FAILED /* raft reported a failed log write it cannot retry: restart */
};

struct disk {
	char dir[4096];
	uint64_t segment_size; /* raft's open segment size */
	uint64_t reserve;      /* bytes kept free on top */
	struct disk_reading last;
	enum disk_state state;
	uint64_t need;          /* bytes that had to be free at the last decision */
	uint64_t snapshot_need; /* size of a snapshot that did not fit; 0: none */
	char log_error[256];    /* what raft said when a log write failed */
	char spool_path[4200];  /* the projection spool (store.h); "" none */
	uint64_t spool_headroom; /* kept free for it on top, while it exists */
	char reason[512];       /* why writes are refused ("" when DISK_OK) */
};

/* Sets up g for dir (copied). */
void disk_init(struct disk *g, const char *dir, uint64_t segment_size, uint64_t reserve);
/* Counts the PostgreSQL projection's spool (path copied; see store.h), which
 * grows in the data dir while PostgreSQL is away: disk_check reads its size,
 * and while it exists writes are refused already when less than headroom bytes
 * would be left beyond what raft needs, so the entries raft takes can still be
 * spooled (the queue bound, --projection-queue-mb, is a sane headroom). */
void disk_set_spool(struct disk *g, const char *path, uint64_t headroom);
/* May the spool grow by len bytes? Only into room raft does not need (its next
 * segment, a waiting snapshot, the reserve; not the headroom, which is the
 * spool's). Reads the disk; false with a sentence in why. */
bool disk_spool_fits(struct disk *g, uint64_t len, char *why, size_t whylen);
/* Looks at the data dir: its free space, and raft's open segments when
 * segments is true (a directory listing; only needed when space is short). */
void disk_read(const char *dir, bool segments, struct disk_reading *out);
/* Decides from reading r (pure: no I/O). Returns true when the state changed,
 * so the caller logs g->reason once per transition. */
bool disk_decide(struct disk *g, const struct disk_reading *r);
/* disk_read + disk_decide; lists the data dir only when the free space alone
 * does not settle it (it runs every loop tick). */
bool disk_check(struct disk *g);
/* May raft be asked to write (append entries, barriers)? */
static inline bool disk_writable(const struct disk *g)
{
	return g->state == DISK_OK;
}
/* A snapshot of len bytes is about to be handed to raft: true when it fits
 * (reading the disk again); otherwise records its size, refuses writes until
 * there is room for it, and returns false. */
bool disk_snapshot_fits(struct disk *g, size_t len);
/* A snapshot known not to fit is still waiting for room: raft may skip trying
 * (no I/O; the tick's disk_check lifts it). */
static inline bool disk_snapshot_blocked(const struct disk *g)
{
	return g->snapshot_need != 0;
}
/* raft reported a failed log write (message: raft's own text). Writes stay
 * refused until latticed restarts unless resumable (the disk was full). */
void disk_log_failed(struct disk *g, const char *message, bool resumable);

#endif
