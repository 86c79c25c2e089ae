/* check_int — what check.c (history, client-operation checks, check_dir) and
 * check_state.c (the checks against the final state) share. Internal to the
 * checker. */
#ifndef LATTICE_CHECK_INT_H
#define LATTICE_CHECK_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"

#define CHECK_EVIDENCE_MAX 24 /* history lines per violation, at most */
#define CHECK_OPEN INT64_MAX  /* t1 of an operation that never completed */

/* A growable array of borrowed pointers. */
struct vec {
	void **v;
	size_t n, cap;
};
int vec_push(struct vec *v, void *p);

/* String -> vec, keys owned (copied). */
struct mm {
	struct hmap h;
};
/* The vec of key, or NULL when absent; with create, made when absent (NULL
 * only when out of memory). */
struct vec *mm_at(struct mm *m, const char *key, bool create);
void mm_free(struct mm *m);

enum op_status { OP_OK, OP_FAIL, OP_INFO };

/* A client operation: its invoke line and its completion (NULL: none). */
struct op {
	json_int_t id;
	json_t *inv, *cmp; /* borrowed from the history */
	const char *f, *key;
	int64_t t0, t1; /* invoke, completion (CHECK_OPEN when none) */
	enum op_status st;
};

struct ctx {
	json_t *history, *final;
	char *err;
	size_t errlen;
	int oom;
	struct op *ops;
	size_t nops;
	struct mm bykey;     /* actor id -> ops on it (struct op *), in invoke order */
	struct mm node_ln;   /* node id -> its agent lines, node_status lines and fault lines */
	struct mm cmd_ln;    /* command id -> agent lines naming it */
	struct vec policy_ops; /* ok policy writes */
	/* the final state */
	json_t *agents;      /* node id -> the agent's view */
	struct mm dead;      /* dead node ids (vecs empty) */
	struct vec live;     /* live replicas' elements (json_t *) */
	json_t *ref;         /* the first live replica's "tables" (NULL: none live) */
	int ref_replica;
	struct mm ref_actor; /* actor id -> its row */
	struct mm ref_pl;    /* "actor\x1finstance" -> its placement row */
	struct mm ref_pl_node; /* node id -> its placement rows */
	struct mm ref_fo_node; /* node id -> failovers of it */
	/* the output */
	struct vec viol;     /* json_t * (owned) of the check running */
	json_t *violations, *checks;
};

/* members of a JSON object: NULL / false when absent or of another type */
const char *jstr(json_t *o, const char *k);
bool jint(json_t *o, const char *k, json_int_t *out);
json_t *jtable(json_t *tables, const char *name); /* NULL (no rows) when absent */

/* Is node a live agent: in agents, "alive", and not in dead_nodes? */
bool check_live_node(struct ctx *c, const char *node);
/* Does the agent of node run (actor, instance)? */
bool check_agent_runs(struct ctx *c, const char *node, const char *actor, json_int_t inst);

/* Records a violation of the running check. evidence: history lines
 * (borrowed; deduplicated, sorted by t, at most CHECK_EVIDENCE_MAX, the last
 * ones kept); extra: more members (stolen, may be NULL). */
void check_violation(struct ctx *c, const char *check, const char *key, json_t *extra, struct vec *evidence,
		     const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Ends a check: its violations go to the output sorted by key; its counts to
 * "checks" (plus the members of more, stolen, may be NULL). */
void check_done(struct ctx *c, const char *check, size_t checked, json_t *more);

/* evidence helpers: the lines of an op; a node's fault and life lines; a
 * node's applied lines for one actor instance */
void ev_op(struct vec *ev, const struct op *o);
void ev_node_life(struct ctx *c, struct vec *ev, const char *node);
void ev_applied(struct ctx *c, struct vec *ev, const char *node, const char *actor, json_int_t inst);

/* check_state.c */
void check_replicas_differ(struct ctx *c);
void check_failover(struct ctx *c);
void check_stuck_command(struct ctx *c);
void check_double_apply(struct ctx *c);
void check_policy_behind(struct ctx *c);
void check_agent_state(struct ctx *c);

#endif
