/* sched.c — placement decisions over an index of schedulable nodes.
 *
 * Index: every schedulable node (healthy, not cordoned, not draining) is in the
 * by-id tree. Those with a known capacity are also in their region's tree and in
 * the lattice-wide tree, both ordered by (score, id), and have sched.score >= 0;
 * a node with unknown capacity has no score (sched.score == -1) and is only in the
 * by-id tree, so all.n < by_id.n tells whether any exist. Every node, schedulable
 * or not, is in the `every` tree by id, for the dry run's per-node list.
 *
 * A resources decision walks a (score, id) tree from the lowest and takes the first
 * node passing the remaining filters; the lowest-scored nodes are the emptiest, so
 * the walk is usually short. */
#include "sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "policy.h"

struct sched_region {
	char *name;        /* owned; also the key in ix->regions */
	struct otree tree; /* nodes of this region by (score, id), via sched.by_region */
};

#define SCHED_NODE(link, member) otree_entry(link, struct model_node, sched.member)

static int sched_cmp_score(const struct model_node *a, const struct model_node *b)
{
	if (a->sched.score != b->sched.score)
		return a->sched.score < b->sched.score ? -1 : 1;
	return strcmp(a->spec.id, b->spec.id);
}

static int sched_cmp_region(const struct otree_link *a, const struct otree_link *b)
{
	return sched_cmp_score(SCHED_NODE(a, by_region), SCHED_NODE(b, by_region));
}

static int sched_cmp_all(const struct otree_link *a, const struct otree_link *b)
{
	return sched_cmp_score(SCHED_NODE(a, by_all), SCHED_NODE(b, by_all));
}

static int sched_cmp_id(const struct otree_link *a, const struct otree_link *b)
{
	return strcmp(SCHED_NODE(a, by_id)->spec.id, SCHED_NODE(b, by_id)->spec.id);
}

static int sched_keycmp_id(const void *key, const struct otree_link *b)
{
	return strcmp(key, SCHED_NODE(b, by_id)->spec.id);
}

static int sched_cmp_every(const struct otree_link *a, const struct otree_link *b)
{
	return strcmp(SCHED_NODE(a, by_every)->spec.id, SCHED_NODE(b, by_every)->spec.id);
}

static int sched_keycmp_every(const void *key, const struct otree_link *b)
{
	return strcmp(key, SCHED_NODE(b, by_every)->spec.id);
}

static bool sched_schedulable(const struct model_node *n)
{
	return n->status == NODE_HEALTHY && !n->cordoned && !n->draining;
}

static bool sched_known_capacity(const struct model_node *n)
{
	return n->spec.cpu_capacity > 0 && n->spec.memory_mb > 0;
}

int64_t sched_score(const struct model_node *n)
{
	int64_t s = n->actor_count;
	if (n->spec.cpu_capacity > 0)
		s += n->cpu_used * 100 / n->spec.cpu_capacity;
	if (n->spec.memory_mb > 0)
		s += n->memory_used_mb * 100 / n->spec.memory_mb;
	return s;
}

/* ---- index ---------------------------------------------------------------- */

void sched_index_init(struct sched_index *ix)
{
	hmap_init(&ix->regions);
	otree_init(&ix->all, sched_cmp_all);
	otree_init(&ix->by_id, sched_cmp_id);
	otree_init(&ix->every, sched_cmp_every);
}

static void sched_region_free(struct sched_index *ix, struct sched_region *r)
{
	hmap_del(&ix->regions, r->name);
	free(r->name);
	free(r);
}

/* Does not touch the nodes: the model may already have freed them. */
void sched_index_release(struct sched_index *ix)
{
	size_t pos = 0;
	struct sched_region *r;
	while ((r = hmap_next(&ix->regions, &pos))) {
		free(r->name);
		free(r);
	}
	hmap_release(&ix->regions);
	otree_init(&ix->all, sched_cmp_all);
	otree_init(&ix->by_id, sched_cmp_id);
	otree_init(&ix->every, sched_cmp_every);
}

static struct sched_region *sched_region_get(struct sched_index *ix, const char *name)
{
	struct sched_region *r = hmap_get(&ix->regions, name);
	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r || !(r->name = strdup(name)) || hmap_put(&ix->regions, r->name, r) != 0) {
		if (r)
			free(r->name);
		free(r);
		return NULL;
	}
	otree_init(&r->tree, sched_cmp_region);
	return r;
}

/* The region tree that holds n. The node's region may have been renamed since it
 * was filed, so the current name is only a hint; the tree's root decides. */
