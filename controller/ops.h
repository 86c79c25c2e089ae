/* ops — requests handed from API threads to the loop thread, and how the loop
 * carries them out: checks against the model, placement plans, the Raft entry,
 * the wait for this replica's PostgreSQL to show the write.
 *
 * An op is owned by the thread that submitted it; the loop only borrows it until
 * it calls op->done (exactly once, from the loop or the projection thread). */
#ifndef LATTICE_OPS_H
#define LATTICE_OPS_H

#include <jansson.h>
#include <raft.h>
#include <stdint.h>

#include "entry.h"
#include "fwd.h"
#include "sched.h"
#include "spec.h"

struct loop;
struct apply_result;

enum op_kind {
	OP_NODE_CREATE,
	OP_NODE_CORDON,
	OP_NODE_UNCORDON,
	OP_NODE_DRAIN,
	OP_NODE_DELETE,
	OP_ACTOR_CREATE,
	OP_ACTOR_PATCH,
	OP_ACTOR_DELETE,
	OP_PROVIDER_CREATE,
	OP_PROVIDER_DELETE,
	OP_LINK_CREATE,
	OP_LINK_DELETE,
	OP_POLICY_CREATE,
	OP_POLICY_UPDATE,
	OP_PLAN,      /* dry run of a placement: no log entry */
	OP_CLUSTER,   /* Raft status: no log entry */
	OP_WAIT,      /* wait until PostgreSQL shows `index` (reads with ?min_index) */
	OP_READ_BARRIER, /* ?consistent=true: confirm leadership through the log, then wait */
	OP_MEMBER_ADD,    /* POST /v1/cluster/members: add (or update) a member */
	OP_MEMBER_REMOVE, /* DELETE /v1/cluster/members/{id} */
	OP_TRANSFER,      /* POST /v1/cluster/transfer: hand leadership over */
	OP_READ_INDEX,    /* POST /v1/cluster/read-index: a follower's consistent read asks the
			   * leader to confirm its leadership and name its commit index */
	/* The leader's own writes (edge.c), never from the API: */
	OP_NODE_PROFILE, /* a heartbeat registers its node, or updates its profile */
	OP_NODE_REPORT,  /* health and reported state of nodes (entry.reports) */
	OP_COMMAND_UPDATE, /* commands published, acked, failed (entry.updates; outbox.c) */
	OP_FAILOVER,       /* an unhealthy node's replicas moved (failover.c) */
	OP_FAILOVER_PLAN,  /* POST /v1/nodes/{id}/failover-plan: a dry run, no log entry */
	OP_POLICY_VIOLATIONS, /* GET /v1/policies/{id}/violations: from the model, no log entry */
	OP_ACTOR_MIGRATE,  /* POST /v1/actors/{id}/migrate */
	OP_SNAPSHOT_PUT,   /* an agent's state snapshot (edge.c) */
	OP_RECONCILE,      /* what a node's heartbeats showed amiss (edge.c) */
};

/* The request as the client sent it, for sending it on to the leader. Borrowed
 * from the HTTP request, which stays alive while it is suspended. */
struct op_raw {
	const char *method;
	const char *target; /* path as sent (writes take no query) */
	const char *body;
	size_t body_len;
	const char *content_type;
	const char *idem_key; /* Idempotency-Key, NULL none */
	bool forwarded; /* it came from another replica: never send it on again */
};

/* Where a request is on its way (leader.h has the diagram; leader.c asserts
 * every transition). */
enum op_state {
	OP_QUEUED = 0, /* handed to the loop, not carried out yet */
	OP_PARKED,     /* waiting for a leader, or for this leader to finish taking over */
	OP_FORWARDED,  /* sent on to the leader's API; its answer continues it */
	OP_PROPOSED,   /* its entry is in raft's hands; the apply callback continues it */
	OP_CHANGING,   /* a raft membership change or leadership transfer in flight */
	OP_CONFIRMING, /* a read barrier in flight (leadership confirmed through the log) */
	OP_PROJECTING, /* waiting for this replica's PostgreSQL to show op->index */
	OP_DONE,       /* op->done was called */
	OP_STATES
};

