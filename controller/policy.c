/* policy.c — what the security policies covering a node allow. */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

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
