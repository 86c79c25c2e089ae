#include "fsm.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bgsave.h"
#include "disk.h"
#include "entry.h"
#include "log.h"
#include "proj.h"
#include "snapz.h"
#include "store.h"

static void fsm_queue(struct fsm *f, struct proj_batch *b)
{
	if (b->index > f->rows_index)
		f->rows_index = b->index;
	b->next = NULL;
	if (f->pending_tail)
		f->pending_tail->next = b;
	else
		f->pending_head = b;
	f->pending_tail = b;
}

void fsm_flush(struct fsm *f)
{
	if (f->pending_head == NULL)
		return;
	if (f->flushing)
		f->flushing(f->flushing_arg, f->pending_head);
	store_submit_chain(f->store, f->pending_head);
	f->pending_head = f->pending_tail = NULL;
}

static int fsm_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
	struct fsm *f = rf->data;
	/* raft sets last_applied only after apply returns: this entry is the next. */
	uint64_t index = raft_last_applied(f->raft) + 1;
	struct entry decoded, *e = f->proposed ? f->proposed(f->proposed_arg, buf->base) : NULL;
	char err[256];
	memset(&f->last, 0, sizeof(f->last));
	*result = &f->last;
	if (e == NULL) {
		int rc = entry_decode(buf->base, buf->len, &decoded, err, sizeof(err));
		switch (rc) {
		case ENTRY_OK:
			break;
		case ENTRY_E_MALFORMED:
			/* Every replica reads these bytes the same way and skips them: the
			 * model stays the same everywhere, and an empty batch moves the
			 * projected index past the entry (docs/entries.md). */
			log_error("raft entry %llu skipped: %s: %s", (unsigned long long)index, entry_strerror(rc),
				  err);
			f->undecodable++;
			f->last.code = APPLY_INVALID;
			snprintf(f->last.message, sizeof(f->last.message), "%s", err);
			if (f->store && index > f->store_applied) {
				struct proj_batch *empty = proj_batch_new(index);
				if (empty == NULL) {
					log_error("raft entry %llu: out of memory for its projection; exiting so a "
						  "restart replays it",
						  (unsigned long long)index);
					abort(); /* a hole in the projection is worse */
				}
				fsm_queue(f, empty);
			}
			return 0;
		case ENTRY_E_NOMEM:
			/* Skipping it would leave this replica without an entry the others
			 * applied: stop; the restart replays it. */
			log_error("raft entry %llu: out of memory decoding it; exiting so a restart replays it",
				  (unsigned long long)index);
			abort();
		default:
			/* A newer build wrote it (ENTRY_E_VERSION, ENTRY_E_OP): misreading or
			 * skipping it would make this replica differ from the upgraded ones. */
			log_error("raft entry %llu: %s; upgrade this replica to a build that reads it (it stops here "
				  "and replays the entry on restart)",
				  (unsigned long long)index, err);
			abort();
		}
		e = &decoded;
	}
	struct proj_batch *b = NULL;
	if (f->store && index > f->store_applied && (b = proj_batch_new(index)) == NULL) {
		log_error("raft entry %llu: out of memory for its projection; exiting so a restart replays it",
			  (unsigned long long)index);
		abort();
	}
	model_apply(f->model, e, index, b, &f->last);
	if (f->last.code == APPLY_OK)
		f->applied++;
	else
		f->rejected++;
	if (e == &decoded)
		entry_release(&decoded);
	if (b != NULL) {
		if (b->failed) {
			/* Rows we could not render would leave PostgreSQL wrong for good. */
			log_error("raft entry %llu: out of memory rendering the projection; exiting so a "
				  "restart replays it",
				  (unsigned long long)index);
			abort();
		}
		fsm_queue(f, b);
	}
	if (e != &decoded && f->proposed_applied)
		f->proposed_applied(f->proposed_arg, e, index, &f->last);
	return 0;
}

/* ---- snapshots ------------------------------------------------------------------
 *
 * Serialising the model takes ~5 ms per MB of snapshot and the loop thread owns
 * the model, so doing it there paused every write (100 ms at 65,000 actors). A
 * forked child does it instead (bgsave.h), and raft's async snapshot (fsm
 * version 3) collects its output on a libuv worker thread. When no child can
 * be forked, the model is serialised on the loop thread, as before. */

static double ms_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) * 1e3 + (double)(now.tv_nsec - t0->tv_nsec) / 1e6;
}

double fsm_snap_elapsed_ms(const struct fsm_snap *sn)
{
	return ms_since(&sn->started);
}

static int fsm_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
	struct fsm *f = rf->data;
	*bufs = NULL;
	*n = 0;
	/* raft asks again after every applied entry while a snapshot is due: one
	 * that did not fit waits for room (disk.c) instead of being serialised and
	 * thrown away each time. RAFT_BUSY is the code raft retries quietly. */
	if (f->disk && disk_snapshot_blocked(f->disk))
		return RAFT_BUSY;
	struct fsm_snap *sn = &f->snap;
	memset(sn, 0, sizeof(*sn));
	/* The index lets restore tell whether PostgreSQL fell behind the snapshot. */
	sn->index = raft_last_applied(f->raft);
	clock_gettime(CLOCK_MONOTONIC, &sn->started);
	sn->bg.fd = -1; /* no memfd unless bgsave_start makes one */
	if (f->snapshot_inline || bgsave_start(&sn->bg, f->model, sn->index) != 0) {
		if (!f->snapshot_inline)
			log_warn("raft snapshot at index %llu: cannot fork a child to serialise it (%s); serialising "
				 "on the loop thread",
				 (unsigned long long)sn->index, strerror(sn->bg.err));
		size_t len = 0;
		char *text = model_snapshot_dump(f->model, sn->index, &len);
		if (text == NULL)
			return RAFT_NOMEM;
		sn->bg.base = snapz_pack(text, len, &sn->bg.len);
		raft_free(text);
		if (sn->bg.base == NULL)
			return RAFT_NOMEM;
	}
	sn->pause_ms = fsm_snap_elapsed_ms(sn);
	return 0;
}