static struct sched_region *sched_region_holding(struct sched_index *ix, const struct model_node *n)
{
	const struct otree_link *root = &n->sched.by_region;
	while (root->parent)
		root = root->parent;
	struct sched_region *r = hmap_get(&ix->regions, n->spec.region);
	if (r && r->tree.root == root)
		return r;
	size_t pos = 0;
	while ((r = hmap_next(&ix->regions, &pos)))
		if (r->tree.root == root)
			return r;
	return NULL; /* not reached while the index is consistent */
}

/* Takes n out of the score trees; frees its region when that empties it, unless it
 * is `keep` (about to be refilled). */
static void sched_unfile_score(struct sched_index *ix, struct model_node *n, struct sched_region *keep)
{
	struct sched_region *r = sched_region_holding(ix, n);
	if (r) {
		otree_remove(&r->tree, &n->sched.by_region);
		if (r->tree.n == 0 && r != keep)
			sched_region_free(ix, r);
	}
	otree_remove(&ix->all, &n->sched.by_all);
	n->sched.score = -1;
}

/* Takes n out of the schedulable trees; it stays in `every`. */
static void sched_unindex(struct sched_index *ix, struct model_node *n)
{
	if (!n->sched.indexed)
		return;
	if (n->sched.score >= 0)
		sched_unfile_score(ix, n, NULL);
	otree_remove(&ix->by_id, &n->sched.by_id);
	n->sched.indexed = false;
	n->sched.score = 0;
}

void sched_index_remove(struct sched_index *ix, struct model_node *n)
{
	sched_unindex(ix, n);
	if (n->sched.listed) {
		otree_remove(&ix->every, &n->sched.by_every);
		n->sched.listed = false;
	}
}

int sched_index_update(struct sched_index *ix, struct model_node *n)
{
	if (!n->sched.listed) {
		otree_insert(&ix->every, &n->sched.by_every);
		n->sched.listed = true;
	}
	if (!sched_schedulable(n)) {
		sched_unindex(ix, n);
		return 0;
	}
	bool known = sched_known_capacity(n);
	int64_t score = known ? sched_score(n) : -1;
	struct sched_region *r = NULL;
	if (known) {
		/* The only allocation comes first, so failure leaves the index as it was. */
		r = sched_region_get(ix, n->spec.region);
		if (!r)
			return -1;
	}
	if (!n->sched.indexed) {
		otree_insert(&ix->by_id, &n->sched.by_id);
		n->sched.indexed = true;
		n->sched.score = -1;
	}
	if (n->sched.score >= 0) {
		if (known && score == n->sched.score) {
			/* Same key; unchanged unless the region was renamed. */
			if (sched_region_holding(ix, n) == r)
				return 0;
		}
		sched_unfile_score(ix, n, r);
	}
	if (known) {
		n->sched.score = score;
		otree_insert(&r->tree, &n->sched.by_region);
		otree_insert(&ix->all, &n->sched.by_all);
	}
	return 0;
}

/* ---- filters -------------------------------------------------------------- */

static const char *sched_status_name(enum node_status s)
{
	switch (s) {
	case NODE_HEALTHY:
		return "healthy";
	case NODE_DEGRADED:
		return "degraded";
	case NODE_UNHEALTHY:
		return "unhealthy";
	}
	return "unknown";
}

/* Why a node is not a candidate: the first filter it fails, in the order they
 * apply. The dry run counts nodes by these. */
enum sched_reject {
	SCHED_FITS = 0,
	SCHED_REJECT_STATUS_DEGRADED,
	SCHED_REJECT_STATUS_UNHEALTHY,
	SCHED_REJECT_CORDONED,
	SCHED_REJECT_DRAINING,
	SCHED_REJECT_LABEL,         /* a constraint (which: its index) */
	SCHED_REJECT_CAPABILITY,    /* a contract a policy denies (which: its index) */
	SCHED_REJECT_POLICY_MEMORY, /* the actor's memory above a policy's cap */
	SCHED_REJECT_MEASURED,      /* measured usage above capacity */
	SCHED_REJECT_CPU,
	SCHED_REJECT_MEMORY,
};
#define SCHED_REJECT_KINDS (SCHED_REJECT_MEMORY + 1)

/* The full filter, without text: the hot path and the dry run's counting pass.
 * which (may be NULL) gets the constraint's or contract's index. */
