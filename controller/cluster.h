/* cluster — what makes one replica part of a group: sending writes and
 * consistent-read index requests on to the leader, joining a running group
 * (--join), recording every replica's REST API URL in the log (so followers can
 * reach the leader's API), membership changes and leadership transfer on the
 * leader, and the leader's view of its members (reachable, applied index,
 * projection lag) for GET /v1/cluster.
 *
 * Loop thread only (it is part of the loop; loop.c calls cluster_tick). */
#ifndef LATTICE_CLUSTER_H
#define LATTICE_CLUSTER_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "fwd.h"
#include "members.h"

struct loop;
struct op;

#define CLUSTER_POLL_MS 1000    /* the leader asks each member for its indices */
#define CLUSTER_REACHABLE_MS 3000 /* a member answered within this: reachable */
#define CLUSTER_HANDOFF_AFTER_MS 2000 /* unhealthy this long: hand leadership over */
#define CLUSTER_HANDOFF_RETRY_MS 5000

/* What the leader last heard from a member's API. */
struct cluster_peer {
	uint64_t id;
	bool used;
	bool inflight;
	bool ever;          /* answered at least once */
	int64_t last_ok_ms; /* monotonic */
	uint64_t applied, projected;
	bool pg_ok; /* it said it can reach its PostgreSQL */
	struct fwd_req req;
	struct loop *loop;
	char err[200];
};

/* A request this replica sends on its own (join, announcing its URL). */
struct cluster_call {
	bool inflight;
	int64_t next_ms;
	int64_t last_log_ms;
	char body[512];
	struct fwd_req req;
	struct loop *loop;
};

struct cluster {
	struct cluster_peer peers[MEMBERS_MAX];
	int64_t next_poll_ms;
	struct cluster_call join;     /* --join: until this replica is in the configuration */
	bool joined;                  /* it is, or was, in a group: never join again */
	struct cluster_call announce; /* a follower records its URL through the leader */
	bool self_put_inflight;       /* the leader records its own URL */
	struct cluster_call learn;    /* raftnet refused an unknown id: ask for the configuration */
	/* The leader hands leadership over while it cannot project or log. */
	int64_t unhealthy_since_ms; /* 0: healthy */
	int64_t next_handoff_ms;
	bool handoff_inflight;
	struct raft_transfer handoff;
};

/* Loop thread: every tick. */
void cluster_tick(struct loop *l, int64_t now);
/* Loop thread: a write (or consistent read) this replica cannot serve: send it
 * to the leader. Returns false when no leader's URL is known (the caller parks
 * it); true when op is on its way (it is finished when the answer comes). */
bool cluster_forward(struct loop *l, struct op *op);
/* Loop thread, on the leader: OP_MEMBER_ADD/REMOVE, OP_TRANSFER, OP_READ_INDEX. */
void cluster_execute(struct loop *l, struct op *op);
/* Loop thread: GET /v1/cluster as JSON text (malloc'd), or NULL (out of memory). */
char *cluster_render(struct loop *l);
/* Loop thread: at shutdown. */
void cluster_close(struct loop *l);

#endif
