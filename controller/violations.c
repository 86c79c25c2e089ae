#include "violations.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "policy.h"

enum vkind { V_MEMORY, V_DENIED, V_NOT_ALLOWED };

static const char *const vkind_names[] = {"memory", "contract_denied", "contract_not_allowed"};

struct viol {
	const struct model_actor *actor; /* borrowed */
	size_t instance;
	enum vkind kind;
	const char *contract; /* borrowed; NULL for memory */
	const char *link_id;  /* borrowed; NULL: declared by the actor */
};

struct vset {
	struct viol *v;
	size_t n, cap;
	bool oom;
};

static void add(struct vset *s, struct viol v)
{
	if (s->oom)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		struct viol *nv = realloc(s->v, cap * sizeof(*nv));
		if (nv == NULL) {
			s->oom = true;
			return;
		}
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
}

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int cmp_viol(const void *pa, const void *pb)
{
	const struct viol *a = pa, *b = pb;
	int c = strcmp(a->actor->spec.id, b->actor->spec.id);
	if (c)
		return c;
	if (a->instance != b->instance)
		return a->instance < b->instance ? -1 : 1;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	if ((c = cmp_str(a->contract, b->contract)) != 0)
		return c;
	return cmp_str(a->link_id, b->link_id);
}

/* A contract the actor holds on a node the policy covers. */
static void check_contract(struct vset *s, const struct policy_spec *p, const struct model_actor *a, size_t i,
			   const char *contract, const char *link_id)
{
	if (strlist_has(&p->denied_contracts, contract))
		add(s, (struct viol){a, i, V_DENIED, contract, link_id});
	else if (p->allowed_contracts.n && !strlist_has(&p->allowed_contracts, contract))
		add(s, (struct viol){a, i, V_NOT_ALLOWED, contract, link_id});
}

static void render_item(struct jw *w, const struct viol *v, const struct model_policy *pol)
{
	const struct model_node *n = v->actor->placements[v->instance].node;
	char msg[512];
	if (v->kind == V_MEMORY)
		snprintf(msg, sizeof(msg), "needs %lld MiB; the policy caps actors at %lld MiB on node %s",
			 (long long)v->actor->spec.memory_required_mb, (long long)pol->spec.max_actor_memory_mb,
			 n->spec.id);
	else
		snprintf(msg, sizeof(msg), "holds contract %s%s%s, which the policy %s on node %s", v->contract,
			 v->link_id ? " through link " : " (declared)", v->link_id ? v->link_id : "",
			 v->kind == V_DENIED ? "denies" : "does not allow", n->spec.id);
	jw_obj(w);
	jw_key(w, "kind");
	jw_str(w, vkind_names[v->kind]);
	jw_key(w, "actor_id");
	jw_str(w, v->actor->spec.id);
	jw_key(w, "instance");
	jw_int(w, (int64_t)v->instance);
	jw_key(w, "node_id");
	jw_str(w, n->spec.id);
	jw_key(w, "contract_id");
	jw_str(w, v->contract);
	jw_key(w, "link_id");
	jw_str(w, v->link_id);
	jw_key(w, "message");
	jw_str(w, msg);
	jw_obj_end(w);
}

int violations_render(const struct model *m, const char *policy_id, size_t limit, char **out)
{
	const struct model_policy *pol = hmap_get(&m->policies, policy_id);
	if (pol == NULL)
		return -1;
	const struct policy_spec *p = &pol->spec;
	struct vset s = {0};
	size_t pos = 0;
	const struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL) {
		for (size_t i = 0; i < a->nplacements; i++) {
			const struct model_node *n = a->placements[i].node;
			if (n == NULL || !policy_covers(p, n->spec.region, &n->spec.labels))
				continue;
			if (p->max_actor_memory_mb > 0 && a->spec.memory_required_mb > p->max_actor_memory_mb)
				add(&s, (struct viol){a, i, V_MEMORY, NULL, NULL});
			for (size_t c = 0; c < a->spec.contracts.n; c++)
				check_contract(&s, p, a, i, a->spec.contracts.items[c], NULL);
		}
	}
	/* Links: each holds its contract for its actor's every instance. */
	pos = 0;
	const struct model_link *l;
	while ((l = hmap_next(&m->links, &pos)) != NULL) {
		a = model_actor_get(m, l->spec.actor_id);
		for (size_t i = 0; a && i < a->nplacements; i++) {
			const struct model_node *n = a->placements[i].node;
			if (n != NULL && policy_covers(p, n->spec.region, &n->spec.labels))
				check_contract(&s, p, a, i, l->spec.contract_id, l->spec.id);
		}
	}
	if (s.oom) {
		free(s.v);
		return -2;
	}
	if (s.n > 1)
		qsort(s.v, s.n, sizeof(*s.v), cmp_viol);
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "policy_id");
	jw_str(&w, p->policy_id);
	jw_key(&w, "version");
	jw_int(&w, pol->version);
	jw_key(&w, "total");
	jw_uint(&w, s.n);
	jw_key(&w, "items");
	jw_arr(&w);
	for (size_t i = 0; i < s.n && i < limit; i++)
		render_item(&w, &s.v[i], pol);
	jw_arr_end(&w);
	jw_obj_end(&w);
	free(s.v);
	*out = jw_take(&w, NULL);
	jw_free(&w);
	return *out ? 0 : -2;
}
