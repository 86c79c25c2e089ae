/* loop — one replica's loop thread: it owns canonical raft (libuv backend), the
 * model and the timers; API threads hand it ops through a locked queue and a
 * uv_async_t; results go back through op->done.
 *
 * Lifecycle: loop_init → loop_run (blocks until loop_stop) → loop_close. */
#ifndef LATTICE_LOOP_H
#define LATTICE_LOOP_H

#include <pthread.h>
#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "fsm.h"
#include "model.h"
#include "raftnet.h"

struct store;
struct op;

/* Raft status as last published by the loop (readable from any thread). */
struct loop_status {
	uint64_t term, commit_index, applied_index, last_index;
	uint64_t leader_id;
	char leader_address[64];
	int state; /* RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER, RAFT_UNAVAILABLE */
	bool writable; /* leader, and its log is applied (barrier done) */
	size_t nodes, actors, providers, links, policies;
	uint64_t fsm_applied, fsm_rejected, fsm_undecodable, snapshots;
};

struct loop {
	const struct config *cfg; /* borrowed */
	struct store *store;      /* borrowed */
	uv_loop_t uv;
	struct raft raft;
	struct raft_io io;
	struct raftnet net; /* raft's TCP transport, refusing non-members */
	struct raft_fsm rfsm;
	struct fsm fsm;
	struct model model;

	/* ops from other threads */
	uv_async_t wake;
	pthread_mutex_t lock;
	struct op *inbox_head, *inbox_tail;
	/* ops that wait for the projection, in index order (lock) */
	struct op *wait_head;
	/* ops proposed to raft and not yet applied (loop thread only) */
	struct op *proposed;
	/* ops parked until this replica can take writes (loop thread only) */
	struct op *parked_head, *parked_tail;

	uv_timer_t tick;
	uv_check_t flush; /* after each loop iteration: applied batches to the store */
	struct raft_barrier barrier;
	bool barrier_pending;
	uint64_t barrier_term; /* term whose barrier completed */
	bool closing;
	int64_t close_started_ms;
	int inflight; /* submitted ops not yet done (lock) */

	struct loop_status status; /* lock */
	char instance_id[40];
	char api_url[128];
};

/* Creates the data dir if needed, checks it belongs to this --id, starts Raft
 * (bootstrapping when asked and the dir is new). The store must be started.
 * Returns 0, or -1 with a message in err. */
int loop_init(struct loop *l, const struct config *cfg, struct store *store, char *err, size_t errlen);
/* The data dir's instance id (read or created by loop_prepare_dir). */
int loop_prepare_dir(const struct config *cfg, char *instance_id, size_t len, char *err, size_t errlen);
/* Runs the loop until loop_stop has completed the shutdown. */
int loop_run(struct loop *l);
/* Any thread: begin a clean shutdown (refuse new ops, finish in-flight ones,
 * close Raft). */
void loop_stop(struct loop *l);
void loop_close(struct loop *l);

/* Any thread: hand op to the loop. op->done is called exactly once. */
void loop_submit(struct loop *l, struct op *op);
/* Any thread: copy of the published status. */
void loop_status(struct loop *l, struct loop_status *out);
/* Projection thread (store callback): PostgreSQL now shows `index`. */
void loop_projected(struct loop *l, uint64_t index);

/* Loop thread (ops.c): park op until writable; add op to the projection waiters. */
void loop_park(struct loop *l, struct op *op);
void loop_wait_projection(struct loop *l, struct op *op);
/* Loop thread: finish op (calls op->done). */
void loop_finish(struct loop *l, struct op *op);
int64_t loop_now_ms(void);      /* monotonic */
int64_t loop_wallclock_ms(void); /* for entries' "at" */

#endif