/* A libuv worker thread: the child's output becomes the snapshot's buffer. */
static int fsm_snapshot_async(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
	struct fsm *f = rf->data;
	struct fsm_snap *sn = &f->snap;
	char err[160];
	if (sn->bg.pid > 0 && bgsave_collect(&sn->bg, err, sizeof(err)) != 0) {
		log_error("raft snapshot at index %llu failed: %s", (unsigned long long)sn->index, err);
		return RAFT_IOERR;
	}
	*bufs = raft_malloc(sizeof(**bufs));
	if (*bufs == NULL)
		return RAFT_NOMEM;
	(*bufs)[0].base = sn->bg.base;
	(*bufs)[0].len = sn->bg.len;
	*n = 1;
	sn->serialised_ms = fsm_snap_elapsed_ms(sn);
	return 0;
}

/* Loop thread, once raft wrote the snapshot or gave up on it (or on the work
 * before it): frees the buffer, and leaves no child or memfd behind. */
static int fsm_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n)
{
	struct fsm *f = rf->data;
	struct fsm_snap *sn = &f->snap;
	void *base = sn->bg.base;
	if (*bufs != NULL) {
		f->snapshots++;
		raft_free(*bufs);
	}
	*bufs = NULL;
	*n = 0;
	bgsave_release(&sn->bg, base);
	return 0;
}

/* Installs a snapshot: at start-up, or one the leader sent. raft hands buf->base
 * to restore only if restore succeeds (it frees the buffer itself otherwise), so
 * everything that can fail — decoding, rendering the projection to rebuild —
 * happens first, on the side; the model is replaced and the buffer freed only
 * past the point where nothing can fail any more. */
static int fsm_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
	struct fsm *f = rf->data;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct model fresh;
	char err[512];
	uint64_t index = 0;
	model_init(&fresh);
	/* A snapshot of an older build is the text itself (snapz.h). */
	char *text = NULL;
	size_t text_len = buf->len;
	if (snapz_is_packed(buf->base, buf->len)) {
		enum snapz_rc zrc = snapz_unpack(buf->base, buf->len, &text, &text_len, err, sizeof(err));
		if (zrc != SNAPZ_OK) {
			log_error("raft snapshot not restored: %s%s", err,
				  zrc == SNAPZ_MALFORMED ? " (the snapshot is damaged or not lattice's)" : "");
			return zrc == SNAPZ_NOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
		}
	}
	int rc = model_restore_text(&fresh, text ? text : buf->base, text_len, &index, err, sizeof(err));
	free(text);
	if (rc != MODEL_SNAP_OK) {
		/* model_restore_text left fresh empty. */
		log_error("raft snapshot not restored: %s%s", err,
			  rc == MODEL_SNAP_MALFORMED ? " (the snapshot is damaged or not lattice's)" : "");
		return rc == MODEL_SNAP_NOMEM ? RAFT_NOMEM : RAFT_MALFORMED;
	}
	/* A PostgreSQL behind the snapshot is rebuilt from the model: its rows are
	 * rendered now, while failing still changes nothing. */
	struct proj_batch *b = NULL;
	if (f->store && store_projected(f->store) < index) {
		if ((b = proj_batch_new(index)) != NULL)
			(f->render_model ? f->render_model : proj_model)(b, &fresh);
		if (b == NULL || b->failed) {
			log_error("raft snapshot at index %llu not restored: out of memory rendering the projection "
				  "to rebuild",
				  (unsigned long long)index);
			proj_batch_free(b);
			model_release(&fresh);
			return RAFT_NOMEM;
		}
	}
	/* The point of no return: nothing below fails. */
	raft_free(buf->base);
	/* Metrics' counts go on across a restore. */
	fresh.count_since_ms = f->model->count_since_ms;
	memcpy(fresh.cmd_finished, f->model->cmd_finished, sizeof(fresh.cmd_finished));
	model_release(f->model);
	*f->model = fresh;
	/* hmap keys point into the objects, not into `fresh`, so the move is safe;
	 * the scheduler's trees hold links inside the nodes, same. */
	f->restores++;
	if (b != NULL) {
		log_warn("PostgreSQL holds index %llu, behind the snapshot at %llu: rebuilding it from the model",
			 (unsigned long long)store_projected(f->store), (unsigned long long)index);
		fsm_flush(f);
		store_submit(f->store, b);
		if (f->rows_index < index)
			f->rows_index = index;
		if (f->store_applied < index)
			f->store_applied = index;
	}
	log_info("raft snapshot restored at index %llu (%zu bytes, %zu unpacked; %.1f ms on the loop thread)",
		 (unsigned long long)index, buf->len, text_len, ms_since(&t0));
	return 0;
}

void fsm_init(struct raft_fsm *out, struct fsm *f)
{
	memset(out, 0, sizeof(*out));
	out->version = 3;
	out->data = f;
	out->apply = fsm_apply;
	out->snapshot = fsm_snapshot;
	out->restore = fsm_restore;
	out->snapshot_finalize = fsm_snapshot_finalize;
	out->snapshot_async = fsm_snapshot_async;
}
