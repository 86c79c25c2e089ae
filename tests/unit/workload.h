/* workload — a seeded random stream of real lattice entries, made the way a
 * leader makes them (for test_fixture, and whatever else drives the FSM).
 *
 * Each entry is planned on the model of the replica that proposes it: node puts
 * (new and re-registered), cordons, drains planned like ops.c's, node deletes,
 * actor creates placed by sched_place, updates of replicas or resources with new
 * replicas planned next to the kept ones, actor deletes, providers, links and
 * policies (create and new version). Choices never depend on hash order, so the
 * same seed and the same model give the same entry on any replica. Ids come from
 * a counter ("n12", "a13", "p14", ...), unique within a workload. Entries may
 * still be refused when applied (a plan gone stale, a denied link): that is part
 * of what they test. */
#ifndef LATTICE_TEST_WORKLOAD_H
#define LATTICE_TEST_WORKLOAD_H

#include <stdint.h>

#include "entry.h"

struct model;

struct workload {
	uint64_t state; /* splitmix64 */
	unsigned ids;   /* the last id number given */
};

void workload_init(struct workload *w, uint64_t seed);
/* A number in [0, n), n > 0, from the workload's stream. */
unsigned workload_below(struct workload *w, unsigned n);
/* Fills *e (overwritten; entry_release frees it) with a random entry for m, the
 * proposer's model, which planning changes and puts back as it was. e->at_ms and
 * e->who are left for the caller. */
void workload_entry(struct workload *w, struct model *m, struct entry *e);
/* Fills *e with a node put of a random node: id (copied; NULL: a new one) and
 * flag as in ENTRY_NODE_PUT (0 create, 1 create or update). */
void workload_node(struct workload *w, struct entry *e, const char *id, int flag);

#endif
