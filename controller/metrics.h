/* metrics — counters and histograms of this replica, rendered in the Prometheus
 * text exposition format (what `promtool check metrics` accepts). Counters are
 * updated from any thread with atomics; gauges are read at scrape time. */
#ifndef LATTICE_METRICS_H
#define LATTICE_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct bus_stats;
struct loop_status;
struct sse_stats;
struct store_stats;

#define METRICS_BUCKETS 12

enum metrics_route_class { MR_HEALTH = 0, MR_READ, MR_WRITE, MR_OTHER, MR_COUNT };

struct metrics {
	/* http requests by route class and status class (1xx..5xx) */
	atomic_uint_fast64_t http[MR_COUNT][6];
	/* request duration histogram per route class, seconds */
	atomic_uint_fast64_t dur_bucket[MR_COUNT][METRICS_BUCKETS];
	atomic_uint_fast64_t dur_count[MR_COUNT];
	atomic_uint_fast64_t dur_sum_us[MR_COUNT];
	atomic_uint_fast64_t writes_ok, writes_failed;
};

void metrics_init(struct metrics *m);
void metrics_observe_http(struct metrics *m, enum metrics_route_class rc, int status, double seconds);

struct metrics_gauges {
	uint64_t term, commit_index, applied_index, last_index, projected_index, backlog;
	int is_leader, writable, pg_up;
	uint64_t nodes, actors, providers, links, policies;
	uint64_t commands_open, failovers_open;
	uint64_t commands_acked, commands_failed, commands_superseded;
	uint64_t fsm_applied, fsm_rejected, fsm_undecodable, snapshots;
	uint64_t pg_transactions, pg_batches, pg_changes, pg_errors, pg_reconnects;
	uint64_t queue_bytes, spool_bytes, spooled;
	/* connections to the raft port refused (raftnet), by reason */
	uint64_t raft_refused_not_member, raft_refused_wrong_address, raft_refused_self, raft_refused_no_peer;
	struct bus_stats *bus; /* NATS (borrowed); NULL: --nats not given, none rendered */
	const struct sse_stats *sse; /* event streams (borrowed); NULL: none rendered */
};

/* Renders everything; the caller frees the result. NULL when out of memory.
 * Every value is printed exactly (64-bit unsigned integers as integers). */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g);

#endif
