#include "leader.h"

#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "log.h"
#include "loop.h"

/* ---- states ------------------------------------------------------------------ */

#define B(s) (1u << (s))
static const unsigned allowed[OP_STATES] = {
	[OP_QUEUED] = B(OP_PARKED) | B(OP_FORWARDED) | B(OP_PROPOSED) | B(OP_CHANGING) | B(OP_CONFIRMING) |
		      B(OP_PROJECTING) | B(OP_DONE),
	[OP_PARKED] = B(OP_QUEUED) | B(OP_DONE),
	[OP_FORWARDED] = B(OP_PARKED) | B(OP_PROJECTING) | B(OP_DONE),
	[OP_PROPOSED] = B(OP_QUEUED) | B(OP_PROJECTING) | B(OP_DONE),
	[OP_CHANGING] = B(OP_CHANGING) | B(OP_PROPOSED) | B(OP_PROJECTING) | B(OP_PARKED) | B(OP_DONE),
	[OP_CONFIRMING] = B(OP_PROJECTING) | B(OP_DONE),
	[OP_PROJECTING] = B(OP_DONE),
	[OP_DONE] = 0,
};
#undef B

void leader_to(struct op *op, enum op_state next)
{
	assert(op->state < OP_STATES && (allowed[op->state] & (1u << next)) != 0);
	op->state = next;
}

bool leader_writable(struct loop *l)
{
	return raft_state(&l->raft) == RAFT_LEADER && l->leader.takeover_term == l->raft.current_term &&
	       disk_writable(&l->disk);
}

/* Fails op with 503 and a Retry-After of a second. */
static void fail_retry(struct loop *l, struct op *op, const char *code, const char *msg)
{
	op_fail(op, 503, code, "%s", msg);
	snprintf(op->retry_after, sizeof(op->retry_after), "1");
	loop_finish(l, op);
}

/* ---- parking ------------------------------------------------------------------- */

void leader_park(struct loop *l, struct op *op)
{
	struct leader *ld = &l->leader;
	leader_to(op, OP_PARKED);
	/* Waiting for a leader is bounded apart from the op's own deadline, so a
	 * group without quorum answers 503 no_leader quickly. */
	if (op->park_deadline_ms == 0)
		op->park_deadline_ms = loop_now_ms() + l->cfg->leader_wait_ms;
	op->next = NULL;
	if (ld->parked_tail)
		ld->parked_tail->next = op;
	else
		ld->parked_head = op;
	ld->parked_tail = op;
}

/* Executes the parked ops again (they park again if they still cannot go),
 * or fails those past their bounds. */
static void run_parked(struct loop *l, int64_t now)
{
	struct leader *ld = &l->leader;
	struct op *op = ld->parked_head;
	ld->parked_head = ld->parked_tail = NULL;
	while (op) {
		struct op *next = op->next;
		if (l->closing) {
			op_fail(op, 503, "shutting_down", "this replica is shutting down; retry on another");
			loop_finish(l, op);
		} else if (op->deadline_ms <= now || op->park_deadline_ms <= now) {
			raft_id lid = 0;
			const char *laddr = NULL;
			char msg[300];
			raft_leader(&l->raft, &lid, &laddr);
			bool in_conf = false;
			for (unsigned i = 0; i < l->raft.configuration.n; i++)
				in_conf |= l->raft.configuration.servers[i].id == l->raft.id;
			if (!in_conf && l->raft.configuration.n > 0)
				snprintf(msg, sizeof(msg),
					 "this replica is not a member of the group (it was removed, or has not been "
					 "added yet): send writes to a member");
			else if (lid == 0)
				snprintf(msg, sizeof(msg),
					 "no Raft leader was elected within %lld ms (is a majority of the group up and "
					 "reachable?); retry",
					 (long long)l->cfg->leader_wait_ms);
			else
				snprintf(msg, sizeof(msg),
					 "the leader (replica %llu at %s) could not take the request within %lld ms; retry",
					 (unsigned long long)lid, laddr ? laddr : "?", (long long)l->cfg->leader_wait_ms);
			fail_retry(l, op, "no_leader", msg);
		} else {
			leader_to(op, OP_QUEUED);
			leader_execute(l, op);
		}
		op = next;
	}
}

