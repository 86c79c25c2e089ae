/* workload — see workload.h. */
#include "workload.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "model.h"
#include "sched.h"
#include "spec.h"

/* A test that cannot build its input stops (TAP's "Bail out!"). */
static void wl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void wl_fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("Bail out! workload: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	fflush(stdout);
	exit(1);
}

void workload_init(struct workload *w, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->state = seed;
}

/* splitmix64 */
static uint64_t rnd(struct workload *w)
{
	uint64_t z = (w->state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

unsigned workload_below(struct workload *w, unsigned n)
{
	return (unsigned)(rnd(w) % n);
}

#define below workload_below

static const char *const regions[] = {"eu", "us", "ap"};
static const char *const contracts[] = {"wasmcloud:httpserver", "wasmcloud:keyvalue", "acme:blob"};

static const char *node_key(const void *v)
{
	return ((const struct model_node *)v)->spec.id;
}
static const char *actor_key(const void *v)
{
	return ((const struct model_actor *)v)->spec.id;
}
static const char *provider_key(const void *v)
{
	return ((const struct model_provider *)v)->spec.id;
}
static const char *link_key(const void *v)
{
	return ((const struct model_link *)v)->spec.id;
}
static const char *policy_key(const void *v)
{
	return ((const struct model_policy *)v)->spec.policy_id;
}

/* A random object of h, chosen among them in id order (a choice must not depend
 * on hash order, which differs between a replica that applied and one that
 * restored). NULL when h is empty. */
static void *pick(struct workload *w, const struct hmap *h, const char *(*key)(const void *))
{
	if (h->n == 0)
		return NULL;
	void **v = malloc(h->n * sizeof(*v));
	size_t n = 0, pos = 0;
	void *x;
	if (v == NULL)
		wl_fail("out of memory");
	while ((x = hmap_next(h, &pos)) != NULL)
		v[n++] = x;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(key(v[j - 1]), key(v[j])) > 0; j--) {
			void *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	x = v[below(w, (unsigned)n)];
	free(v);
	return x;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		wl_fail("out of memory");
	return d;
}

static void spec_or_fail(int rc, const struct spec_err *err, const char *what)
{
	if (rc != 0)
		wl_fail("test built an invalid %s: %s", what, err->message);
}

static void gen_node(struct workload *w, struct entry *e, const char *id, int flag)
{
	static const int64_t cpu[] = {2000, 4000, 8000}, mem[] = {4096, 8192, 16384};
	json_t *j = json_pack("{s:s,s:s,s:{s:s},s:I,s:I,s:I,s:I,s:I}", "id", id, "region", regions[below(w, 3)],
			      "labels", "tier", below(w, 2) ? "a" : "b", "cpu_capacity", (json_int_t)cpu[below(w, 3)],
			      "memory_mb", (json_int_t)mem[below(w, 3)], "cpu_used", (json_int_t)(below(w, 5) * 100),
			      "memory_used_mb", (json_int_t)(below(w, 4) * 256), "actor_count",
			      (json_int_t)below(w, 3));
	struct spec_err err;
	spec_or_fail(spec_node_from_json(j, &e->node, &err), &err, "node");
	json_decref(j);
	e->op = ENTRY_NODE_PUT;
	e->flag = flag;
}

static void set_plan(struct entry *e, const struct sched_choice *ch, size_t n, const char *cursor)
{
	e->placements = calloc(n ? n : 1, sizeof(char *));
	if (e->placements == NULL)
		wl_fail("out of memory");
	for (size_t i = 0; i < n; i++)
		e->placements[e->nplacements++] = xstrdup(ch[i].node->spec.id);
	if (cursor[0])
		e->rr_cursor = xstrdup(cursor);
}

/* An actor with its replicas planned by sched_place on the leader's model, as
 * ops.c plans a create. -1 when they do not fit. */
static int gen_actor_create(struct workload *w, struct model *m, struct entry *e)
{
	static const int64_t cpu[] = {100, 250, 500}, mem[] = {128, 256, 512};
	char id[32];
	snprintf(id, sizeof(id), "a%u", ++w->ids);
	json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:s}", "id", id, "module", "ghcr.io/lattice/echo:1",
			      "cpu_required", (json_int_t)cpu[below(w, 3)], "memory_required_mb",
			      (json_int_t)mem[below(w, 3)], "replicas", (json_int_t)(1 + below(w, 3)), "strategy",
			      below(w, 3) == 0 ? "round_robin" : "resources");
	if (below(w, 3) == 0)
		json_object_set_new(j, "preferred_region", json_string(regions[below(w, 3)]));
	if (below(w, 4) == 0)
		json_object_set_new(j, "constraints", json_pack("{s:s}", "tier", "a"));
	if (below(w, 3) == 0)
		json_object_set_new(j, "contracts", json_pack("[s]", contracts[below(w, 3)]));
	struct spec_err err;
	spec_or_fail(spec_actor_from_json(j, &e->actor, &err), &err, "actor");
	json_decref(j);
	e->op = ENTRY_ACTOR_CREATE;
	struct actor_spec *s = &e->actor;
	struct sched_request req = {.actor_id = s->id,
				    .cpu_required = s->cpu_required,
				    .memory_required_mb = s->memory_required_mb,
				    .preferred_region = s->preferred_region,
				    .constraints = &s->constraints,
				    .contracts = &s->contracts,
				    .strategy = s->strategy,
				    .count = s->replicas};
	struct sched_choice ch[4];
	char cursor[SPEC_ID_MAX + 1] = "";
	if (sched_place(m, &req, ch, cursor) != SCHED_OK)
		return -1;
	set_plan(e, ch, (size_t)s->replicas, cursor);
	return 0;
}