static enum sched_reject sched_filter(const struct sched_request *req, const struct model_node *n,
				      size_t *which)
{
	if (n->status != NODE_HEALTHY)
		return n->status == NODE_DEGRADED ? SCHED_REJECT_STATUS_DEGRADED : SCHED_REJECT_STATUS_UNHEALTHY;
	if (n->cordoned)
		return SCHED_REJECT_CORDONED;
	if (n->draining)
		return SCHED_REJECT_DRAINING;
	if (req->constraints) {
		for (size_t i = 0; i < req->constraints->n; i++) {
			const struct kv *c = &req->constraints->items[i];
			const char *v = kvlist_get(&n->spec.labels, c->key);
			if (!v || strcmp(v, c->value) != 0) {
				if (which)
					*which = i;
				return SCHED_REJECT_LABEL;
			}
		}
	}
	if (n->npolicies) {
		if (req->contracts)
			for (size_t i = 0; i < req->contracts->n; i++)
				if (!policy_allows_contract(n, req->contracts->items[i])) {
					if (which)
						*which = i;
					return SCHED_REJECT_CAPABILITY;
				}
		int64_t cap = policy_memory_cap(n);
		if (cap > 0 && req->memory_required_mb > cap)
			return SCHED_REJECT_POLICY_MEMORY;
	}
	if ((n->spec.cpu_capacity > 0 && n->cpu_measured > n->spec.cpu_capacity) ||
	    (n->spec.memory_mb > 0 && n->memory_measured_mb > n->spec.memory_mb))
		return SCHED_REJECT_MEASURED;
	if (sched_known_capacity(n)) {
		if (n->spec.cpu_capacity - n->cpu_used < req->cpu_required)
			return SCHED_REJECT_CPU;
		if (n->spec.memory_mb - n->memory_used_mb < req->memory_required_mb)
			return SCHED_REJECT_MEMORY;
	}
	return SCHED_FITS;
}

static bool sched_node_ok(const struct sched_request *req, const struct model_node *n)
{
	return sched_filter(req, n, NULL) == SCHED_FITS;
}

/* The reason for node n's rejection r (which as sched_filter gave it). */
static void sched_reason(const struct sched_request *req, const struct model_node *n, enum sched_reject r,
			 size_t which, char *buf, size_t len)
{
	switch (r) {
	case SCHED_FITS: buf[0] = '\0'; break;
	case SCHED_REJECT_STATUS_DEGRADED:
	case SCHED_REJECT_STATUS_UNHEALTHY:
		snprintf(buf, len, "status %s", sched_status_name(n->status));
		break;
	case SCHED_REJECT_CORDONED: snprintf(buf, len, "cordoned"); break;
	case SCHED_REJECT_DRAINING: snprintf(buf, len, "draining"); break;
	case SCHED_REJECT_LABEL:
		snprintf(buf, len, "label %s=%s required", req->constraints->items[which].key,
			 req->constraints->items[which].value);
		break;
	case SCHED_REJECT_CAPABILITY:
		snprintf(buf, len, "capability denied: %s", req->contracts->items[which]);
		break;
	case SCHED_REJECT_POLICY_MEMORY:
		snprintf(buf, len, "memory %" PRId64 " MiB above policy cap %" PRId64 " MiB",
			 req->memory_required_mb, policy_memory_cap(n));
		break;
	case SCHED_REJECT_MEASURED: snprintf(buf, len, "measured usage above capacity"); break;
	case SCHED_REJECT_CPU:
		snprintf(buf, len, "insufficient cpu: %" PRId64 " free, %" PRId64 " required",
			 n->spec.cpu_capacity - n->cpu_used, req->cpu_required);
		break;
	case SCHED_REJECT_MEMORY:
		snprintf(buf, len, "insufficient memory: %" PRId64 " free, %" PRId64 " required",
			 n->spec.memory_mb - n->memory_used_mb, req->memory_required_mb);
		break;
	}
}

bool sched_check(const struct model *m, const struct sched_request *req, const struct model_node *n,
		 char *reason, size_t reasonlen)
{
	(void)m;
	size_t which = 0;
	enum sched_reject r = sched_filter(req, n, &which);
	if (reason && reasonlen)
		sched_reason(req, n, r, which, reason, reasonlen);
	return r == SCHED_FITS;
}

/* ---- planning ------------------------------------------------------------- */

/* Above this many held nodes a hash set beats scanning the lists. */
#define SCHED_HELD_LINEAR 32

struct sched_plan {
	struct model *m;
	const struct sched_request *req;
	const char *pref; /* preferred region, NULL when none */
	struct sched_choice *out;
	size_t nout;
	size_t naccounted; /* out[0..naccounted-1] are temporarily accounted */
	bool hashed;
	struct hmap held; /* node id -> node, when hashed */
	char cursor[SPEC_ID_MAX + 1];
	bool rotated;
};