/* ---- proposing -------------------------------------------------------------------
 *
 * A write is encoded and added to the loop iteration's batch (PROPOSED); the
 * batch goes to raft as one raft_apply of n entries. raft calls the batch's
 * callback once (when its first entry is applied, or with an error when none
 * will be here), so each write learns its own result from the fsm instead:
 * apply finds the entry by its buffer (leader_proposed), applies the decoded
 * entry the op holds, and hands the result back (leader_applied). */

struct leader_batch {
	struct raft_apply req;
	struct loop *loop;
	uint64_t seq;
	struct leader_batch *next; /* in leader.open */
};

struct entry *leader_proposed(void *arg, const void *base)
{
	struct loop *l = arg;
	for (struct op *op = l->leader.proposed; op; op = op->proposed_next)
		if (op->entry_buf == base)
			return &op->entry;
	return NULL;
}

static void unpropose(struct loop *l, struct op *op)
{
	for (struct op **pp = &l->leader.proposed; *pp; pp = &(*pp)->proposed_next)
		if (*pp == op) {
			*pp = op->proposed_next;
			break;
		}
	op->entry_buf = NULL;
	op->proposed_next = NULL;
}

/* Fails a proposal raft will not apply here (status: raft's error). */
static void fail_proposed(struct loop *l, struct op *op, int status)
{
	char msg[300];
	unpropose(l, op);
	if (status == RAFT_NOSPACE || status == RAFT_IOERR) {
		snprintf(msg, sizeof(msg),
			 "the Raft log in %s could not be written (%s); the write was not applied here, read it "
			 "back before retrying",
			 l->cfg->data_dir, raft_strerror(status));
		op_fail(op, 503, status == RAFT_NOSPACE ? "disk_full" : "log_write_failed", "%s", msg);
		loop_finish(l, op);
	} else { /* leadership lost or shutdown: the entry may still commit later */
		snprintf(msg, sizeof(msg), "raft: %s; the write may or may not have been applied — read it back before retrying",
			 raft_strerror(status));
		fail_retry(l, op, "unavailable", msg);
	}
}

/* Whether batch seq is still in raft's hands with no callback yet. */
static bool batch_open(const struct leader *ld, uint64_t seq)
{
	for (const struct leader_batch *b = ld->open; b; b = b->next)
		if (b->seq == seq)
			return true;
	return false;
}

/* Proposals that will not be applied here: past their deadline (a commit that
 * does not come: lost quorum, a hung disk), or, once this replica stopped
 * leading, those whose batch raft already let go of (it fails the others
 * itself, in batch_cb). The ops are answered; raft keeps their entries. */
static void expire_proposed(struct loop *l, int64_t now)
{
	struct leader *ld = &l->leader;
	bool leading = raft_state(&l->raft) == RAFT_LEADER;
	struct op **pp = &ld->proposed;
	while (*pp) {
		struct op *op = *pp;
		/* The batch not yet handed to raft (batch_seq) is not lost: leader_flush
		 * answers its ops if raft refuses it. */
		bool lost = !leading && op->batch_seq != ld->batch_seq && !batch_open(ld, op->batch_seq);
		if (op->deadline_ms > now && !lost) {
			pp = &op->proposed_next;
			continue;
		}
		*pp = op->proposed_next;
		op->proposed_next = NULL;
		op->entry_buf = NULL;
		char msg[300];
		if (lost) {
			fail_retry(l, op, "unavailable",
				   "this replica stopped leading before the write was applied; it may or may not have "
				   "been applied — read it back before retrying");
			continue;
		}
		snprintf(msg, sizeof(msg),
			 "the write was not committed within %lld ms (is a majority of the group reachable, is the "
			 "disk responding?); it may still be applied — read it back before retrying",
			 (long long)l->cfg->write_timeout_ms);
		fail_retry(l, op, "commit_timeout", msg);
	}
}

