#include "raftio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One append raftio passed down. */
struct raftio_pending {
	struct raft_io_append req; /* handed to raft_uv; req.data is the pending */
	struct raftio *w;
	struct raft_io_append *outer; /* raft's request */
	raft_io_append_cb cb;         /* raft's callback */
	uint64_t first_index;
	int status;
	struct raftio_pending *next;
};

/* The snapshot put raftio passed down. */
struct raftio_put {
	struct raft_io_snapshot_put req;
	struct raftio *w;
	struct raft_io_snapshot_put *outer;
	raft_io_snapshot_put_cb cb;
	size_t len;
};

static void flush_failed(uv_timer_t *t)
{
	struct raftio *w = t->data;
	w->timer_active = false;
	struct raftio_pending *p = w->failed;
	w->failed = NULL;
	/* Newest first: each truncation then starts inside what raft still has. */
	while (p) {
		struct raftio_pending *next = p->next;
		if (p->first_index <= raft_last_index(w->raft)) {
			p->cb(p->outer, p->status);
		} else {
			/* raft already dropped these entries: handing it the failure
			 * would crash it. Handing it a success instead only releases
			 * them: raft marks nothing stored, because its log has no entry
			 * at those indexes to match (it never will: see below). */
			w->appends_held++;
			char msg[200];
			snprintf(msg, sizeof(msg),
				 "a failed append of entries from %llu came after raft had truncated its log to %llu",
				 (unsigned long long)p->first_index, (unsigned long long)raft_last_index(w->raft));
			/* The proposal's request stays in raft's queue under an index new
			 * entries would reuse: no write may follow (not resumable). */
			if (w->on_log_error)
				w->on_log_error(w->arg, RAFT_IOERR, msg);
			p->cb(p->outer, 0);
		}
		free(p);
		p = next;
	}
}

static void append_cb(struct raft_io_append *req, int status)
{
	struct raftio_pending *p = req->data;
	struct raftio *w = p->w;
	if (status == 0) {
		p->cb(p->outer, 0);
		free(p);
		return;
	}
	p->status = status;
	/* Cancelled by raft's own close: not a disk problem, but handed back in the
	 * same order for the same reason. */
	if (status != RAFT_CANCELED) {
		w->appends_failed++;
		if (w->on_log_error)
			w->on_log_error(w->arg, status, w->io.errmsg);
	}
	/* The appends failing with this one arrive right after it, in the same
	 * callback chain; hand them all back on the next loop turn. */
	p->next = w->failed;
	w->failed = p;
	if (!w->timer_active) {
		w->timer_active = true;
		uv_timer_start(&w->flush, flush_failed, 0, 0);
	}
}

static int wrapped_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
			  unsigned n, raft_io_append_cb cb)
{
	struct raftio *w = (struct raftio *)io; /* io is w's first member */
	struct raftio_pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return RAFT_NOMEM;
	p->w = w;
	p->outer = req;
	p->cb = cb;
	/* raft appends to its in-memory log first, then asks for these n to be
	 * stored: they are the last n. */
	p->first_index = raft_last_index(w->raft) - n + 1;
	p->req.data = p;
	int rv = w->append(io, &p->req, entries, n, append_cb);
	if (rv != 0)
		free(p);
	return rv;
}

static void put_cb(struct raft_io_snapshot_put *req, int status)
{
	struct raftio_put *p = req->data;
	struct raftio *w = p->w;
	if (status != 0) {
		w->snapshots_failed++;
		if (w->on_snapshot_error)
			w->on_snapshot_error(w->arg, status, p->len);
	} else if (w->on_snapshot_written) {
		w->on_snapshot_written(w->arg, p->len);
	}
	raft_io_snapshot_put_cb cb = p->cb;
	struct raft_io_snapshot_put *outer = p->outer;
	free(p);
	cb(outer, status);
}

static int wrapped_snapshot_put(struct raft_io *io, unsigned trailing, struct raft_io_snapshot_put *req,
				const struct raft_snapshot *snapshot, raft_io_snapshot_put_cb cb)
{
	struct raftio *w = (struct raftio *)io;
	size_t len = 0;
	for (unsigned i = 0; i < snapshot->n_bufs; i++)
		len += snapshot->bufs[i].len;
	if (trailing != 0 && w->snapshot_fits && !w->snapshot_fits(w->arg, len))
		return RAFT_NOSPACE;
	struct raftio_put *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return RAFT_NOMEM;
	p->w = w;
	p->len = len;
	p->outer = req;
	p->cb = cb;
	p->req.data = p;
	int rv = w->snapshot_put(io, trailing, &p->req, snapshot, put_cb);
	if (rv != 0)
		free(p);
	return rv;
}

static void closed_once(struct raft_io *io)
{
	struct raftio *w = (struct raftio *)io;
	if (w->closed)
		return;
	w->closed = true;
	/* Appends cancelled by the close go back to raft while its log is still
	 * open (raft's close callback closes it). */
	if (w->timer_active) {
		uv_timer_stop(&w->flush);
		flush_failed(&w->flush);
	}
	w->close_cb(io);
}

static void wrapped_close(struct raft_io *io, raft_io_close_cb cb)
{
	struct raftio *w = (struct raftio *)io;
	w->close_cb = cb;
	w->close(io, closed_once);
}

int raftio_init(struct raftio *w, uv_loop_t *loop, struct raft *raft)
{
	struct raft_io *io = &w->io;
	w->raft = raft;
	w->append = io->append;
	w->snapshot_put = io->snapshot_put;
	w->close = io->close;
	int rv = uv_timer_init(loop, &w->flush);
	if (rv != 0)
		return rv;
	w->flush.data = w;
	io->append = wrapped_append;
	io->snapshot_put = wrapped_snapshot_put;
	io->close = wrapped_close;
	/* raft_uv 0.15 implements async_work but still says version 1, and raft
	 * refuses an async snapshot FSM on a version 1 io. */
	if (io->async_work != NULL && io->version < 2)
		io->version = 2;
	return 0;
}

void raftio_close(struct raftio *w)
{
	uv_timer_stop(&w->flush);
	uv_close((uv_handle_t *)&w->flush, NULL);
}