static bool sched_plan_holds(const struct sched_plan *p, const struct model_node *n)
{
	if (p->hashed)
		return hmap_get(&p->held, n->spec.id) != NULL;
	for (size_t i = 0; i < p->req->nholding; i++)
		if (p->req->holding[i] == n)
			return true;
	for (size_t i = 0; i < p->nout; i++)
		if (p->out[i].node == n)
			return true;
	return false;
}

/* Rotation: the first candidate after the cursor in id order, wrapping; a node
 * already holding a replica only when no other candidate exists. */
static struct model_node *sched_rotate(struct sched_plan *p, bool unknown_only)
{
	const struct otree *t = &p->m->sched.by_id;
	struct otree_link *start = p->cursor[0] ? otree_upper_bound(t, p->cursor, sched_keycmp_id) : NULL;
	if (!start)
		start = otree_first(t);
	struct model_node *held = NULL;
	struct otree_link *l = start;
	while (l) {
		struct model_node *n = SCHED_NODE(l, by_id);
		if ((!unknown_only || !sched_known_capacity(n)) && sched_node_ok(p->req, n)) {
			if (!sched_plan_holds(p, n))
				return n;
			if (!held)
				held = n;
		}
		l = otree_next(l);
		if (!l)
			l = otree_first(t);
		if (l == start)
			break;
	}
	return held;
}

/* Resources: lowest (score, id) among candidates, in order of preference:
 * preferred region and not holding; any region and not holding; preferred region
 * holding; any region holding; then rotation over unknown-capacity nodes. Avoiding
 * a second replica on one node outranks the region preference. */
static struct model_node *sched_pick_resources(struct sched_plan *p, bool *other_region, bool *rr)
{
	struct sched_index *ix = &p->m->sched;
	struct model_node *held_pref = NULL, *held_other = NULL;
	struct sched_region *r = p->pref ? hmap_get(&ix->regions, p->pref) : NULL;

	*other_region = false;
	*rr = false;
	if (r) {
		for (struct otree_link *l = otree_first(&r->tree); l; l = otree_next(l)) {
			struct model_node *n = SCHED_NODE(l, by_region);
			if (!sched_node_ok(p->req, n))
				continue;
			if (!sched_plan_holds(p, n))
				return n;
			if (!held_pref)
				held_pref = n;
		}
	}
	for (struct otree_link *l = otree_first(&ix->all); l; l = otree_next(l)) {
		struct model_node *n = SCHED_NODE(l, by_all);
		if (p->pref && strcmp(n->spec.region, p->pref) == 0)
			continue; /* walked above */
		if (!sched_node_ok(p->req, n))
			continue;
		if (!sched_plan_holds(p, n)) {
			*other_region = p->pref != NULL;
			return n;
		}
		if (!held_other)
			held_other = n;
	}
	if (held_pref)
		return held_pref;
	if (held_other) {
		*other_region = p->pref != NULL;
		return held_other;
	}
	if (ix->by_id.n > ix->all.n) {
		*rr = true;
		return sched_rotate(p, true);
	}
	return NULL;
}

static int sched_plan_run(struct sched_plan *p)
{
	const struct sched_request *req = p->req;
	size_t count = (size_t)req->count;

	if (req->nholding + count > SCHED_HELD_LINEAR) {
		p->hashed = true;
		for (size_t i = 0; i < req->nholding; i++)
			if (hmap_put(&p->held, req->holding[i]->spec.id, req->holding[i]) != 0)
				return SCHED_NOMEM;
	}
	for (size_t k = 0; k < count; k++) {
		bool other = false, rr = true;
		struct model_node *n = req->strategy == STRATEGY_ROUND_ROBIN
					       ? sched_rotate(p, false)
					       : sched_pick_resources(p, &other, &rr);
		if (!n)
			return SCHED_INSUFFICIENT;
		if (rr) {
			snprintf(p->cursor, sizeof(p->cursor), "%s", n->spec.id);
			p->rotated = true;
		}
		p->out[k] = (struct sched_choice){
			.node = n, .score = sched_score(n), .round_robin = rr, .other_region = other};
		p->nout = k + 1;
		if (p->hashed && hmap_put(&p->held, n->spec.id, n) != 0)
			return SCHED_NOMEM;
		/* The next replica must see this one's load; the last one needs no
		 * accounting, as nothing is decided after it. */
		if (k + 1 < count) {
			model_node_account(p->m, n, req->cpu_required, req->memory_required_mb, +1);
			p->naccounted = k + 1;
		}
	}
	return SCHED_OK;
}