void leader_applied(void *arg, struct entry *e, uint64_t index, const struct apply_result *res)
{
	struct loop *l = arg;
	struct op *op = (struct op *)((char *)e - offsetof(struct op, entry));
	assert(op->state == OP_PROPOSED);
	unpropose(l, op);
	op->index = index;
	if (res->id[0])
		snprintf(op->id, sizeof(op->id), "%s", res->id);
	if (op->internal && (res->code == APPLY_OK || res->code == APPLY_DUPLICATE)) {
		loop_finish(l, op);
		return;
	}
	if (res->code == APPLY_OK || res->code == APPLY_DUPLICATE) {
		/* A duplicate: the same request carrying the same key was applied
		 * first (res->id is what it wrote); this is its answer too. */
		ops_written(l, op);
		loop_wait_projection(l, op);
		return;
	}
	/* A write applied between plan and apply took the capacity: plan again
	 * (proposed with the next batch, never inside raft's apply). */
	if (res->code == APPLY_STALE && ++op->attempts < LEADER_MAX_ATTEMPTS) {
		log_debug("%s %s: %s; re-planning", entry_op_name(op->entry.op), op->id, res->message);
		ops_replan(op);
		leader_to(op, OP_QUEUED);
		leader_execute(l, op);
		return;
	}
	ops_refused(op, res);
	loop_finish(l, op);
}

/* raft is done with the batch: its first entry was applied (status 0: every op
 * learns its own result from leader_applied), or none of it will be applied
 * here (leadership lost, shutdown, the log could not be written). */
static void batch_cb(struct raft_apply *req, int status, void *result)
{
	(void)result;
	struct leader_batch *b = req->data;
	struct loop *l = b->loop;
	struct leader *ld = &l->leader;
	for (struct leader_batch **pp = &ld->open; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			break;
		}
	if (status != 0) {
		struct op **pp = &ld->proposed;
		while (*pp) {
			struct op *op = *pp;
			if (op->batch_seq == b->seq) {
				fail_proposed(l, op, status); /* unlinks op */
				continue;
			}
			pp = &op->proposed_next;
		}
	}
	free(b);
}

void leader_flush(struct loop *l)
{
	struct leader *ld = &l->leader;
	unsigned n = ld->batch_n;
	if (n == 0)
		return;
	uint64_t seq = ld->batch_seq++;
	ld->batch_n = 0;
	ld->batch_bytes = 0;
	struct leader_batch *b = malloc(sizeof(*b));
	int rv = RAFT_NOMEM;
	if (b != NULL) {
		b->req.data = b;
		b->loop = l;
		b->seq = seq;
		rv = raft_apply(&l->raft, &b->req, ld->batch_bufs, n, batch_cb);
	}
	if (rv == 0) {
		b->next = ld->open;
		ld->open = b;
		return;
	}
	free(b);
	for (unsigned i = 0; i < n; i++) {
		struct op *op = ld->batch_ops[i];
		raft_free(ld->batch_bufs[i].base); /* raft took none of them */
		unpropose(l, op);
		if (rv == RAFT_NOTLEADER || rv == RAFT_LEADERSHIPLOST)
			fail_retry(l, op, "not_leader", "this replica is not the Raft leader; retry");
		else {
			op_fail(op, 503, "unavailable", "raft: %s", raft_strerror(rv));
			loop_finish(l, op);
		}
	}
}

void leader_propose(struct loop *l, struct op *op)
{
	struct leader *ld = &l->leader;
	struct entry *e = &op->entry;
	/* Never before an applied entry (model_entry_time: across leaders), nor
	 * before this leader's own proposals still in flight (a clock stepped back). */
	e->at_ms = model_entry_time(&l->model, loop_wallclock_ms());
	if (e->at_ms < ld->last_proposed_at_ms)
		e->at_ms = ld->last_proposed_at_ms;
	ld->last_proposed_at_ms = e->at_ms;
	if (e->who == NULL)
		e->who = strdup("api");
	e->term = l->raft.current_term; /* the commands it causes carry it (fencing) */
	e->version = ENTRY_VERSION;
	void *buf;
	size_t len;
	if (entry_encode(e, &buf, &len) != 0) {
		op_fail(op, 503, "out_of_memory", "out of memory encoding the log entry");
		loop_finish(l, op);
		return;
	}
	if (ld->batch_n == LEADER_BATCH_MAX || (ld->batch_n > 0 && ld->batch_bytes + len > LEADER_BATCH_BYTES))
		leader_flush(l);
	leader_to(op, OP_PROPOSED);
	op->entry_buf = buf;
	op->batch_seq = ld->batch_seq;
	op->proposed_next = ld->proposed;
	ld->proposed = op;
	ld->batch_ops[ld->batch_n] = op;
	ld->batch_bufs[ld->batch_n] = (struct raft_buffer){.base = buf, .len = len};
	ld->batch_n++;
	ld->batch_bytes += len;
}

