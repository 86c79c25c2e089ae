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
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "cluster.h"
#include "config.h"
#include "disk.h"
#include "edge.h"
#include "failover.h"
#include "fsm.h"
#include "fwd.h"
#include "durhist.h"
#include "leader.h"
#include "model.h"
#include "outbox.h"
#include "raftio.h"
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
	bool disk_ok;  /* raft may write (disk.h) */
	char disk_reason[512]; /* why not, "" when disk_ok */
	size_t nodes, actors, providers, links, policies;
	size_t commands_open, failovers_open; /* pending or published; in progress */
	uint64_t commands_acked, commands_failed, commands_superseded; /* finished since start */
	uint64_t fsm_applied, fsm_rejected, fsm_undecodable, snapshots;
	/* /metrics: counted by this replica since it started */
	uint64_t leader_changes;       /* the leader it knows of changed to another */
	uint64_t placed, place_refused; /* instances the leader placed; requests refused for room */
	struct durhist place;             /* the leader choosing nodes for one request */
	uint64_t failovers_completed, failovers_failed;
	struct durhist failover;          /* node found dead -> failover finished */
	struct durhist command_rtt;       /* command published -> acked */
	struct durhist heartbeat_gap;     /* between two heartbeats of one agent, on the leader */
	uint64_t heartbeat_age_max_ms; /* the oldest last heartbeat among the nodes, on the leader */
};

/* What the loop counts for /metrics beyond the model (loop thread). */
struct loop_stats {
	uint64_t leader_changes, last_leader;
	uint64_t placed, place_refused;
	struct durhist place;
};

struct loop {
	const struct config *cfg; /* borrowed */
	struct store *store;      /* borrowed */
	uv_loop_t uv;
	struct raft raft;
	struct raftio io; /* raft_uv's io, wrapped (io.io is what raft uses) */
	struct disk disk; /* is there room for raft to write? */
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
	struct leader leader; /* requests on their way (loop thread only) */

	uv_timer_t tick;
	uv_check_t flush; /* after each loop iteration: proposals to raft, applied batches to the store */
	uv_prepare_t propose; /* before each poll: proposals to raft */
	/* Published after every loop iteration, for loop_projected_index: the
	 * applied index and the fsm's rows_index at that moment. Written under
	 * lock and a sequence count (odd while writing): HTTP workers, which
	 * read the pair for every answer's X-Lattice-Index, do so without the
	 * lock, so tens of thousands of reads a second neither queue on it nor,
	 * preempted while holding it, stall the loop. */
	_Atomic uint64_t pub_seq, pub_applied, pub_rows;
	bool closing;
	int64_t close_started_ms;
	int inflight; /* submitted ops not yet done (lock) */

	struct loop_status status; /* lock */
	struct loop_stats stats;
	struct view *view;          /* nodes and actors for API reads (view.h); NULL: none */
	uint64_t view_restores;     /* fsm.restores when the view last saw it */
	char instance_id[40];
	char api_url[256];
	struct fwd fwd;         /* HTTP to other replicas (cluster.c) */
	struct cluster cluster; /* group membership, sending on to the leader */
	char fwd_header[64];    /* "X-Lattice-Forwarded: ID\r\n" */
	struct bus bus;   /* NATS (docs/protocol.md) */
	struct edge edge; /* the leader's view of its edge nodes */
	struct outbox outbox; /* the leader publishes commands */
	struct failover failover; /* the leader moves unhealthy nodes' replicas */
};

/* Creates the data dir if needed, checks it belongs to this --id, starts Raft
 * (bootstrapping when asked and the dir is new). The store must be started.
 * Returns 0, or -1 with a message in err. */
int loop_init(struct loop *l, const struct config *cfg, struct store *store, char *err, size_t errlen);
/* Creates the data dir if needed and locks it for this process (flock on
 * DIR/LOCK, released when the process ends). Returns the lock's fd, to keep
 * open, or -1 with a message in err (e.g. another latticed holds it). */
int loop_lock_dir(const char *dir, char *err, size_t errlen);
/* Length of a group id in hex digits. */
#define LOOP_GROUP_ID_LEN 32
/* Reads DATA_DIR/replica.json, creating it for a new data dir: the data dir's
 * instance id (random, made once) into instance_id and the lattice group's id
 * into group_id (LOOP_GROUP_ID_LEN + 1 bytes; a data dir without one gets
 * loop_group_id's, written once). Refuses a data dir of another --id. Returns 0,
 * or -1 with a message in err. */
int loop_prepare_dir(const struct config *cfg, char *instance_id, size_t len, char *group_id, size_t glen,
		     char *err, size_t errlen);
/* The id of the lattice group this replica is in, as a data dir without one
 * records it: LOOP_GROUP_ID_LEN hex digits of SHA-256 over the lattice name
 * (--lattice) and this replica's --raft-address. Deterministic: the same
 * options give the same id. */
void loop_group_id(const struct config *cfg, char *out, size_t len);
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
/* Any thread: the highest index this replica's PostgreSQL can be said to show.
 * Entries without rows (barriers, configuration changes) count as shown once
 * everything before them is. Never decreases. */
uint64_t loop_projected_index(struct loop *l);
/* Any thread: the published applied index and, read at the same moment, the
 * projected index (never above it). */
void loop_indices(struct loop *l, uint64_t *applied, uint64_t *projected);

/* Loop thread: op waits (PROJECTING) until PostgreSQL shows op->index. */
void loop_wait_projection(struct loop *l, struct op *op);
/* Loop thread: publishes raft's status for loop_status readers. */
void loop_publish_status(struct loop *l);
/* Loop thread: finish op (DONE; calls op->done). */
void loop_finish(struct loop *l, struct op *op);
int64_t loop_now_ms(void);      /* monotonic */
int64_t loop_wallclock_ms(void); /* for entries' "at" */

#endif
