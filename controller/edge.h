/* edge — the leader's view of its edge nodes (docs/protocol.md, SPEC
 * "Failure detection"): when it last heard each node, what the node reported,
 * and the decisions that follow, proposed through Raft as the leader's own
 * writes (ops with `internal` set):
 *   - an unknown node's first heartbeat registers it; a changed profile
 *     (region, labels, capacity) updates it (OP_NODE_PROFILE);
 *   - status (healthy / degraded / unhealthy), error count, measured usage,
 *     policy and agent version, and a last-seen time refreshed every
 *     EDGE_SEEN_REFRESH_MS reach the model only as a node report entry
 *     (OP_NODE_REPORT), so apply never reads soft state.
 * Last-seen times live here, in memory, on the leader only: a new leader has
 * none and waits one --heartbeat-timeout-ms before it declares any node dead.
 * Loop thread only. */
#ifndef LATTICE_EDGE_H
#define LATTICE_EDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "durhist.h"
#include "hmap.h"

struct loop;
struct proto_hb;
struct proto_snap;

/* How often a node that keeps heartbeating gets its last_heartbeat refreshed
 * in the model (and PostgreSQL): a write per node per interval, not per beat. */
#define EDGE_SEEN_REFRESH_MS 10000
/* Flap damping: a node that went unhealthy more than once within this window
 * stays unhealthy after it comes back for heartbeat_timeout × 2^(flaps - 1),
 * at most EDGE_HOLD_MAX_MS, before it is trusted again. */
#define EDGE_FLAP_WINDOW_MS (10 * 60 * 1000)
#define EDGE_HOLD_MAX_MS (5 * 60 * 1000)
/* How often heartbeats are compared with the placements (anti-entropy); a
 * difference is acted on when two passes in a row see it. */
#define EDGE_RECONCILE_MS 3000
/* Periodic snapshots of one actor recorded at most this often (each is a log
 * entry of up to 256 KiB of state); a migration's checkpoint always is. */
#define EDGE_SNAP_MIN_MS 1000

struct edge {
	struct loop *loop; /* borrowed */
	bool enabled;      /* --nats given */
	bool leading;      /* this replica leads and has applied its log */
	int64_t lead_since_ms; /* monotonic: when it started leading */
	/* Monotonic: since when silence counts — the later of lead_since_ms and
	 * the moment NATS was last connected again. A leader cut off from NATS
	 * hears nobody; that says nothing about the nodes. 0: not connected now. */
	int64_t watch_since_ms;
	struct hmap seen;  /* node id -> struct edge_seen (owned) */
	struct hmap consumers; /* node ids whose consumer the bus was asked for (key owned; value = key) */
	int64_t next_sync_ms;  /* next comparison of the model's nodes with `consumers` */
	int64_t next_census_ms; /* next count of nodes behind on policy, unhealthy (metrics) */
	int64_t next_reconcile_ms; /* next comparison of heartbeats with placements */
	bool report_inflight;  /* an OP_NODE_REPORT is on its way */
	uint64_t reports, profiles; /* proposed (stats, tests) */
	struct durhist hb_gap;        /* between two heartbeats of one agent instance (metrics) */
	int64_t hb_age_max_ms;     /* at the last census: the oldest last heartbeat (metrics) */
};

void edge_init(struct edge *e, struct loop *l, bool enabled);
void edge_release(struct edge *e);
/* Every loop tick: follows leadership (bus_lead), registers consumers for new
 * nodes, and proposes the reports health and heartbeats call for. */
void edge_tick(struct edge *e, int64_t now_ms);
/* An agent's state snapshot and its JetStream message (both transferred):
 * recorded through the log (snapshot_put), then the message is acked. */
void edge_snapshot(struct edge *e, struct proto_snap *snap, void *msg);
/* A decoded heartbeat (transferred; freed here), received at now_ms. */
void edge_heartbeat(struct edge *e, struct proto_hb *hb, int64_t now_ms);

#endif
