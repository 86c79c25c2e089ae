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

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "bgsave.h"

struct store;
struct disk;

/* The snapshot being taken (a forked child serialises it: bgsave.h). */
struct fsm_snap {
	uint64_t index;
	struct bgsave bg;
	struct timespec started;
	double pause_ms;      /* how long the loop thread spent on it */
	double serialised_ms; /* from start to the buffer ready */
};

/* Milliseconds since sn was started (any thread). */
double fsm_snap_elapsed_ms(const struct fsm_snap *sn);

struct fsm {
	struct raft *raft;      /* borrowed: for the index of the entry being applied */
	struct model *model;    /* borrowed */
	struct store *store;    /* borrowed; NULL: no projection (tests) */
	struct disk *disk;      /* borrowed; NULL: snapshots are not checked for room */
	struct fsm_snap snap;
	/* Serialise snapshots on the calling thread instead of in a forked child
	 * (tests: raft's fixture runs many replicas in one process). */
	bool snapshot_inline;
	uint64_t store_applied; /* PostgreSQL held entries up to here at start-up */
	/* Highest index whose rows (possibly none: a refused entry) went to the
	 * store, or that PostgreSQL already held. Entries above it up to the
	 * applied index carry no rows at all (barriers, configuration changes), so
	 * once PostgreSQL shows rows_index it shows everything applied. */
	uint64_t rows_index;
	/* Result of the latest apply; raft hands a pointer to it to the apply
	 * callback, which runs right after apply on the same thread. */
	struct apply_result last;
	uint64_t applied, rejected, undecodable, snapshots, restores;
	/* On the leader: the decoded entry this replica proposed with that buffer,
	 * so apply can skip decoding it again (NULL: decode). */
	struct entry *(*proposed)(void *arg, const void *base);
	/* ... and, once that entry is applied, its index and result (the last
	 * thing apply does: the entry may be freed by it). */
	void (*proposed_applied)(void *arg, struct entry *e, uint64_t index, const struct apply_result *res);
	void *proposed_arg;
	/* Batches applied in this loop iteration, handed to the store together by
	 * fsm_flush so they share a transaction. */
	struct proj_batch *pending_head, *pending_tail;
	/* Renders the rows of the projection rebuilt after a snapshot install
	 * (NULL: proj_model). A seam for tests, which put one here that fails by
	 * setting b->failed. */
	void (*render_model)(struct proj_batch *b, const struct model *m);
	/* Sees each chain of batches just before fsm_flush hands it to the store
	 * (NULL: none): the loop publishes their events on NATS. */
	void (*flushing)(void *arg, const struct proj_batch *chain);
	void *flushing_arg;
};

/* Hands the batches applied so far to the store (loop thread; called once per
 * loop iteration and before anything waits on the projection). */
void fsm_flush(struct fsm *f);

/* Fills *out to drive f (version 3 FSM: snapshots serialised asynchronously,
 * their buffers freed by fsm's snapshot_finalize). */
void fsm_init(struct raft_fsm *out, struct fsm *f);

#endif