void sched_request_for(const struct actor_spec *s, const struct strlist *contracts, struct sched_request *req)
{
	memset(req, 0, sizeof(*req));
	req->actor_id = s->id;
	req->cpu_required = s->cpu_required;
	req->memory_required_mb = s->memory_required_mb;
	req->preferred_region = s->preferred_region;
	req->constraints = &s->constraints;
	req->contracts = contracts;
	req->strategy = s->strategy;
	req->count = 1;
}

int sched_place(struct model *m, const struct sched_request *req, struct sched_choice *out,
		char *rr_cursor)
{
	struct sched_plan p = {
		.m = m,
		.req = req,
		.pref = req->preferred_region && req->preferred_region[0] ? req->preferred_region : NULL,
		.out = out,
	};
	if (req->count <= 0)
		return SCHED_OK;
	hmap_init(&p.held);
	snprintf(p.cursor, sizeof(p.cursor), "%s", m->rr_cursor);

	int rc = sched_plan_run(&p);

	/* Undo the temporary accounting, newest first: the model is as it was. */
	for (size_t k = p.naccounted; k-- > 0;)
		model_node_account(m, out[k].node, req->cpu_required, req->memory_required_mb, -1);
	hmap_release(&p.held);
	if (rc == SCHED_OK && p.rotated && rr_cursor)
		memcpy(rr_cursor, p.cursor, sizeof(p.cursor));
	return rc;
}

/* ---- explanation ---------------------------------------------------------- */

/* A set of nodes by address, for "is it chosen / does it hold a replica" at a
 * cost of log n per question. */
struct sched_nodeset {
	const struct model_node **v; /* sorted by address; owned */
	size_t n;
};

static int sched_cmp_addr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (const struct model_node *const *)a;
	uintptr_t y = (uintptr_t) * (const struct model_node *const *)b;
	return x < y ? -1 : x > y;
}

static bool sched_nodeset_has(const struct sched_nodeset *s, const struct model_node *n)
{
	return s->n && bsearch(&n, s->v, s->n, sizeof(*s->v), sched_cmp_addr) != NULL;
}

/* What the ranking and the reasons need: the request, and what the pass found. */
struct sched_explainer {
	struct model *m;
	const struct sched_request *req;
	const char *pref; /* preferred region, NULL when none */
	struct sched_nodeset chosen, holding;
	bool pref_has_candidate; /* "not in preferred region" only when it could be honoured */
};

/* A candidate's place in the planner's order for one replica (sched_pick_resources,
 * sched_rotate): by tier, then score (resources) or rotation from the cursor,
 * then id. */
struct sched_rank {
	const struct model_node *n;
	unsigned tier;
	int64_t score;
	bool wrapped; /* at or before the round-robin cursor: comes after the others */
};

/* Tiers for resources: 0 preferred region, 1 other region, 2 and 3 the same for
 * nodes holding a replica, then 4 and 5 the nodes of unknown capacity (rotation)
 * not holding and holding one. Round robin: 0 not holding, 1 holding. */
static struct sched_rank sched_rank_of(const struct sched_explainer *x, const struct model_node *n)
{
	unsigned held = sched_nodeset_has(&x->holding, n);
	const char *cursor = x->m->rr_cursor;
	bool rotation = x->req->strategy == STRATEGY_ROUND_ROBIN || !sched_known_capacity(n);
	if (rotation) {
		bool wrapped = cursor[0] && strcmp(n->spec.id, cursor) <= 0;
		unsigned tier = x->req->strategy == STRATEGY_ROUND_ROBIN ? held : 4 + held;
		return (struct sched_rank){n, tier, 0, wrapped};
	}
	unsigned other = x->pref && strcmp(n->spec.region, x->pref) != 0;
	return (struct sched_rank){n, 2 * held + other, sched_score(n), false};
}

static int sched_rank_cmp(const struct sched_rank *a, const struct sched_rank *b)
{
	if (a->tier != b->tier)
		return a->tier < b->tier ? -1 : 1;
	if (a->score != b->score)
		return a->score < b->score ? -1 : 1;
	if (a->wrapped != b->wrapped)
		return a->wrapped ? 1 : -1;
	return strcmp(a->n->spec.id, b->n->spec.id);
}

