/* failover — the leader moves the replicas of unhealthy nodes (SPEC
 * "Failover"): each tick it finds unhealthy nodes that still hold replicas and
 * proposes one failover entry per node (OP_FAILOVER, planned by evac.c:
 * highest priority first, capacity taken by earlier moves counted). Replicas
 * with no healthy target are recorded as "failover failed: no healthy target"
 * and planned again when capacity appears. When most nodes of a region (or of
 * the lattice) are unhealthy at once, the leader is more likely cut off than
 * they are dead: failovers there are rate-limited, as Kubernetes does for
 * zones with >= 55% of nodes not ready. Loop thread only. */
#ifndef LATTICE_FAILOVER_H
#define LATTICE_FAILOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "hmap.h"

struct loop;
struct op;

/* A region (or the lattice) with at least FO_DISRUPTION_MIN_NODES nodes of
 * which FO_DISRUPTION_PCT% or more are unhealthy is disrupted: at most one
 * failover per FO_REGION_INTERVAL_MS in that region (FO_LATTICE_INTERVAL_MS
 * when the whole lattice is). */
#define FO_DISRUPTION_PCT 55
#define FO_DISRUPTION_MIN_NODES 3
#define FO_REGION_INTERVAL_MS 10000
#define FO_LATTICE_INTERVAL_MS 30000

struct failover {
	struct loop *loop; /* borrowed */
	bool leading;
	struct hmap nodes;   /* node id -> struct fo_node (owned): this leader's attempts */
	struct hmap regions; /* region -> struct fo_region (owned): last failover there */
	int64_t lattice_last_ms, next_scan_ms, next_limit_log_ms;
	uint64_t proposed, limited;
	/* One failover at a time: each is planned against the model its
	 * predecessor left, so two nodes dying together never send both replicas
	 * of an actor to the same node, nor overbook one. */
	bool inflight;
};

void failover_init(struct failover *f, struct loop *l);
void failover_release(struct failover *f);
void failover_tick(struct failover *f, int64_t now_ms);
/* ops_plan for OP_FAILOVER: plans the failover of op->target into op->entry.
 * Returns 0, or -1 with op failed (nothing to move, out of memory). */
int failover_plan(struct loop *l, struct op *op);
/* OP_FAILOVER_PLAN: the dry run's answer as op->object_text. Returns true when
 * op failed instead (404, out of memory). */
bool failover_dry_run(struct loop *l, struct op *op);

#endif
