#include "evac.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"

static int cmp_id(const void *x, const void *y)
{
	const struct model_actor *a = *(struct model_actor *const *)x, *b = *(struct model_actor *const *)y;
	return strcmp(a->spec.id, b->spec.id);
}

static int cmp_priority(const void *x, const void *y)
{
	const struct model_actor *a = *(struct model_actor *const *)x, *b = *(struct model_actor *const *)y;
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority > b->spec.priority ? -1 : 1;
	return strcmp(a->spec.id, b->spec.id);
}

/* Why no node takes req: the dry run's summary ("0/12 nodes fit: 9 insufficient
 * cpu, 3 status unhealthy"). */
static void why_not(struct model *m, const struct sched_request *req, char *out, size_t len)
{
	struct sched_explain_opts o = {.nodes = false, .limit = 1};
	struct jw w;
	jw_init(&w);
	snprintf(out, len, "no node has room for it");
	if (sched_explain(m, req, &o, &w) == 0) {
		size_t n = 0;
		char *text = jw_take(&w, &n);
		json_t *j = text ? json_loadb(text, n, 0, NULL) : NULL;
		const char *s = json_string_value(json_object_get(j, "summary"));
		if (s)
			snprintf(out, len, "%s", s);
		json_decref(j);
		free(text);
	} else {
		jw_free(&w);
	}
}

void evac_plan_free(struct evac_plan *p)
{
	free(p->items);
	memset(p, 0, sizeof(*p));
}

int evac_plan(struct model *m, struct model_node *n, enum evac_order order, struct evac_plan *out)
{
	memset(out, 0, sizeof(*out));
	size_t cap = (size_t)n->nplacements, na = 0, pos = 0;
	struct evac_plan p = {calloc(cap ? cap : 1, sizeof(*p.items)), 0, 0};
	struct model_actor **actors = calloc(m->actors.n ? m->actors.n : 1, sizeof(*actors));
	if (p.items == NULL || actors == NULL) {
		free(p.items);
		free(actors);
		return -1;
	}
	struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL)
		for (size_t i = 0; i < a->nplacements; i++)
			if (a->placements[i].node == n) {
				actors[na++] = a;
				break;
			}
	qsort(actors, na, sizeof(*actors), order == EVAC_BY_PRIORITY ? cmp_priority : cmp_id);
	/* n takes nothing while its replicas look for a home. */
	bool was_cordoned = n->cordoned, was_draining = n->draining;
	n->cordoned = n->draining = true;
	int rc = sched_index_update(&m->sched, n);
	for (size_t ai = 0; rc == 0 && ai < na; ai++) {
		a = actors[ai];
		struct strlist contracts;
		if (model_actor_contracts(m, a, &contracts) != 0) {
			rc = -1;
			break;
		}
		struct sched_request req;
		sched_request_for(&a->spec, &contracts, &req);
		struct model_node *holding[2 * a->nplacements + 1];
		for (size_t i = 0; i < a->nplacements && p.n < cap; i++) {
			if (a->placements[i].node != n)
				continue;
			/* Avoid the nodes that hold a replica of a, or will after this plan. */
			size_t nh = 0;
			for (size_t h = 0; h < a->nplacements; h++)
				if (a->placements[h].node != n)
					holding[nh++] = a->placements[h].node;
			for (size_t k = 0; k < p.n; k++)
				if (p.items[k].actor == a && p.items[k].to)
					holding[nh++] = p.items[k].to;
			req.holding = holding;
			req.nholding = nh;
			struct evac_item *it = &p.items[p.n++];
			it->actor = a;
			it->instance = i;
			struct sched_choice c;
			char cursor[SPEC_ID_MAX + 1] = "";
			int src = sched_place(m, &req, &c, cursor);
			if (src == SCHED_NOMEM) {
				rc = -1;
				break;
			}
			if (src != SCHED_OK) {
				why_not(m, &req, it->reason, sizeof(it->reason));
				continue;
			}
			it->to = c.node;
			p.moved++;
			/* Later moves see the capacity this one takes. */
			model_node_account(m, c.node, a->spec.cpu_required, a->spec.memory_required_mb, +1);
		}
		strlist_free(&contracts);
	}
	for (size_t k = p.n; k-- > 0;)
		if (p.items[k].to)
			model_node_account(m, p.items[k].to, p.items[k].actor->spec.cpu_required,
					   p.items[k].actor->spec.memory_required_mb, -1);
	n->cordoned = was_cordoned;
	n->draining = was_draining;
	if (sched_index_update(&m->sched, n) != 0)
		rc = -1;
	free(actors);
	if (rc != 0) {
		free(p.items);
		return -1;
	}
	*out = p;
	return 0;
}