/* ---- consistent reads -------------------------------------------------------------- */

static void fail_reads(struct loop *l, struct op *list, const char *code, const char *msg)
{
	while (list) {
		struct op *next = list->next;
		fail_retry(l, list, code, msg);
		list = next;
	}
}

static void read_barrier_cb(struct raft_barrier *req, int status);

static void start_read_barrier(struct loop *l)
{
	struct leader *ld = &l->leader;
	ld->reads_inflight = ld->reads_next;
	ld->reads_next = NULL;
	ld->read_barrier.data = l;
	int rv = raft_barrier(&l->raft, &ld->read_barrier, read_barrier_cb);
	if (rv != 0) {
		struct op *ops = ld->reads_inflight;
		ld->reads_inflight = NULL;
		char msg[160];
		snprintf(msg, sizeof(msg), "cannot confirm leadership for a consistent read: raft: %s",
			 raft_strerror(rv));
		fail_reads(l, ops, rv == RAFT_NOTLEADER ? "not_leader" : "unavailable", msg);
		return;
	}
	ld->read_barrier_pending = true;
}

static void read_barrier_cb(struct raft_barrier *req, int status)
{
	struct loop *l = req->data;
	struct leader *ld = &l->leader;
	struct op *ops = ld->reads_inflight;
	ld->reads_inflight = NULL;
	ld->read_barrier_pending = false;
	if (status != 0) {
		char msg[160];
		snprintf(msg, sizeof(msg), "leadership could not be confirmed for a consistent read (raft: %s); retry",
			 raft_strerror(status));
		fail_reads(l, ops, "not_leader", msg);
	} else {
		while (ops) {
			struct op *next = ops->next;
			if (ops->index < req->index)
				ops->index = req->index;
			if (ops->kind == OP_READ_INDEX) {
				/* A follower's read: it waits for its own PostgreSQL. */
				char buf[48];
				snprintf(buf, sizeof(buf), "{\"index\":%llu}", (unsigned long long)ops->index);
				free(ops->object_text);
				ops->object_text = strdup(buf);
				if (ops->object_text == NULL)
					op_fail(ops, 503, "out_of_memory", "out of memory");
				loop_finish(l, ops);
			} else {
				loop_wait_projection(l, ops);
			}
			ops = next;
		}
	}
	if (ld->reads_next != NULL) {
		if (l->closing) {
			struct op *rest = ld->reads_next;
			ld->reads_next = NULL;
			fail_reads(l, rest, "shutting_down", "this replica is shutting down; retry on another");
		} else {
			start_read_barrier(l);
		}
	}
}

void leader_read_barrier(struct loop *l, struct op *op)
{
	struct leader *ld = &l->leader;
	if (raft_state(&l->raft) != RAFT_LEADER) {
		fail_retry(l, op, "not_leader", "consistent reads are confirmed by the leader; this replica is not it");
		return;
	}
	leader_to(op, OP_CONFIRMING);
	/* Not the barrier in flight: it may have been appended before this read
	 * arrived, and a barrier that old proves nothing about now. */
	op->next = ld->reads_next;
	ld->reads_next = op;
	if (!ld->read_barrier_pending)
		start_read_barrier(l);
}

/* ---- carrying a request out ------------------------------------------------------------ */

