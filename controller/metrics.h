/* metrics — counters and histograms of this replica, rendered in the Prometheus
 * text exposition format (what `promtool check metrics` accepts). Counters are
 * updated from any thread with atomics; gauges are read at scrape time. */
#ifndef LATTICE_METRICS_H
#define LATTICE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct bus_stats;
struct loop_status;
struct sse_stats;
struct workq_stats;
struct store_stats;

#include "durhist.h"

#define METRICS_BUCKETS 12
#define METRICS_CODES 500 /* statuses 100..599, counted exactly */

/* One route of the API's table (the last one counts requests no route took). */
struct metrics_route {
	const char *method, *pattern; /* borrowed, static */
	atomic_uint_fast64_t code[METRICS_CODES];
	atomic_uint_fast64_t dur_bucket[METRICS_BUCKETS]; /* not cumulative */
	atomic_uint_fast64_t dur_count, dur_sum_us;
};

struct metrics {
	struct metrics_route *routes; /* nroutes + 1 (owned); NULL: out of memory, nothing counted */
	size_t nroutes;
	atomic_uint_fast64_t writes_ok, writes_failed;
	double start_time; /* Unix seconds, for process_start_time_seconds */
};

/* methods[i], patterns[i] name route i (borrowed: static strings). Returns 0,
 * or -1 when out of memory (then HTTP requests are not counted). */
int metrics_init(struct metrics *m, size_t nroutes, const char *const *methods, const char *const *patterns);
void metrics_release(struct metrics *m);
/* route: an index of the table, or nroutes for a request no route took. */
void metrics_observe_http(struct metrics *m, size_t route, int status, double seconds);

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
	uint64_t leader_changes;
	uint64_t placed, place_refused;
	uint64_t failovers_completed, failovers_failed;
	const struct durhist *place, *failover, *command_rtt, *heartbeat_gap; /* borrowed; NULL: not rendered */
	uint64_t heartbeat_age_max_ms;
	struct bus_stats *bus; /* NATS (borrowed); NULL: --nats not given, none rendered */
	const struct sse_stats *sse; /* event streams (borrowed); NULL: none rendered */
	const struct workq_stats *reads; /* the API's PostgreSQL read threads (borrowed); NULL: none */
};

/* Renders everything; the caller frees the result. NULL when out of memory.
 * Every value is printed exactly (64-bit unsigned integers as integers). */
char *metrics_render(struct metrics *m, const struct metrics_gauges *g);

#endif