/* Rejections are counted in buckets laid out in filter order: one per kind, and
 * for labels one per constraint, for capabilities one per contract. */
static size_t sched_bucket(const struct sched_request *req, enum sched_reject r, size_t which)
{
	size_t ncons = req->constraints ? req->constraints->n : 0;
	size_t ncontracts = req->contracts ? req->contracts->n : 0;
	if (r < SCHED_REJECT_LABEL)
		return (size_t)r;
	if (r == SCHED_REJECT_LABEL)
		return SCHED_REJECT_LABEL + which;
	if (r == SCHED_REJECT_CAPABILITY)
		return SCHED_REJECT_LABEL + ncons + which;
	return SCHED_REJECT_LABEL + ncons + ncontracts + (size_t)(r - SCHED_REJECT_POLICY_MEMORY);
}

static const char *const sched_reject_codes[SCHED_REJECT_KINDS] = {
	[SCHED_REJECT_STATUS_DEGRADED] = "status_degraded",
	[SCHED_REJECT_STATUS_UNHEALTHY] = "status_unhealthy",
	[SCHED_REJECT_CORDONED] = "cordoned",
	[SCHED_REJECT_DRAINING] = "draining",
	[SCHED_REJECT_LABEL] = "label_mismatch",
	[SCHED_REJECT_CAPABILITY] = "capability_denied",
	[SCHED_REJECT_POLICY_MEMORY] = "memory_above_policy_cap",
	[SCHED_REJECT_MEASURED] = "measured_usage_above_capacity",
	[SCHED_REJECT_CPU] = "insufficient_cpu",
	[SCHED_REJECT_MEMORY] = "insufficient_memory",
};

/* The bucket's kind, and its reason without the per-node figures: the node
 * reasons' text up to the figures ("insufficient cpu", "label zone=a required"). */
static enum sched_reject sched_bucket_reason(const struct sched_request *req, size_t b, char *buf, size_t len)
{
	static const char *const text[SCHED_REJECT_KINDS] = {
		[SCHED_REJECT_STATUS_DEGRADED] = "status degraded",
		[SCHED_REJECT_STATUS_UNHEALTHY] = "status unhealthy",
		[SCHED_REJECT_CORDONED] = "cordoned",
		[SCHED_REJECT_DRAINING] = "draining",
		[SCHED_REJECT_POLICY_MEMORY] = "memory above policy cap",
		[SCHED_REJECT_MEASURED] = "measured usage above capacity",
		[SCHED_REJECT_CPU] = "insufficient cpu",
		[SCHED_REJECT_MEMORY] = "insufficient memory",
	};
	size_t ncons = req->constraints ? req->constraints->n : 0;
	size_t ncontracts = req->contracts ? req->contracts->n : 0;
	enum sched_reject r;
	if (b < SCHED_REJECT_LABEL) {
		r = (enum sched_reject)b;
	} else if (b < SCHED_REJECT_LABEL + ncons) {
		const struct kv *c = &req->constraints->items[b - SCHED_REJECT_LABEL];
		snprintf(buf, len, "label %s=%s required", c->key, c->value);
		return SCHED_REJECT_LABEL;
	} else if (b < SCHED_REJECT_LABEL + ncons + ncontracts) {
		snprintf(buf, len, "capability denied: %s", req->contracts->items[b - SCHED_REJECT_LABEL - ncons]);
		return SCHED_REJECT_CAPABILITY;
	} else {
		r = (enum sched_reject)(SCHED_REJECT_POLICY_MEMORY + (b - SCHED_REJECT_LABEL - ncons - ncontracts));
	}
	snprintf(buf, len, "%s", text[r]);
	return r;
}

/* {node_id, region, candidate, score, reason, chosen}, as the per-node list and
 * the candidates show a node. */
static void sched_write_node(struct jw *w, const struct sched_explainer *x, const struct model_node *n)
{
	const struct sched_request *req = x->req;
	char reason[SCHED_REASON_MAX];
	size_t which = 0;
	enum sched_reject r = sched_filter(req, n, &which);
	bool chosen = sched_nodeset_has(&x->chosen, n);
	bool known = sched_known_capacity(n);
	int64_t score = sched_score(n);
	if (r != SCHED_FITS)
		sched_reason(req, n, r, which, reason, sizeof(reason));
	else if (chosen)
		snprintf(reason, sizeof(reason), "chosen");
	else if (x->pref_has_candidate && strcmp(n->spec.region, x->pref) != 0)
		snprintf(reason, sizeof(reason), "not in preferred region");
	else if (known)
		snprintf(reason, sizeof(reason), "candidate (score %" PRId64 ")", score);
	else
		snprintf(reason, sizeof(reason), "candidate (capacity unknown)");
	jw_obj(w);
	jw_key(w, "node_id");
	jw_str(w, n->spec.id);
	jw_key(w, "region");
	jw_str(w, n->spec.region);
	jw_key(w, "candidate");
	jw_bool(w, r == SCHED_FITS);
	jw_key(w, "score");
	if (known)
		jw_int(w, score);
	else
		jw_null(w);
	jw_key(w, "reason");
	jw_str(w, reason);
	jw_key(w, "chosen");
	jw_bool(w, chosen);
	jw_obj_end(w);
}

