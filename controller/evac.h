/* evac — where every replica on a node would go if the node were emptied now:
 * the plan behind a drain, a failover, and the failover dry run
 * (POST /v1/nodes/{id}/failover-plan). Replicas are placed one after another
 * by the scheduler's rules, the capacity taken by earlier moves counted, never
 * back onto the node itself. Loop thread; the model is unchanged afterwards. */
#ifndef LATTICE_EVAC_H
#define LATTICE_EVAC_H

#include <stddef.h>

#include "model.h"
#include "sched.h"

enum evac_order {
	EVAC_BY_ID,       /* actors in id order (drain) */
	EVAC_BY_PRIORITY, /* highest priority first, then id (failover) */
};

struct evac_item {
	struct model_actor *actor; /* borrowed */
	size_t instance;
	struct model_node *to; /* borrowed; NULL: no home */
	char reason[SCHED_REASON_MAX]; /* to == NULL: why */
};

struct evac_plan {
	struct evac_item *items; /* in the order planned */
	size_t n, moved;
};

/* Plans a home for every replica on n. Returns 0, or -1 when out of memory
 * (*out then holds nothing). */
int evac_plan(struct model *m, struct model_node *n, enum evac_order order, struct evac_plan *out);
void evac_plan_free(struct evac_plan *p);

#endif