/* A patch of replicas, cpu or memory; new replicas planned next to the ones
 * the actor keeps (apply re-checks and may refuse: that is part of the test). */
static int gen_actor_update(struct workload *w, struct model *m, struct entry *e)
{
	struct model_actor *a = pick(w, &m->actors, actor_key);
	if (a == NULL)
		return -1;
	struct actor_patch *p = &e->patch;
	switch (below(w, 3)) {
	case 0: p->has_replicas = true, p->replicas = 1 + below(w, 4); break;
	case 1: p->has_cpu_required = true, p->cpu_required = 50 * (1 + below(w, 10)); break;
	default: p->has_memory_required_mb = true, p->memory_required_mb = 64 * (1 + below(w, 8)); break;
	}
	int64_t nrep = p->has_replicas ? p->replicas : (int64_t)a->nplacements;
	if ((!p->has_replicas || nrep == (int64_t)a->nplacements) &&
	    (!p->has_cpu_required || p->cpu_required == a->spec.cpu_required) &&
	    (!p->has_memory_required_mb || p->memory_required_mb == a->spec.memory_required_mb))
		return -1; /* changes nothing: ops.c proposes no entry */
	e->op = ENTRY_ACTOR_UPDATE;
	e->flag = ENTRY_UPDATE_KEEP_UNCHANGED;
	e->target = xstrdup(a->spec.id);
	int64_t add = nrep - (int64_t)a->nplacements;
	if (add <= 0)
		return 0;
	struct strlist con;
	if (model_actor_contracts(m, a, &con) != 0)
		wl_fail("out of memory");
	struct model_node *hold[8];
	for (size_t i = 0; i < a->nplacements; i++)
		hold[i] = a->placements[i].node;
	struct sched_request req = {.actor_id = a->spec.id,
				    .cpu_required = p->has_cpu_required ? p->cpu_required : a->spec.cpu_required,
				    .memory_required_mb = p->has_memory_required_mb ? p->memory_required_mb
										   : a->spec.memory_required_mb,
				    .preferred_region = a->spec.preferred_region,
				    .constraints = &a->spec.constraints,
				    .contracts = &con,
				    .strategy = a->spec.strategy,
				    .count = add,
				    .holding = hold,
				    .nholding = a->nplacements};
	struct sched_choice ch[4];
	char cursor[SPEC_ID_MAX + 1] = "";
	int rc = sched_place(m, &req, ch, cursor);
	strlist_free(&con);
	if (rc != SCHED_OK)
		return -1;
	set_plan(e, ch, (size_t)add, cursor);
	return 0;
}

/* A drain planned the way ops.c plans one: every replica on the node goes where
 * placement puts it with the node cordoned, earlier moves counted. */
