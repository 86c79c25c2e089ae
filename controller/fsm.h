/* fsm — the raft_fsm glue between canonical raft and the model.
 *
 * apply decodes an entry, applies it to the model and, unless this replica's
 * PostgreSQL already holds that index, hands the changed rows to the store.
 * snapshot/restore serialise the whole model. Loop thread only. */
#ifndef LATTICE_FSM_H
#define LATTICE_FSM_H

#include <raft.h>
#include <stdint.h>

#include "model.h"

struct store;

struct fsm {
	struct raft *raft;      /* borrowed: for the index of the entry being applied */
	struct model *model;    /* borrowed */
	struct store *store;    /* borrowed; NULL: no projection (tests) */
	uint64_t store_applied; /* PostgreSQL held entries up to here at start-up */
	/* The last entry applied (or snapshot restored): PostgreSQL shows what the
	 * model holds once it has projected this index. Barriers and configuration
	 * entries never reach apply and carry no rows, so they are not counted. */
	uint64_t model_index;
	/* Result of the latest apply; raft hands a pointer to it to the apply
	 * callback, which runs right after apply on the same thread. */
	struct apply_result last;
	uint64_t applied, rejected, undecodable, snapshots, restores;
	/* On the leader: the decoded entry this replica proposed with that buffer,
	 * so apply can skip decoding it again (NULL: decode). */
	struct entry *(*proposed)(void *arg, const void *base);
	void *proposed_arg;
	/* Batches applied in this loop iteration, handed to the store together by
	 * fsm_flush so they share a transaction. */
	struct proj_batch *pending_head, *pending_tail;
};

/* Hands the batches applied so far to the store (loop thread; called once per
 * loop iteration and before anything waits on the projection). */
void fsm_flush(struct fsm *f);

/* Fills *out to drive f (version 1 FSM: raft frees snapshot buffers). */
void fsm_init(struct raft_fsm *out, struct fsm *f);

#endif