static int sched_nodeset_init(struct sched_nodeset *s, struct model_node *const *nodes, size_t n,
			      const struct sched_choice *choices)
{
	s->v = NULL;
	s->n = 0;
	if (n == 0)
		return 0;
	if ((s->v = malloc(n * sizeof(*s->v))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++)
		s->v[i] = nodes ? nodes[i] : choices[i].node;
	qsort(s->v, n, sizeof(*s->v), sched_cmp_addr);
	s->n = n;
	return 0;
}

/* "3/7 nodes fit: 3 label pool=lab required, 1 cordoned" into w as one string. */
static void sched_write_summary(struct jw *w, const struct sched_request *req, size_t total, size_t fit,
				const size_t *count, const size_t *order, size_t norder)
{
	struct jw t;
	char buf[SCHED_REASON_MAX + 32];
	jw_init(&t);
	int k = snprintf(buf, sizeof(buf), "%zu/%zu nodes fit", fit, total);
	jw_raw(&t, buf, (size_t)k);
	for (size_t i = 0; i < norder; i++) {
		char reason[SCHED_REASON_MAX];
		sched_bucket_reason(req, order[i], reason, sizeof(reason));
		k = snprintf(buf, sizeof(buf), "%s%zu %s", i ? ", " : ": ", count[order[i]], reason);
		jw_raw(&t, buf, (size_t)k);
	}
	char *text = jw_take(&t, NULL);
	if (text == NULL)
		w->oom = true;
	else
		jw_str(w, text);
	free(text);
}

/* The first replica's choice from the ranking: the planner's pick for one replica,
 * without walking the score trees again (at 38,000 nodes of which few fit, that
 * walk took longer than the counting pass). tests/unit/test_sched.c checks it
 * against sched_place. */
static struct sched_choice sched_choice_of(const struct sched_explainer *x, const struct sched_rank *best)
{
	bool rr = x->req->strategy == STRATEGY_ROUND_ROBIN || best->tier >= 4;
	return (struct sched_choice){
		.node = (struct model_node *)best->n,
		.score = sched_score(best->n),
		.round_robin = rr,
		.other_region = !rr && x->pref && strcmp(best->n->spec.region, x->pref) != 0,
	};
}

int sched_explain(struct model *m, const struct sched_request *req, const struct sched_explain_opts *o,
		  struct jw *w)
{
	size_t count = req->count > 0 ? (size_t)req->count : 0;
	size_t ncons = req->constraints ? req->constraints->n : 0;
	size_t ncontracts = req->contracts ? req->contracts->n : 0;
	size_t nbuckets = SCHED_REJECT_KINDS - 2 + ncons + ncontracts; /* see sched_bucket */
	struct sched_explainer x = {
		.m = m,
		.req = req,
		.pref = req->preferred_region && req->preferred_region[0] ? req->preferred_region : NULL,
	};
	struct sched_choice *out = calloc(count ? count : 1, sizeof(*out));
	size_t *tally = calloc(nbuckets, sizeof(*tally)), *order = calloc(nbuckets, sizeof(*order));
	int ret = -1;

	if (!out || !tally || !order || sched_nodeset_init(&x.holding, req->holding, req->nholding, NULL) != 0)
		goto done;

	/* The one pass over every node: count rejections, keep the best candidates.
	 * The map, not the id tree: walking the tree cost 2.5 times as much (a cache
	 * miss per link). */
	struct sched_rank best[SCHED_EXPLAIN_CANDIDATES];
	size_t nbest = 0, fit = 0, pos = 0;
	const struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos))) {
		size_t which = 0;
		enum sched_reject r = sched_filter(req, n, &which);
		if (r != SCHED_FITS) {
			tally[sched_bucket(req, r, which)]++;
			continue;
		}
		fit++;
		if (x.pref && strcmp(n->spec.region, x.pref) == 0)
			x.pref_has_candidate = true;
		struct sched_rank rk = sched_rank_of(&x, n);
		if (nbest == SCHED_EXPLAIN_CANDIDATES && sched_rank_cmp(&rk, &best[nbest - 1]) >= 0)
			continue;
		size_t i = nbest < SCHED_EXPLAIN_CANDIDATES ? nbest++ : nbest - 1;
		for (; i > 0 && sched_rank_cmp(&rk, &best[i - 1]) < 0; i--)
			best[i] = best[i - 1];
		best[i] = rk;
	}

	int rc = SCHED_OK;
	if (count == 1 && nbest > 0)
		out[0] = sched_choice_of(&x, &best[0]);
	else if (count == 1)
		rc = SCHED_INSUFFICIENT;
	else
		rc = sched_place(m, req, out, NULL);
	if (rc == SCHED_NOMEM)
		goto done;
	size_t nchosen = rc == SCHED_OK ? count : 0;
	if (sched_nodeset_init(&x.chosen, NULL, nchosen, out) != 0)
		goto done;
	if (req->strategy != STRATEGY_RESOURCES)
		x.pref_has_candidate = false;

	/* Rejections by how many nodes, then in filter order. */
	size_t norder = 0;
	for (size_t b = 0; b < nbuckets; b++) {
		if (tally[b] == 0)
			continue;
		size_t i = norder++;
		for (; i > 0 && tally[order[i - 1]] < tally[b]; i--)
			order[i] = order[i - 1];
		order[i] = b;
	}

	jw_obj(w);
	jw_key(w, "placements");
	jw_arr(w);
	for (size_t i = 0; i < nchosen; i++)
		jw_str(w, out[i].node->spec.id);
	jw_arr_end(w);
	jw_key(w, "chosen");
	jw_arr(w);
	for (size_t i = 0; i < nchosen; i++) {
		jw_obj(w);
		jw_key(w, "node_id");
		jw_str(w, out[i].node->spec.id);
		jw_key(w, "region");
		jw_str(w, out[i].node->spec.region);
		jw_key(w, "score");
		if (sched_known_capacity(out[i].node))
			jw_int(w, out[i].score);
		else
			jw_null(w);
		jw_key(w, "round_robin");
		jw_bool(w, out[i].round_robin);
		jw_key(w, "other_region");
		jw_bool(w, out[i].other_region);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "summary");
	sched_write_summary(w, req, m->nodes.n, fit, tally, order, norder);
	jw_key(w, "nodes_total");
	jw_uint(w, m->nodes.n);
	jw_key(w, "nodes_fit");
	jw_uint(w, fit);
	jw_key(w, "rejected");
	jw_arr(w);
	for (size_t i = 0; i < norder; i++) {
		char reason[SCHED_REASON_MAX];
		enum sched_reject r = sched_bucket_reason(req, order[i], reason, sizeof(reason));
		jw_obj(w);
		jw_key(w, "code");
		jw_str(w, sched_reject_codes[r]);
		jw_key(w, "reason");
		jw_str(w, reason);
		jw_key(w, "nodes");
		jw_uint(w, tally[order[i]]);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_key(w, "candidates");
	jw_arr(w);
	for (size_t i = 0; i < nbest; i++)
		sched_write_node(w, &x, best[i].n);
	jw_arr_end(w);
	if (o && o->nodes) {
		/* The page: a reason text only for the nodes shown. */
		const struct otree *every = &m->sched.every;
		struct otree_link *l = o->after[0] ? otree_upper_bound(every, o->after, sched_keycmp_every)
						   : otree_first(every);
		const struct model_node *last = NULL;
		jw_key(w, "nodes");
		jw_arr(w);
		for (size_t i = 0; l && i < o->limit; i++, l = otree_next(l)) {
			last = SCHED_NODE(l, by_every);
			sched_write_node(w, &x, last);
		}
		jw_arr_end(w);
		jw_key(w, "next");
		jw_str(w, l && last ? last->spec.id : NULL);
	}
	if (rc == SCHED_INSUFFICIENT) {
		jw_key(w, "error");
		jw_obj(w);
		jw_key(w, "code");
		jw_str(w, "insufficient_resources");
		jw_key(w, "message");
		jw_str(w, "actor scale failed: insufficient resources");
		jw_obj_end(w);
	}
	jw_obj_end(w);
	ret = w->oom ? -1 : 0;
done:
	free(x.chosen.v);
	free(x.holding.v);
	free(order);
	free(tally);
	free(out);
	return ret;
}
