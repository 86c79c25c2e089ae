/* policy.c — what the security policies covering a node allow. */
#include "policy.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"

bool policy_covers(const struct policy_spec *p, const char *region, const struct kvlist *labels)
{
	if (p->sel_regions.n && (!region || !strlist_has(&p->sel_regions, region)))
		return false;
	for (size_t i = 0; i < p->sel_labels.n; i++) {
		const char *v = labels ? kvlist_get(labels, p->sel_labels.items[i].key) : NULL;
		if (!v || strcmp(v, p->sel_labels.items[i].value) != 0)
			return false;
	}
	return true;
}

bool policy_allows_contract(const struct model_node *n, const char *contract)
{
	for (size_t i = 0; i < n->npolicies; i++) {
		const struct policy_spec *p = &n->policies[i]->spec;
		if (p->allowed_contracts.n && !strlist_has(&p->allowed_contracts, contract))
			return false;
		if (strlist_has(&p->denied_contracts, contract))
			return false;
	}
	return true;
}

int64_t policy_memory_cap(const struct model_node *n)
{
	int64_t cap = 0;
	for (size_t i = 0; i < n->npolicies; i++) {
		int64_t c = n->policies[i]->spec.max_actor_memory_mb;
		if (c > 0 && (cap == 0 || c < cap))
			cap = c;
	}
	return cap;
}

static int policy_cmp_id(const void *a, const void *b)
{
	const struct model_policy *x = *(struct model_policy *const *)a;
	const struct model_policy *y = *(struct model_policy *const *)b;
	return strcmp(x->spec.policy_id, y->spec.policy_id);
}

int policy_refresh_node(struct model *m, struct model_node *n)
{
	struct model_policy **list = NULL, *p;
	size_t cnt = 0, pos = 0;

	/* Count first so the list is allocated once, at its final size. */
	while ((p = hmap_next(&m->policies, &pos)))
		cnt += policy_covers(&p->spec, n->spec.region, &n->spec.labels);
	if (cnt) {
		list = malloc(cnt * sizeof(*list));
		if (!list)
			return -1;
		size_t k = 0;
		pos = 0;
		while ((p = hmap_next(&m->policies, &pos)))
			if (policy_covers(&p->spec, n->spec.region, &n->spec.labels))
				list[k++] = p;
		/* hmap order is unspecified; the id order makes every replica agree. */
		qsort(list, cnt, sizeof(*list), policy_cmp_id);
	}
	free(n->policies);
	n->policies = list;
	n->npolicies = cnt;
	return 0;
}

static bool list_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

/* Writes the union of one list of every covering policy, sorted, unique. */
static void union_list(struct jw *w, const struct model_node *n, size_t offset)
{
	/* Each list is sorted and unique; a k-way merge keeps the union so. */
	const char *last = NULL;
	jw_arr(w);
	for (;;) {
		const char *next = NULL;
		for (size_t i = 0; i < n->npolicies; i++) {
			const struct strlist *l = (const struct strlist *)((const char *)&n->policies[i]->spec + offset);
			for (size_t k = 0; k < l->n; k++)
				if ((last == NULL || strcmp(l->items[k], last) > 0) &&
				    (next == NULL || strcmp(l->items[k], next) < 0)) {
					next = l->items[k];
					break; /* sorted: the first above last is this list's smallest */
				}
		}
		if (next == NULL)
			break;
		jw_str(w, next);
		last = next;
	}
	jw_arr_end(w);
}

char *policy_merged_payload(const struct model_node *n, int64_t version)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "version");
	jw_int(&w, version);
	/* Allowed: the contracts every non-empty allow list holds. */
	const struct strlist *first = NULL;
	size_t lists = 0;
	for (size_t i = 0; i < n->npolicies; i++)
		if (n->policies[i]->spec.allowed_contracts.n > 0) {
			lists++;
			if (first == NULL)
				first = &n->policies[i]->spec.allowed_contracts;
		}
	jw_key(&w, "allowed_contracts");
	jw_arr(&w);
	size_t kept = 0;
	for (size_t k = 0; first && k < first->n; k++) {
		bool all = true;
		for (size_t i = 0; i < n->npolicies && all; i++) {
			const struct strlist *l = &n->policies[i]->spec.allowed_contracts;
			all = l->n == 0 || list_has(l, first->items[k]);
		}
		if (all) {
			jw_str(&w, first->items[k]);
			kept++;
		}
	}
	if (lists > 0 && kept == 0)
		jw_str(&w, "lattice:none"); /* the allow lists share nothing: nothing is allowed */
	jw_arr_end(&w);
	jw_key(&w, "denied_contracts");
	union_list(&w, n, offsetof(struct policy_spec, denied_contracts));
	jw_key(&w, "max_actor_memory_mb");
	int64_t cap = policy_memory_cap(n);
	if (cap > 0)
		jw_int(&w, cap);
	else
		jw_null(&w);
	jw_key(&w, "network_restrictions");
	union_list(&w, n, offsetof(struct policy_spec, network_restrictions));
	jw_obj_end(&w);
	return jw_take(&w, NULL);
}