void leader_execute(struct loop *l, struct op *op)
{
	assert(op->state == OP_QUEUED);
	op->loop = l;
	bool write = ops_is_write(op->kind);
	bool leader = raft_state(&l->raft) == RAFT_LEADER;

	/* Answered here, from the model or the projection, by any replica. */
	if (op->kind == OP_CLUSTER || op->kind == OP_PLAN || op->kind == OP_FAILOVER_PLAN ||
	    op->kind == OP_POLICY_VIOLATIONS) {
		ops_answer_local(l, op);
		loop_finish(l, op);
		return;
	}
	if (op->kind == OP_WAIT) {
		loop_wait_projection(l, op);
		return;
	}
	/* Writes and read barriers append to the Raft log, which has no room (or failed). */
	if ((write || op->kind == OP_READ_BARRIER) && !disk_writable(&l->disk)) {
		const char *code = l->disk.state == DISK_FULL	     ? "disk_full"
				   : l->disk.state == DISK_LOG_FAILED ? "log_write_failed"
								      : "disk_unavailable";
		op_fail(op, 503, code, "%s", l->disk.reason);
		loop_finish(l, op);
		return;
	}
	/* The leader's own writes are made by a writable leader or not at all. */
	if (op->internal && !leader_writable(l)) {
		op_fail(op, 503, "not_leader", "this replica is no longer the Raft leader");
		loop_finish(l, op);
		return;
	}
	/* The leader's business, on a replica that cannot do it now. */
	if ((write && !leader_writable(l)) || (op->kind == OP_READ_BARRIER && !leader)) {
		/* A request another replica sent on is not sent on again: a stale view
		 * of who leads must not make it circle. */
		if (!leader && op->raw.forwarded) {
			fail_retry(l, op, "not_leader", "this replica is not the Raft leader");
			return;
		}
		if (!leader && (op->raw.method != NULL || op->kind == OP_READ_BARRIER) && cluster_forward(l, op))
			return; /* FORWARDED */
		leader_park(l, op); /* until there is a leader, or it finished taking over */
		return;
	}
	switch (op->kind) {
	case OP_READ_INDEX:
		if (!leader) {
			fail_retry(l, op, "not_leader", "this replica is not the Raft leader");
			return;
		}
		leader_read_barrier(l, op);
		return;
	case OP_READ_BARRIER:
		leader_read_barrier(l, op);
		return;
	case OP_MEMBER_ADD:
	case OP_MEMBER_REMOVE:
	case OP_TRANSFER:
		cluster_execute(l, op);
		return;
	default:
		break;
	}
	switch (ops_plan(l, op)) {
	case OPS_PLANNED:
		leader_propose(l, op);
		return;
	case OPS_UNCHANGED:
		if (op->internal)
			loop_finish(l, op);
		else
			loop_wait_projection(l, op);
		return;
	case OPS_REFUSED:
		loop_finish(l, op);
		return;
	}
}

/* ---- taking over, and every tick --------------------------------------------------------- */

static void takeover_cb(struct raft_barrier *req, int status)
{
	struct loop *l = req->data;
	struct leader *ld = &l->leader;
	ld->takeover_pending = false;
	if (status != 0)
		return;
	ld->takeover_term = l->raft.current_term;
	log_info("leader for term %llu; log applied to index %llu", (unsigned long long)ld->takeover_term,
		 (unsigned long long)raft_last_applied(&l->raft));
	loop_publish_status(l);
	run_parked(l, loop_now_ms());
}

void leader_tick(struct loop *l, int64_t now)
{
	struct leader *ld = &l->leader;
	if (raft_state(&l->raft) == RAFT_LEADER && ld->takeover_term != l->raft.current_term &&
	    !ld->takeover_pending && disk_writable(&l->disk)) {
		ld->takeover.data = l;
		if (raft_barrier(&l->raft, &ld->takeover, takeover_cb) == 0)
			ld->takeover_pending = true;
	}
	expire_proposed(l, now);
	if (ld->parked_head == NULL)
		return;
	/* Parked ops go again once this replica leads with its log applied, or a
	 * leader whose API this replica knows is there to send them to. */
	raft_id lid = l->status.leader_id;
	bool sendable = lid != 0 && lid != l->raft.id && raft_state(&l->raft) != RAFT_LEADER &&
			model_member_url(&l->model, lid) != NULL;
	if (leader_writable(l) || l->closing || sendable) {
		run_parked(l, now);
		return;
	}
	for (struct op *op = ld->parked_head; op; op = op->next)
		if (op->deadline_ms <= now || op->park_deadline_ms <= now) {
			run_parked(l, now); /* re-parks the ones still in time */
			return;
		}
}

void leader_close(struct loop *l)
{
	struct leader *ld = &l->leader;
	struct op *reads = ld->reads_next;
	ld->reads_next = NULL;
	fail_reads(l, reads, "shutting_down", "this replica is shutting down; retry on another");
	run_parked(l, loop_now_ms());
	leader_flush(l); /* raft_close fails what it does not apply */
}
