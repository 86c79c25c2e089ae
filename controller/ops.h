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
#include "sched.h"
#include "spec.h"

struct loop;

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
};

struct op {
	enum op_kind kind;
	/* Input. The API moves the parsed spec into `entry` (node/actor/provider/
	 * link/policy, or patch) and the URL's id into `target`. */
	struct entry entry;
	char target[SPEC_ID_MAX + 1];
	struct sched_explain_opts plan; /* OP_PLAN: what the dry run lists */
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

	void (*done)(struct op *op); /* called once, from any thread */
	void *done_arg;

	/* Loop-side state. */
	struct loop *loop;
	struct raft_apply req;
	const void *entry_buf; /* the proposed buffer, while raft holds it */
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

/* Loop thread (fsm): the entry this replica proposed in buffer base, if it is
 * still waiting for its apply (see fsm.proposed). */
struct entry *ops_proposed(void *loop, const void *base);

/* Loop thread: carry out op (called by loop.c for each submitted op). */
void ops_execute(struct loop *l, struct op *op);

#endif
