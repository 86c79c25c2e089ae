/* leader — how a request travels once the loop has it: proposed to raft on the
 * leader, sent on to the leader from a follower, parked while there is no
 * leader (or while a new leader applies its log), confirmed by a read barrier,
 * then answered once this replica's PostgreSQL shows it. Every request in
 * flight has a state (enum op_state, ops.h); leader_to asserts each transition
 * against this table:
 *
 *            +--------------------------------------------+
 *            |              leader_execute                |
 *            v                                            |
 *        QUEUED --> PARKED  (no leader; re-executed when one is known) --+
 *          |  \       ^
 *          |   +--> FORWARDED --(leader's answer)--> DONE
 *          |          |   (nothing reached it) --> PARKED
 *          |          +--(a read's index)--> PROJECTING
 *          +--> PROPOSED --(applied)--> PROJECTING --(PostgreSQL shows it)--> DONE
 *          |       |  \--(stale plan: planned again)--> QUEUED
 *          |       +--(refused, failed, timed out)--> DONE
 *          +--> CHANGING --(raft add/assign/remove)--> CHANGING | PROPOSED | PROJECTING
 *          |       +--(transfer done, failed)--> DONE, (change in progress) --> PARKED
 *          +--> CONFIRMING --(barrier)--> PROJECTING | DONE
 *          +--> PROJECTING (a read waiting for min_index, a write that changes nothing)
 *          +--> DONE (answered at once: errors, local answers)
 *
 * Whatever only the leader does starts when it has applied its whole log (a
 * barrier of its term: status.writable) and stops the moment it is not the
 * leader (raft fails its proposals; forwarded and parked requests go to the
 * next one). Loop thread only. */
#ifndef LATTICE_LEADER_H
#define LATTICE_LEADER_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "ops.h"

struct loop;
struct leader_batch; /* leader.c: one raft_apply of a batch */

/* A stale plan (capacity taken by a write applied in between) is re-planned this
 * many times before the client sees 409 conflict. */
#define LEADER_MAX_ATTEMPTS 5

/* Proposals made in one loop iteration go to raft together, as one append of
 * up to this many entries (or LEADER_BATCH_BYTES): one disk write and one
 * AppendEntries message per follower for the lot, instead of one per write. */
#define LEADER_BATCH_MAX 256
#define LEADER_BATCH_BYTES (4u << 20)

struct leader {
	struct op *proposed;                 /* PROPOSED, newest first */
	/* Proposals of this loop iteration not yet handed to raft (leader_flush):
	 * their ops, in order, and the encoded entries (owned until then). */
	struct op *batch_ops[LEADER_BATCH_MAX];
	struct raft_buffer batch_bufs[LEADER_BATCH_MAX];
	unsigned batch_n;
	size_t batch_bytes;
	uint64_t batch_seq; /* the pending batch's number; ops carry it */
	struct leader_batch *open; /* batches raft holds, whose callback has not come */
	struct op *parked_head, *parked_tail; /* PARKED, in arrival order */
	/* Consistent reads: those that arrived since the read barrier in flight was
	 * appended wait for the next one, which they share. */
	struct op *reads_next, *reads_inflight;
	struct raft_barrier read_barrier;
	bool read_barrier_pending;
	/* A new leader's barrier: writes wait until its whole log is applied. */
	struct raft_barrier takeover;
	bool takeover_pending;
	uint64_t takeover_term; /* term whose barrier completed */
	int64_t last_proposed_at_ms; /* the newest entry time this replica proposed */
};

/* Moves op to state next; asserts the transition is one the diagram allows. */
void leader_to(struct op *op, enum op_state next);

/* Carries out op (QUEUED or re-executed from PARKED). */
void leader_execute(struct loop *l, struct op *op);
/* Encodes op->entry and adds it to this iteration's batch (PROPOSED), or fails
 * op. */
void leader_propose(struct loop *l, struct op *op);
/* Hands the batch to raft (one raft_apply); called before the loop polls and
 * after its I/O callbacks, so a proposal waits for no more than the rest of
 * its loop iteration. */
void leader_flush(struct loop *l);
/* Parks op until a leader can take it (bounded by --leader-wait-ms). */
void leader_park(struct loop *l, struct op *op);
/* A linearizable read: a barrier appended after it arrived confirms leadership
 * (CONFIRMING), then the read waits for PostgreSQL to show that index
 * (OP_READ_INDEX: is answered with it). */
void leader_read_barrier(struct loop *l, struct op *op);
/* Every tick: the take-over barrier, parked ops that can go, proposals past
 * their deadline (503 commit_timeout). */
void leader_tick(struct loop *l, int64_t now);
/* Shutdown: fails parked ops and reads that wait for a barrier. */
void leader_close(struct loop *l);
/* Whether this replica takes writes now: the leader, its log applied. */
bool leader_writable(struct loop *l);
/* fsm hook: the decoded entry this replica proposed in buffer base (so apply
 * need not decode it), or NULL. */
struct entry *leader_proposed(void *loop, const void *base);
/* fsm hook: the entry leader_proposed returned was applied at index with res:
 * its request goes on (answered once projected, planned again, or refused). */
void leader_applied(void *loop, struct entry *e, uint64_t index, const struct apply_result *res);

#endif
