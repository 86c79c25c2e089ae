/* raftio — wraps the struct raft_io that raft_uv_init filled, to see raft's own
 * disk writes fail and to keep canonical raft 0.15 alive when they do.
 *
 * raft 0.15's leader handles a failed append by truncating its in-memory log
 * from that append's first index. When several appends fail together (the
 * usual case: they all waited for the same segment), the second truncation
 * starts past the end of the already shortened log, its entry count underflows
 * and raft walks off its reference table: a segfault inside libraft. raftio
 * holds failed appends back and hands them to raft newest first, so every
 * truncation starts inside the log. An append that fails after raft already
 * truncated past it is handed back as done instead (raft then only releases its
 * entries: it has none left at those indexes to mark stored), and reported as
 * an error no write may follow, since raft still holds that proposal's request
 * under an index new entries would reuse.
 *
 * raft_uv may also report itself closed twice: a segment's writer that finishes
 * closing after everything else calls its close check again, which runs raft's
 * close callback a second time (a double free in libraft, then a crash). raftio
 * passes the first report on and drops the rest; raft_uv's memory must then
 * outlive every callback, so raft_uv_close is called only after the loop has
 * stopped running (loop_close).
 *
 * Each failure is reported through on_log_error / on_snapshot_error with raft's
 * message. Loop thread only (raft's own thread). */
#ifndef LATTICE_RAFTIO_H
#define LATTICE_RAFTIO_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct raftio_pending;

struct raftio {
	struct raft_io io;   /* raft_uv_init fills it; raft uses io.data itself */
	struct raft *raft;   /* borrowed: for the log's last index */
	int (*append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[], unsigned,
		      raft_io_append_cb);
	int (*snapshot_put)(struct raft_io *, unsigned, struct raft_io_snapshot_put *, const struct raft_snapshot *,
			    raft_io_snapshot_put_cb);
	void (*close)(struct raft_io *, raft_io_close_cb);
	raft_io_close_cb close_cb; /* raft's */
	bool closed;               /* raft_uv reported itself closed */
	struct raftio_pending *failed; /* failed appends not yet handed back, newest first */
	uv_timer_t flush;              /* hands them back once the failing batch is complete */
	bool timer_active;
	uint64_t appends_failed, appends_held, snapshots_failed;
	/* message: raft's text; status: a RAFT_* code (RAFT_NOSPACE: the disk was full). */
	void (*on_log_error)(void *arg, int status, const char *message);
	void (*on_snapshot_error)(void *arg, int status, size_t len);
	void (*on_snapshot_written)(void *arg, size_t len);
	/* Asked before a snapshot of len bytes is written (not for one installed
	 * from a leader): false refuses it (raft then drops it and retries later). */
	bool (*snapshot_fits)(void *arg, size_t len);
	void *arg;
};

/* Replaces w->io's append and snapshot_put with raftio's (after raft_uv_init
 * filled w->io, before raft_init). The callbacks may be NULL. Returns 0 or a
 * uv error. */
int raftio_init(struct raftio *w, uv_loop_t *loop, struct raft *raft);
/* Closes the timer (from raft's close callback). */
void raftio_close(struct raftio *w);

#endif
