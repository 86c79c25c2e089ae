/* sched.c — placement decisions over an index of schedulable nodes.
 *
 * Index: every schedulable node (healthy, not cordoned, not draining) is in the
 * by-id tree. Those with a known capacity are also in their region's tree and in
 * the lattice-wide tree, both ordered by (score, id), and have sched.score >= 0;
 * a node with unknown capacity has no score (sched.score == -1) and is only in the
 * by-id tree, so all.n < by_id.n tells whether any exist.
 *
 * A resources decision walks a (score, id) tree from the lowest and takes the first
 * node passing the remaining filters; the lowest-scored nodes are the emptiest, so
 * the walk is usually short. */
#include "sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void sched_index_remove(struct sched_index *ix, struct model_node *n)
{
	if (!n->sched.indexed)
		return;
	if (n->sched.score >= 0)
		sched_unfile_score(ix, n, NULL);
	otree_remove(&ix->by_id, &n->sched.by_id);
	n->sched.indexed = false;
	n->sched.score = 0;
}

int sched_index_update(struct sched_index *ix, struct model_node *n)
{
	if (!sched_schedulable(n)) {
		sched_index_remove(ix, n);
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

#define SCHED_FAIL(...)                                                                            \
	do {                                                                                       \
		if (reason && reasonlen)                                                           \
			snprintf(reason, reasonlen, __VA_ARGS__);                                  \
		return false;                                                                      \
	} while (0)

/* The full filter; reason may be NULL when only the answer matters (the hot path). */
static bool sched_node_ok(const struct sched_request *req, const struct model_node *n, char *reason,
			  size_t reasonlen)
{
	if (n->status != NODE_HEALTHY)
		SCHED_FAIL("status %s", sched_status_name(n->status));
	if (n->cordoned)
		SCHED_FAIL("cordoned");
	if (n->draining)
		SCHED_FAIL("draining");
	if (req->constraints) {
		for (size_t i = 0; i < req->constraints->n; i++) {
			const struct kv *c = &req->constraints->items[i];
			const char *v = kvlist_get(&n->spec.labels, c->key);
			if (!v || strcmp(v, c->value) != 0)
				SCHED_FAIL("label %s=%s required", c->key, c->value);
		}
	}
	if (n->npolicies) {
		if (req->contracts)
			for (size_t i = 0; i < req->contracts->n; i++)
				if (!policy_allows_contract(n, req->contracts->items[i]))
					SCHED_FAIL("capability denied: %s", req->contracts->items[i]);
		int64_t cap = policy_memory_cap(n);
		if (cap > 0 && req->memory_required_mb > cap)
			SCHED_FAIL("memory %" PRId64 " MiB above policy cap %" PRId64 " MiB",
				   req->memory_required_mb, cap);
	}
	if ((n->spec.cpu_capacity > 0 && n->cpu_measured > n->spec.cpu_capacity) ||
	    (n->spec.memory_mb > 0 && n->memory_measured_mb > n->spec.memory_mb))
		SCHED_FAIL("measured usage above capacity");
	if (sched_known_capacity(n)) {
		int64_t cpu_free = n->spec.cpu_capacity - n->cpu_used;
		int64_t mem_free = n->spec.memory_mb - n->memory_used_mb;
		if (cpu_free < req->cpu_required)
			SCHED_FAIL("insufficient cpu: %" PRId64 " free, %" PRId64 " required", cpu_free,
				   req->cpu_required);
		if (mem_free < req->memory_required_mb)
			SCHED_FAIL("insufficient memory: %" PRId64 " free, %" PRId64 " required",
				   mem_free, req->memory_required_mb);
	}
	return true;
}

bool sched_check(const struct model *m, const struct sched_request *req, const struct model_node *n,
		 char *reason, size_t reasonlen)
{
	(void)m;
	bool okay = sched_node_ok(req, n, reason, reasonlen);
	if (okay && reason && reasonlen)
		reason[0] = '\0';
	return okay;
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
		if ((!unknown_only || !sched_known_capacity(n)) && sched_node_ok(p->req, n, NULL, 0)) {
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
			if (!sched_node_ok(p->req, n, NULL, 0))
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
		if (!sched_node_ok(p->req, n, NULL, 0))
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

static int sched_cmp_node_id(const void *a, const void *b)
{
	const struct model_node *x = *(struct model_node *const *)a;
	const struct model_node *y = *(struct model_node *const *)b;
	return strcmp(x->spec.id, y->spec.id);
}

static json_t *sched_explain_node(const struct model *m, const struct sched_request *req,
				  const struct model_node *n, bool chosen, bool pref_has_candidate)
{
	char reason[256];
	bool cand = sched_check(m, req, n, reason, sizeof(reason));
	bool known = sched_known_capacity(n);
	int64_t score = sched_score(n);
	if (cand) {
		if (chosen)
			snprintf(reason, sizeof(reason), "chosen");
		else if (pref_has_candidate && strcmp(n->spec.region, req->preferred_region) != 0)
			snprintf(reason, sizeof(reason), "not in preferred region");
		else if (known)
			snprintf(reason, sizeof(reason), "candidate (score %" PRId64 ")", score);
		else
			snprintf(reason, sizeof(reason), "candidate (capacity unknown)");
	}
	return json_pack("{s:s, s:s, s:b, s:o, s:s, s:b}", "node_id", n->spec.id, "region",
			 n->spec.region, "candidate", cand, "score",
			 known ? json_integer(score) : json_null(), "reason", reason, "chosen", chosen);
}

json_t *sched_explain(struct model *m, const struct sched_request *req)
{
	size_t count = req->count > 0 ? (size_t)req->count : 0, nn = m->nodes.n, k = 0;
	struct sched_choice *out = calloc(count ? count : 1, sizeof(*out));
	struct model_node **nodes = calloc(nn ? nn : 1, sizeof(*nodes));
	struct hmap chosen;
	json_t *res = NULL, *arr, *list;
	int rc = SCHED_NOMEM;

	hmap_init(&chosen);
	if (!out || !nodes)
		goto done;
	rc = sched_place(m, req, out, NULL);
	if (rc == SCHED_NOMEM)
		goto done;
	size_t nchosen = rc == SCHED_OK ? count : 0;
	for (size_t i = 0; i < nchosen; i++)
		if (hmap_put(&chosen, out[i].node->spec.id, out[i].node) != 0)
			goto done;

	struct model_node *n;
	size_t pos = 0;
	while ((n = hmap_next(&m->nodes, &pos)))
		nodes[k++] = n;
	qsort(nodes, k, sizeof(*nodes), sched_cmp_node_id);

	/* "not in preferred region" only when the preference could be honoured. */
	bool pref_has_candidate = false;
	if (req->strategy == STRATEGY_RESOURCES && req->preferred_region && req->preferred_region[0])
		for (size_t i = 0; i < k && !pref_has_candidate; i++)
			pref_has_candidate = strcmp(nodes[i]->spec.region, req->preferred_region) == 0 &&
					     sched_check(m, req, nodes[i], NULL, 0);

	res = json_object();
	if (!res || json_object_set_new(res, "placements", arr = json_array()) != 0 ||
	    json_object_set_new(res, "nodes", list = json_array()) != 0)
		goto fail;
	for (size_t i = 0; i < nchosen; i++)
		if (json_array_append_new(arr, json_string(out[i].node->spec.id)) != 0)
			goto fail;
	for (size_t i = 0; i < k; i++) {
		bool ch = hmap_get(&chosen, nodes[i]->spec.id) != NULL;
		if (json_array_append_new(list, sched_explain_node(m, req, nodes[i], ch,
								   pref_has_candidate)) != 0)
			goto fail;
	}
	if (rc == SCHED_INSUFFICIENT) {
		json_t *err = json_pack("{s:s, s:s}", "code", "insufficient_resources", "message",
					"actor scale failed: insufficient resources");
		if (json_object_set_new(res, "error", err) != 0)
			goto fail;
	}
	goto done;
fail:
	json_decref(res);
	res = NULL;
done:
	hmap_release(&chosen);
	free(nodes);
	free(out);
	return res;
}
