/* test_raftio — canonical raft 0.15 (its in-memory fixture) behind raftio, with a
 * disk that fails appends the way raft_uv does when a segment cannot be
 * allocated: every waiting append fails at once, oldest first. Handed straight
 * to raft, the second failure makes it truncate past the end of its log and
 * crash (tests/unit/test_raftio.c --unwrapped shows it); through raftio raft
 * survives, each proposer hears of its failure, and the log takes writes again.
 * A failure that arrives after raft already truncated is not handed back. */
#include "raftio.h"
#include "tap.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- an FSM that counts ---------------------------------------------------- */

static int fsm_applied;

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	(void)fsm;
	(void)buf;
	fsm_applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n)
{
	(void)fsm;
	*bufs = raft_malloc(sizeof(**bufs));
	(*bufs)[0].base = raft_malloc(8);
	memset((*bufs)[0].base, 0, 8);
	(*bufs)[0].len = 8;
	*n = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	(void)fsm;
	raft_free(buf->base);
	return 0;
}

/* ---- a disk that fails on request ------------------------------------------ */

struct held {
	struct raft_io_append *req;
	raft_io_append_cb cb;
};

static int (*fixture_append)(struct raft_io *, struct raft_io_append *, const struct raft_entry[], unsigned,
			     raft_io_append_cb);
static bool failing;
static struct held queued[16];
static unsigned nqueued;

static int disk_append(struct raft_io *io, struct raft_io_append *req, const struct raft_entry entries[],
		       unsigned n, raft_io_append_cb cb)
{
	if (!failing)
		return fixture_append(io, req, entries, n, cb);
	queued[nqueued].req = req;
	queued[nqueued].cb = cb;
	nqueued++;
	return 0;
}

/* Fails the queued appends [from, to) oldest first, as raft_uv does. */
static void disk_fail(unsigned from, unsigned to)
{
	for (unsigned i = from; i < to; i++)
		queued[i].cb(queued[i].req, RAFT_NOSPACE);
}

/* ---- proposals -------------------------------------------------------------- */

struct prop {
	struct raft_apply req;
	int status; /* -1: callback not fired */
};

static void prop_cb(struct raft_apply *req, int status, void *result)
{
	(void)result;
	struct prop *p = req->data;
	p->status = status;
}

static int propose(struct raft *r, struct prop *p)
{
	struct raft_buffer buf = {.base = raft_malloc(8), .len = 8};
	memset(buf.base, 'x', 8);
	p->status = -1;
	p->req.data = p;
	int rv = raft_apply(r, &p->req, &buf, 1, prop_cb);
	if (rv != 0)
		raft_free(buf.base);
	return rv;
}

static int log_errors, log_fatal;
static void on_log_error(void *arg, int status, const char *msg)
{
	(void)arg;
	(void)msg;
	log_errors++;
	if (status != RAFT_NOSPACE)
		log_fatal++;
}

int main(int argc, char **argv)
{
	bool unwrapped = argc > 1 && strcmp(argv[1], "--unwrapped") == 0;
	/* A raft that truncates past its log may loop for a long time before it
	 * crashes: fail in bounded time instead (a hang guard, not a timing check). */
	alarm(120);
	tap_plan(17);
	struct raft_fixture f;
	memset(&f, 0, sizeof(f)); /* raft_fixture_initialize leaves n unset */
	struct raft_fsm fsm = {.version = 1, .apply = fsm_apply, .snapshot = fsm_snapshot, .restore = fsm_restore};
	struct raft_configuration conf;
	if (raft_fixture_initialize(&f) != 0 || raft_fixture_grow(&f, &fsm) != 0 ||
	    raft_fixture_configuration(&f, 1, &conf) != 0 || raft_fixture_bootstrap(&f, &conf) != 0 ||
	    raft_fixture_start(&f) != 0) {
		printf("Bail out! raft fixture setup failed\n");
		return 1;
	}
	raft_configuration_close(&conf);
	ok(raft_fixture_step_until_has_leader(&f, 10000), "the single voter becomes leader");
	struct raft *r = raft_fixture_get(&f, 0);

	/* Put raftio between raft and the fixture's disk. */
	uv_loop_t loop;
	uv_loop_init(&loop);
	static struct raftio w;
	w.io = *r->io;
	fixture_append = w.io.append;
	w.io.append = disk_append;
	is_int(raftio_init(&w, &loop, r), 0, "raftio_init");
	w.on_log_error = on_log_error;
	if (!unwrapped)
		r->io = &w.io;
	else
		r->io->append = disk_append;

	struct prop first;
	is_int(propose(r, &first), 0, "a proposal before the disk fails");
	ok(raft_fixture_step_until_applied(&f, 0, first.req.index, 10000) && first.status == 0,
	   "... is committed");
	raft_index before = raft_last_index(r);

	/* The disk fills: three appends wait for a segment that cannot be made. */
	failing = true;
	struct prop p[4];
	for (int i = 0; i < 3; i++)
		propose(r, &p[i]);
	is_int(nqueued, 3, "three appends reach the disk");
	is_int(raft_last_index(r), before + 3, "raft's log holds them meanwhile");
	disk_fail(0, 3);
	uv_run(&loop, UV_RUN_NOWAIT); /* raftio hands them back */
	ok(p[0].status == RAFT_NOSPACE && p[1].status == RAFT_NOSPACE && p[2].status == RAFT_NOSPACE,
	   "every proposer hears RAFT_NOSPACE (%d %d %d)", p[0].status, p[1].status, p[2].status);
	is_int(raft_last_index(r), before, "raft truncated its log back to before them");
	is_int(raft_state(r), RAFT_LEADER, "raft is alive and still leader");
	is_int(log_errors, 3, "each failure was reported");
	is_int(log_fatal, 0, "... as a full disk (resumable)");

	/* Room again: the log takes writes, at the indexes the failed ones had. */
	failing = false;
	struct prop again;
	is_int(propose(r, &again), 0, "a proposal after the disk has room");
	ok(raft_fixture_step_until_applied(&f, 0, again.req.index, 10000) && again.status == 0,
	   "... is committed at index %llu", (unsigned long long)again.req.index);

	/* A failure that arrives after raft truncated past it is held back. */
	failing = true;
	nqueued = 0;
	raft_index base = raft_last_index(r);
	for (int i = 0; i < 3; i++)
		propose(r, &p[i]);
	disk_fail(0, 2); /* entries base+1, base+2 */
	uv_run(&loop, UV_RUN_NOWAIT);
	is_int(raft_last_index(r), base, "the first two failures truncate to before them");
	disk_fail(2, 3); /* base+3: raft no longer has it */
	uv_run(&loop, UV_RUN_NOWAIT);
	ok(w.appends_held == 1 && p[2].status == -1, "the late failure is not handed to raft as a failure");
	is_int(raft_last_index(r), base, "... and marks nothing stored");
	ok(log_fatal == 1 && raft_state(r) == RAFT_LEADER,
	   "... reported as not resumable, and raft is still alive");

	raftio_close(&w);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	/* The held request is raft's and lives in its queue: close fails it. */
	raft_fixture_close(&f);
	return tap_done();
}