static int gen_drain(struct workload *w, struct model *m, struct entry *e)
{
	struct model_node *n = pick(w, &m->nodes, node_key);
	if (n == NULL)
		return -1;
	size_t na = m->actors.n, k = 0, pos = 0;
	struct model_actor **as = calloc(na + 1, sizeof(*as)), *a;
	struct entry_move *mv = calloc((size_t)n->nplacements + 1, sizeof(*mv));
	if (as == NULL || mv == NULL)
		wl_fail("out of memory");
	while ((a = hmap_next(&m->actors, &pos)) != NULL)
		as[k++] = a;
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp(as[j - 1]->spec.id, as[j]->spec.id) > 0; j--) {
			a = as[j];
			as[j] = as[j - 1];
			as[j - 1] = a;
		}
	bool was = n->cordoned;
	n->cordoned = true;
	sched_index_update(&m->sched, n);
	size_t nmv = 0;
	for (size_t ai = 0; ai < k; ai++) {
		a = as[ai];
		struct model_node *hold[16];
		size_t nh = 0;
		for (size_t i = 0; i < a->nplacements; i++)
			if (a->placements[i].node != n)
				hold[nh++] = a->placements[i].node;
		for (size_t i = 0; i < a->nplacements; i++) {
			if (a->placements[i].node != n)
				continue;
			struct strlist con;
			if (model_actor_contracts(m, a, &con) != 0)
				wl_fail("out of memory");
			struct sched_request req = {.actor_id = a->spec.id,
						    .cpu_required = a->spec.cpu_required,
						    .memory_required_mb = a->spec.memory_required_mb,
						    .preferred_region = a->spec.preferred_region,
						    .constraints = &a->spec.constraints,
						    .contracts = &con,
						    .strategy = a->spec.strategy,
						    .count = 1,
						    .holding = hold,
						    .nholding = nh};
			struct sched_choice ch;
			char cursor[SPEC_ID_MAX + 1] = "";
			int rc = sched_place(m, &req, &ch, cursor);
			strlist_free(&con);
			if (rc != SCHED_OK)
				continue; /* stays where it is */
			mv[nmv].actor_id = xstrdup(a->spec.id);
			mv[nmv].instance = (int64_t)i;
			mv[nmv].to_node = xstrdup(ch.node->spec.id);
			nmv++;
			model_node_account(m, ch.node, a->spec.cpu_required, a->spec.memory_required_mb, +1);
			hold[nh++] = ch.node;
		}
	}
	/* Undo the simulation. */
	for (size_t i = nmv; i-- > 0;) {
		a = model_actor_get(m, mv[i].actor_id);
		model_node_account(m, model_node_get(m, mv[i].to_node), a->spec.cpu_required,
				   a->spec.memory_required_mb, -1);
	}
	n->cordoned = was;
	sched_index_update(&m->sched, n);
	free(as);
	e->op = ENTRY_NODE_DRAIN;
	e->target = xstrdup(n->spec.id);
	e->moves = mv;
	e->nmoves = nmv;
	return 0;
}

static int gen_provider(struct workload *w, struct model *m, struct entry *e)
{
	char id[32];
	snprintf(id, sizeof(id), "p%u", ++w->ids);
	json_t *nodes = json_array();
	struct model_node *n1 = below(w, 3) ? pick(w, &m->nodes, node_key) : NULL;
	struct model_node *n2 = n1 && below(w, 2) ? pick(w, &m->nodes, node_key) : NULL;
	if (n1 != NULL)
		json_array_append_new(nodes, json_string(n1->spec.id));
	if (n2 != NULL && n2 != n1)
		json_array_append_new(nodes, json_string(n2->spec.id));
	json_t *j = json_pack("{s:s,s:s,s:s,s:o}", "id", id, "contract_id", contracts[below(w, 3)], "image",
			      "ghcr.io/lattice/provider:2", "nodes", nodes);
	struct spec_err err;
	spec_or_fail(spec_provider_from_json(j, &e->provider, &err), &err, "provider");
	json_decref(j);
	e->op = ENTRY_PROVIDER_CREATE;
	return 0;
}

static int gen_link(struct workload *w, struct model *m, struct entry *e)
{
	struct model_actor *a = pick(w, &m->actors, actor_key);
	struct model_provider *p = pick(w, &m->providers, provider_key);
	if (a == NULL || p == NULL)
		return -1;
	char id[32];
	snprintf(id, sizeof(id), "l%u", ++w->ids);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:{s:s},s:I}", "id", id, "actor_id", a->spec.id, "provider_id",
			      p->spec.id, "contract_id", p->spec.contract_id, "link_name",
			      below(w, 2) ? "default" : "backup", "values", "bucket", "b1", "retry_count",
			      (json_int_t)below(w, 5));
	struct spec_err err;
	spec_or_fail(spec_link_from_json(j, &e->link, &err), &err, "link");
	json_decref(j);
	e->op = ENTRY_LINK_CREATE;
	return 0;
}

