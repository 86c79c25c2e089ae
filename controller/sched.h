/* sched — placement of actor replicas onto nodes, and the explanation of it.
 *
 * Pure: reads the model, never clocks, randomness or I/O. The leader calls
 * sched_place to make a plan before proposing it; apply calls sched_check to
 * re-verify each planned node deterministically.
 *
 * The index (struct sched_index, embedded in struct model) keeps schedulable nodes
 * ordered by (score, id) per region and lattice-wide, and by id for round robin,
 * so a decision does not scan every node; and every node by id, so a dry run
 * can page through them. The model calls sched_index_update after adding a node
 * and whenever anything that affects a node's score or eligibility changes, and
 * sched_index_remove before freeing one. */
#ifndef LATTICE_SCHED_H
#define LATTICE_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"
#include "otree.h"
#include "spec.h"

struct jw;
struct model;
struct model_node;

/* Per-node index state, embedded in struct model_node. */
struct sched_node {
	struct otree_link by_region; /* in region tree, ordered by (score, id) */
	struct otree_link by_all;    /* in lattice-wide tree, ordered by (score, id) */
	struct otree_link by_id;     /* in id tree (round robin) */
	struct otree_link by_every;  /* in the tree of every node, by id */
	bool indexed;                /* currently in the schedulable trees */
	bool listed;                 /* currently in the tree of every node */
	int64_t score;               /* score at insertion; the trees' key */
};

struct sched_index {
	struct hmap regions; /* region name -> struct sched_region (owned) */
	struct otree all;    /* schedulable nodes by (score, id) */
	struct otree by_id;  /* schedulable nodes by id */
	struct otree every;  /* every node, schedulable or not, by id (dry runs) */
};

void sched_index_init(struct sched_index *ix);
void sched_index_release(struct sched_index *ix);
/* Files a new node, or re-reads a filed node's score and eligibility and re-files
 * it. Call after adding a node to the model and after any change to status,
 * cordon/drain, capacity or accounted usage — see model.c. Returns 0 or -1 (out
 * of memory). */
int sched_index_update(struct sched_index *ix, struct model_node *n);
/* Removes the node from every tree (before it is freed, or re-filed). */
void sched_index_remove(struct sched_index *ix, struct model_node *n);

/* Score = floor(cpu_used*100/cpu_capacity) + floor(memory_used_mb*100/memory_mb)
 * + actor_count, from accounted usage. */
int64_t sched_score(const struct model_node *n);

/* What to place. Borrowed pointers. */
struct sched_request {
	const char *actor_id; /* may be NULL (plan of a new actor) */
	int64_t cpu_required;
	int64_t memory_required_mb;
	const char *preferred_region; /* "" or NULL: none */
	const struct kvlist *constraints;
	const struct strlist *contracts; /* spec contracts + linked contracts */
	enum actor_strategy strategy;
	int64_t count; /* replicas to place now */
	/* Nodes that already hold a replica of this actor (avoided while another
	 * candidate exists). */
	struct model_node *const *holding;
	size_t nholding;
};

/* The request one more replica of the actor s makes: the one place that turns a
 * spec into a request (sched owns struct sched_request), for the leader's plans
 * (ops.c, evac.c) and apply's re-checks (model.c) alike. count 1, no holding;
 * the caller sets those. s and contracts are borrowed for req's lifetime. */
void sched_request_for(const struct actor_spec *s, const struct strlist *contracts, struct sched_request *req);

struct sched_choice {
	struct model_node *node; /* borrowed from the model */
	int64_t score;           /* before this replica was added */
	bool round_robin;        /* chosen by rotation (strategy or fallback) */
	bool other_region;       /* preferred region had no candidate */
};

enum sched_rc {
	SCHED_OK = 0,
	SCHED_INSUFFICIENT = 1, /* no candidate for some replica */
	SCHED_NOMEM = 2,
};

/* Plans req->count replicas one after another, counting the capacity taken by
 * earlier ones. On SCHED_OK fills out[0..count-1] and, when rotation was used,
 * copies the new round-robin cursor (a node id) into rr_cursor (size
 * SPEC_ID_MAX+1; left unchanged otherwise). The model is unchanged afterwards. */
int sched_place(struct model *m, const struct sched_request *req, struct sched_choice *out,
		char *rr_cursor);

/* The longest reason sched_check writes, with its NUL (a constraint's 63-byte key
 * and 255-character value): a buffer this long never cuts one short. */
#define SCHED_REASON_MAX 1200

/* Why node n can or cannot take one more replica of req now. Returns true when it
 * is a candidate; otherwise writes a short reason ("cordoned", "insufficient cpu:
 * 200 free, 500 required", "capability denied: wasmcloud:keyvalue", ...). */
bool sched_check(const struct model *m, const struct sched_request *req,
		 const struct model_node *n, char *reason, size_t reasonlen);

/* What a dry run shows besides its summary. */
struct sched_explain_opts {
	bool nodes;                  /* a page of the per-node list */
	char after[SPEC_ID_MAX + 1]; /* the page starts after this node id; "": first */
	size_t limit;                /* page size, >= 1 */
};

/* Candidates a dry run shows, best first. */
#define SCHED_EXPLAIN_CANDIDATES 5

/* Dry run of req, written into w as one JSON object:
 *   placements  node id per replica, [] when not all fit (as sched_place plans);
 *   chosen      [{node_id, region, score, round_robin, other_region}] per replica;
 *   summary     "2/38000 nodes fit: 30000 insufficient cpu, 7998 cordoned";
 *   nodes_total, nodes_fit, and rejected: [{code, reason, nodes}] — for one
 *               replica on the current state, each node counted once, by the
 *               first filter it fails; most nodes first;
 *   candidates  up to SCHED_EXPLAIN_CANDIDATES nodes that fit, in the order the
 *               planner takes them for one replica;
 *   nodes, next with o->nodes: {node_id, region, candidate, score, reason, chosen}
 *               for at most o->limit nodes after o->after in id order, and the
 *               id to pass as after for the next page (null: none);
 *   error       when not every replica fits (insufficient_resources).
 * Cost: sched_place, one pass of the filters over the nodes (no allocation per
 * node) and a reason text for each node shown. The model is unchanged. Returns
 * 0, or -1 when out of memory (w's text is then unusable). */
int sched_explain(struct model *m, const struct sched_request *req,
		  const struct sched_explain_opts *o, struct jw *w);

#endif
