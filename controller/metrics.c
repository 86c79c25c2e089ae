#include "metrics.h"

#include "bus.h"
#include "sse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double metrics_bounds[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
						      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
static const char *const route_names[MR_COUNT] = {"health", "read", "write", "other"};

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
}

void metrics_observe_http(struct metrics *m, enum metrics_route_class rc, int status, double seconds)
{
	int cls = status / 100;
	if (cls < 1 || cls > 5)
		cls = 5;
	atomic_fetch_add(&m->http[rc][cls], 1);
	for (int i = 0; i < METRICS_BUCKETS; i++)
		if (seconds <= metrics_bounds[i])
			atomic_fetch_add(&m->dur_bucket[rc][i], 1);
	atomic_fetch_add(&m->dur_count[rc], 1);
	atomic_fetch_add(&m->dur_sum_us[rc], (uint_fast64_t)(seconds * 1e6 + 0.5)); /* to the microsecond */
}

struct buf {
	char *p;
	size_t len, cap;
	int failed;
};

__attribute__((format(printf, 2, 3))) static void put(struct buf *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)n;
		char *np = realloc(b->p, ncap);
		if (np == NULL) {
			b->failed = 1;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void gauge(struct buf *b, const char *name, const char *help, uint64_t v)
{
	put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	put(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name, (unsigned long long)v);
}

static void render_bus(struct buf *b, struct bus_stats *s)
{
	gauge(b, "lattice_nats_connected", "1 while connected to a NATS server.",
	      (uint64_t)atomic_load(&s->connected));
	gauge(b, "lattice_nats_streams_ready",
	      "1 on the leader once its JetStream streams and consumers are set up.",
	      (uint64_t)atomic_load(&s->streams_ok));
	counter(b, "lattice_nats_reconnects_total", "Times the NATS connection came back.",
		atomic_load(&s->reconnects));
	counter(b, "lattice_nats_heartbeats_total", "Heartbeats accepted from edge agents.",
		atomic_load(&s->heartbeats));
	counter(b, "lattice_commands_published_total", "Command messages JetStream stored (re-publications included).",
		atomic_load(&s->published));
	counter(b, "lattice_commands_publish_errors_total",
		"Command publications JetStream refused or did not answer in time (published again later).",
		atomic_load(&s->publish_errors));
	counter(b, "lattice_command_acks_total", "Acks read from edge agents' ack stream, before any check.",
		atomic_load(&s->acks));
	gauge(b, "lattice_nodes_policy_behind",
	      "Nodes whose applied security policy version is behind the one they should apply.",
	      atomic_load(&s->nodes_policy_behind));
	gauge(b, "lattice_nodes_unhealthy", "Nodes that are unhealthy.", atomic_load(&s->nodes_unhealthy));
	put(b, "# HELP lattice_nats_dropped_total NATS messages dropped, by subject and reason.\n"
	       "# TYPE lattice_nats_dropped_total counter\n");
	for (int i = 0; i < BUS_SUBJECTS; i++)
		for (int r = PROTO_OK + 1; r < PROTO_DROPS; r++)
			put(b, "lattice_nats_dropped_total{subject=\"%s\",reason=\"%s\"} %llu\n",
			    bus_subject_name((enum bus_subject)i), proto_drop_name((enum proto_drop)r),
			    (unsigned long long)atomic_load(&s->dropped[i][r]));
	put(b, "# HELP lattice_nats_errors_total JetStream set-up errors, by kind.\n"
	       "# TYPE lattice_nats_errors_total counter\n");
	put(b, "lattice_nats_errors_total{kind=\"stream_config\"} %llu\n",
	    (unsigned long long)atomic_load(&s->errors_stream_config));
	put(b, "lattice_nats_errors_total{kind=\"jetstream\"} %llu\n",
	    (unsigned long long)atomic_load(&s->errors_jetstream));
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g)
{
	struct buf b = {malloc(8192), 0, 8192, 0};
	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';
	put(&b, "# HELP lattice_http_requests_total HTTP requests answered, by route class and status class.\n"
		"# TYPE lattice_http_requests_total counter\n");
	for (int r = 0; r < MR_COUNT; r++)
		for (int c = 1; c <= 5; c++)
			put(&b, "lattice_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n", route_names[r], c,
			    (unsigned long long)atomic_load(&m->http[r][c]));
	put(&b, "# HELP lattice_http_request_duration_seconds Time from request to response.\n"
		"# TYPE lattice_http_request_duration_seconds histogram\n");
	for (int r = 0; r < MR_COUNT; r++) {
		for (int i = 0; i < METRICS_BUCKETS; i++)
			put(&b, "lattice_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
			    route_names[r], metrics_bounds[i], (unsigned long long)atomic_load(&m->dur_bucket[r][i]));
		uint64_t cnt = atomic_load(&m->dur_count[r]);
		put(&b, "lattice_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
		    route_names[r], (unsigned long long)cnt);
		put(&b, "lattice_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
		    (double)atomic_load(&m->dur_sum_us[r]) / 1e6);
		put(&b, "lattice_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
		    (unsigned long long)cnt);
	}
	counter(&b, "lattice_writes_ok_total", "Writes committed and projected.", atomic_load(&m->writes_ok));
	counter(&b, "lattice_writes_failed_total", "Writes refused or failed.", atomic_load(&m->writes_failed));
	gauge(&b, "lattice_raft_term", "Current Raft term.", g->term);
	gauge(&b, "lattice_raft_commit_index", "Highest committed Raft index.", g->commit_index);
	gauge(&b, "lattice_raft_applied_index", "Highest Raft index applied to the model.", g->applied_index);
	gauge(&b, "lattice_raft_last_index", "Highest Raft index in the log.", g->last_index);
	gauge(&b, "lattice_raft_leader", "1 when this replica is the Raft leader.", (uint64_t)g->is_leader);
	gauge(&b, "lattice_writable", "1 when this replica takes writes.", (uint64_t)g->writable);
	gauge(&b, "lattice_projection_index", "Highest Raft index visible in this replica's PostgreSQL.",
	      g->projected_index);
	gauge(&b, "lattice_projection_backlog", "Applied entries waiting to be written to PostgreSQL.", g->backlog);
	gauge(&b, "lattice_postgres_up", "1 when the projection writer reaches PostgreSQL.", (uint64_t)g->pg_up);
	counter(&b, "lattice_projection_transactions_total", "PostgreSQL transactions committed by the projection.",
		g->pg_transactions);
	counter(&b, "lattice_projection_entries_total", "Log entries written to PostgreSQL.", g->pg_batches);
	counter(&b, "lattice_projection_rows_total", "Row changes written to PostgreSQL.", g->pg_changes);
	counter(&b, "lattice_projection_errors_total", "Failed projection transactions (retried).", g->pg_errors);
	counter(&b, "lattice_projection_reconnects_total", "Reconnections of the projection writer.",
		g->pg_reconnects);
	gauge(&b, "lattice_projection_queue_bytes",
	      "Bytes of entries the projection writer holds in memory (bounded by --projection-queue-mb).",
	      g->queue_bytes);
	gauge(&b, "lattice_projection_spool_bytes",
	      "Bytes in the projection's spool file in the data dir (entries beyond the memory bound).", g->spool_bytes);
	counter(&b, "lattice_projection_spooled_total", "Entries written to the projection's spool.", g->spooled);
	counter(&b, "lattice_fsm_applied_total", "Log entries applied.", g->fsm_applied);
	counter(&b, "lattice_fsm_rejected_total", "Log entries rejected by apply's re-check.", g->fsm_rejected);
	counter(&b, "lattice_fsm_undecodable_total", "Log entries that could not be decoded (skipped).",
		g->fsm_undecodable);
	counter(&b, "lattice_raft_snapshots_total", "Raft snapshots taken.", g->snapshots);
	put(&b, "# HELP lattice_raft_refused_connections_total Connections to the Raft port refused, by reason.\n"
		"# TYPE lattice_raft_refused_connections_total counter\n");
	put(&b, "lattice_raft_refused_connections_total{reason=\"not_member\"} %llu\n",
	    (unsigned long long)g->raft_refused_not_member);
	put(&b, "lattice_raft_refused_connections_total{reason=\"wrong_address\"} %llu\n",
	    (unsigned long long)g->raft_refused_wrong_address);
	put(&b, "lattice_raft_refused_connections_total{reason=\"self\"} %llu\n",
	    (unsigned long long)g->raft_refused_self);
	put(&b, "lattice_raft_refused_connections_total{reason=\"no_peer\"} %llu\n",
	    (unsigned long long)g->raft_refused_no_peer);
	if (g->bus)
		render_bus(&b, g->bus);
	if (g->sse) {
		gauge(&b, "lattice_event_streams", "Server-sent event streams open (GET /v1/events).", g->sse->streams);
		counter(&b, "lattice_event_streams_opened_total", "Server-sent event streams opened.", g->sse->opened);
		counter(&b, "lattice_event_streams_refused_total",
			"Server-sent event streams refused (--max-event-streams reached, or stopping).", g->sse->refused);
		counter(&b, "lattice_event_streams_cut_total",
			"Server-sent event streams ended because their client stopped reading (overflow).",
			g->sse->overflowed);
		counter(&b, "lattice_event_stream_events_total", "Events queued to server-sent event streams.",
			g->sse->events_sent);
		counter(&b, "lattice_event_stream_reads_total",
			"Reads of new events from PostgreSQL for the event streams (one serves every stream at the same "
			"place).",
			g->sse->reads);
	}
	put(&b, "# HELP lattice_objects Objects in the model.\n# TYPE lattice_objects gauge\n");
	put(&b, "lattice_objects{kind=\"node\"} %llu\n", (unsigned long long)g->nodes);
	put(&b, "lattice_objects{kind=\"actor\"} %llu\n", (unsigned long long)g->actors);
	put(&b, "lattice_objects{kind=\"provider\"} %llu\n", (unsigned long long)g->providers);
	put(&b, "lattice_objects{kind=\"link\"} %llu\n", (unsigned long long)g->links);
	put(&b, "lattice_objects{kind=\"policy\"} %llu\n", (unsigned long long)g->policies);
	put(&b, "# HELP lattice_commands_open Commands not acked or failed yet (pending or published).\n"
		"# TYPE lattice_commands_open gauge\nlattice_commands_open %llu\n",
	    (unsigned long long)g->commands_open);
	put(&b, "# HELP lattice_commands_finished_total Commands this replica saw finish since it started "
		"(applied from the log), by status.\n# TYPE lattice_commands_finished_total counter\n");
	put(&b, "lattice_commands_finished_total{status=\"acked\"} %llu\n", (unsigned long long)g->commands_acked);
	put(&b, "lattice_commands_finished_total{status=\"failed\"} %llu\n", (unsigned long long)g->commands_failed);
	put(&b, "lattice_commands_finished_total{status=\"superseded\"} %llu\n",
	    (unsigned long long)g->commands_superseded);
	put(&b, "# HELP lattice_failovers_in_progress Failovers not completed or failed yet.\n"
		"# TYPE lattice_failovers_in_progress gauge\nlattice_failovers_in_progress %llu\n",
	    (unsigned long long)g->failovers_open);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