static int gen_policy(struct workload *w, struct model *m, struct entry *e)
{
	struct model_policy *old = below(w, 2) ? pick(w, &m->policies, policy_key) : NULL;
	char id[32];
	if (old)
		snprintf(id, sizeof(id), "%s", old->spec.policy_id);
	else
		snprintf(id, sizeof(id), "pol%u", ++w->ids);
	/* Mostly one region's nodes, mostly denying acme:blob: links of the other
	 * contracts stay possible on most actors. */
	json_t *j = json_pack("{s:s,s:[s]}", "policy_id", id, "denied_contracts",
			      contracts[below(w, 4) ? 2 : below(w, 2)]);
	if (below(w, 2))
		json_object_set_new(j, "max_actor_memory_mb", json_integer(256 * (1 + below(w, 4))));
	if (below(w, 5))
		json_object_set_new(j, "selector", json_pack("{s:[s]}", "regions", regions[below(w, 3)]));
	struct spec_err err;
	spec_or_fail(spec_policy_from_json(j, &e->policy, &err), &err, "policy");
	json_decref(j);
	e->op = ENTRY_POLICY_PUT;
	e->flag = old ? 0 : 1;
	return 0;
}

static int gen_target(struct entry *e, enum entry_op op, const char *id)
{
	if (id == NULL)
		return -1;
	e->op = op;
	e->target = xstrdup(id);
	return 0;
}

/* One random entry for model m (the proposer's). Returns 0, or -1 when the
 * chosen kind does not apply now (the caller draws again). */
static int gen_entry(struct workload *w, struct model *m, struct entry *e)
{
	char id[32];
	memset(e, 0, sizeof(*e));
	unsigned d = m->nodes.n < 4 ? 0 : below(w, 100);
	if (d < 10) { /* register a node */
		snprintf(id, sizeof(id), "n%u", ++w->ids);
		gen_node(w, e, id, 0);
		return 0;
	}
	if (d < 14) { /* re-register one (flag 1: update in place) */
		struct model_node *n = pick(w, &m->nodes, node_key);
		gen_node(w, e, n->spec.id, 1);
		return 0;
	}
	if (d < 20) {
		struct model_node *n = pick(w, &m->nodes, node_key);
		e->flag = n->cordoned ? 0 : 1;
		return gen_target(e, ENTRY_NODE_FLAGS, n->spec.id);
	}
	if (d < 22)
		return gen_drain(w, m, e);
	if (d < 24) {
		struct model_node *n = pick(w, &m->nodes, node_key);
		return gen_target(e, ENTRY_NODE_DELETE, n->nplacements == 0 || below(w, 4) == 0 ? n->spec.id : NULL);
	}
	if (d < 52)
		return gen_actor_create(w, m, e);
	if (d < 66)
		return gen_actor_update(w, m, e);
	if (d < 74) {
		struct model_actor *a = pick(w, &m->actors, actor_key);
		return gen_target(e, ENTRY_ACTOR_DELETE, a ? a->spec.id : NULL);
	}
	if (d < 80)
		return gen_provider(w, m, e);
	if (d < 82) {
		struct model_provider *p = pick(w, &m->providers, provider_key);
		return gen_target(e, ENTRY_PROVIDER_DELETE, p ? p->spec.id : NULL);
	}
	if (d < 90)
		return gen_link(w, m, e);
	if (d < 93) {
		struct model_link *l = pick(w, &m->links, link_key);
		return gen_target(e, ENTRY_LINK_DELETE, l ? l->spec.id : NULL);
	}
	return gen_policy(w, m, e);
}

void workload_node(struct workload *w, struct entry *e, const char *id, int flag)
{
	char gen[32];
	memset(e, 0, sizeof(*e));
	if (id == NULL) {
		snprintf(gen, sizeof(gen), "n%u", ++w->ids);
		id = gen;
	}
	gen_node(w, e, id, flag);
}

void workload_entry(struct workload *w, struct model *m, struct entry *e)
{
	for (int tries = 0; tries < 20; tries++) {
		if (gen_entry(w, m, e) == 0)
			return;
		entry_release(e);
	}
	workload_node(w, e, NULL, 0); /* nothing else applies now: a new node always does */
}