struct op {
	enum op_kind kind;
	enum op_state state;
	/* Input. The API moves the parsed spec into `entry` (node/actor/provider/
	 * link/policy, or patch) and the URL's id into `target`. */
	struct entry entry;
	char target[SPEC_ID_MAX + 1];
	struct sched_explain_opts plan; /* OP_PLAN: what the dry run lists; OP_POLICY_VIOLATIONS: limit */
	int64_t deadline_ms; /* monotonic ms; the op fails with 503 after it */

	/* Output, valid once done has been called. */
	int http_status;          /* 0: success */
	char code[40];            /* error code (snake_case) */
	char message[512];        /* error message */
	char id[SPEC_ID_MAX + 1]; /* object created or changed */
	uint64_t index;           /* log index of the write (or index waited for) */
	json_t *result;           /* cluster status, drain summary; owned by the op */
	json_t *object;           /* the written object as the API shows it; owned */
	char *object_text;        /* or the same as JSON text (actors: the hot path; the
				   * dry run's answer); owned */

	char retry_after[16];     /* Retry-After for a 503, "" none */
	/* The leader's answer to a request this replica sent on (relayed as it is:
	 * status, body in object_text, headers). */
	bool relayed;
	int relay_status;
	uint64_t relay_index;
	char relay_type[80], relay_location[300];

	/* OP_ACTOR_MIGRATE's input: the target ("" : the scheduler picks) and which
	 * replica. */
	char migrate_to[SPEC_ID_MAX + 1];
	int64_t migrate_instance;
	/* Cluster ops' input. */
	char raft_address[64];     /* OP_MEMBER_ADD */
	uint64_t transfer_to;      /* OP_TRANSFER: 0 = any voter */
	struct op_raw raw;
	char fwd_headers[400]; /* extra headers when sent on to the leader */

	/* The leader's own write (OP_NODE_PROFILE, ...): carried out only by a
	 * writable leader (never parked or sent on), finished as soon as it is
	 * applied (nobody waits for PostgreSQL), done called on the loop thread. */
	bool internal;

	void (*done)(struct op *op); /* called once, from any thread */
	void *done_arg;

	/* Loop-side state. */
	struct loop *loop;
	struct raft_change change;     /* cluster ops */
	struct raft_transfer transfer; /* OP_TRANSFER */
	struct raft_barrier barrier;   /* OP_READ_INDEX */
	struct fwd_req fwd;            /* sent on to the leader */
	int64_t park_deadline_ms;      /* parked: 503 no_leader after it */
	const void *entry_buf; /* the proposed buffer, while raft holds it */
	uint64_t batch_seq;    /* the batch (leader_flush) that carried it */
	struct op *proposed_next;
	int attempts;
	struct op *next;
};

/* Zeroes an op for kind. */
void op_init(struct op *op, enum op_kind kind);
/* Frees what the op owns (entry, result); not the op itself. */
void op_release(struct op *op);
/* Sets the error outputs. */
__attribute__((format(printf, 4, 5))) void op_fail(struct op *op, int http_status, const char *code,
						   const char *fmt, ...);

/* Loop thread: is k a change that goes through the leader's log? */
bool ops_is_write(enum op_kind k);
/* Loop thread: answers OP_PLAN and OP_CLUSTER from the model (outputs set, or
 * op failed); the caller finishes op. */
void ops_answer_local(struct loop *l, struct op *op);

enum ops_plan {
	OPS_PLANNED,   /* op->entry is ready to propose */
	OPS_UNCHANGED, /* nothing to write: the answer is set, op->index is what to wait for */
	OPS_REFUSED,   /* op failed (404, 409, ...): nothing to write */
};
/* Loop thread, on the leader: checks a write against the model and decides
 * what it writes (placements, generated ids) into op->entry. */
enum ops_plan ops_plan(struct loop *l, struct op *op);
/* After apply: render the answer from the model (as PostgreSQL will show it). */
void ops_written(struct loop *l, struct op *op);
/* After apply refused the entry: the op's error for res. */
void ops_refused(struct op *op, const struct apply_result *res);
/* A stale plan: forget it before planning again. */
void ops_replan(struct op *op);

#endif
