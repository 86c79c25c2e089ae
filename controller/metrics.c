#include "metrics.h"

#include "bus.h"
#include "sse.h"
#include "workq.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const double metrics_bounds[METRICS_BUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
						      0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

int metrics_init(struct metrics *m, size_t nroutes, const char *const *methods, const char *const *patterns)
{
	memset(m, 0, sizeof(*m));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	m->start_time = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	m->routes = calloc(nroutes + 1, sizeof(*m->routes));
	if (m->routes == NULL)
		return -1;
	m->nroutes = nroutes;
	for (size_t i = 0; i < nroutes; i++) {
		m->routes[i].method = methods[i];
		m->routes[i].pattern = patterns[i];
	}
	m->routes[nroutes].method = "";
	m->routes[nroutes].pattern = "unmatched";
	return 0;
}

void metrics_release(struct metrics *m)
{
	free(m->routes);
	m->routes = NULL;
}

void metrics_observe_http(struct metrics *m, size_t route, int status, double seconds)
{
	if (m->routes == NULL)
		return;
	struct metrics_route *r = &m->routes[route < m->nroutes ? route : m->nroutes];
	if (status >= 100 && status < 100 + METRICS_CODES)
		atomic_fetch_add(&r->code[status - 100], 1);
	for (int i = 0; i < METRICS_BUCKETS; i++)
		if (seconds <= metrics_bounds[i]) {
			atomic_fetch_add(&r->dur_bucket[i], 1);
			break;
		}
	atomic_fetch_add(&r->dur_count, 1);
	atomic_fetch_add(&r->dur_sum_us, (uint_fast64_t)(seconds * 1e6 + 0.5)); /* to the microsecond */
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

static void gauge_s(struct buf *b, const char *name, const char *help, double v)
{
	put(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.3f\n", name, help, name, name, v);
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

/* Requests by method, route (the pattern of the route table, "unmatched" for
 * none) and exact status; durations by method and route. Series that never
 * counted anything are left out. */
static void render_http(struct buf *b, struct metrics *m)
{
	if (m->routes == NULL)
		return;
	put(b, "# HELP lattice_http_requests_total HTTP requests answered, by method, route and status code.\n"
	       "# TYPE lattice_http_requests_total counter\n");
	for (size_t r = 0; r <= m->nroutes; r++)
		for (size_t c = 0; c < METRICS_CODES; c++) {
			uint64_t v = atomic_load(&m->routes[r].code[c]);
			if (v)
				put(b, "lattice_http_requests_total{method=\"%s\",route=\"%s\",code=\"%d\"} %llu\n",
				    m->routes[r].method, m->routes[r].pattern, (int)c + 100, (unsigned long long)v);
		}
	put(b, "# HELP lattice_http_request_duration_seconds Time from a request's headers to its answer, by method "
	       "and route.\n# TYPE lattice_http_request_duration_seconds histogram\n");
	for (size_t r = 0; r <= m->nroutes; r++) {
		const struct metrics_route *rt = &m->routes[r];
		uint64_t cnt = atomic_load(&rt->dur_count), cum = 0;
		if (cnt == 0)
			continue;
		for (int i = 0; i < METRICS_BUCKETS; i++) {
			cum += atomic_load(&rt->dur_bucket[i]);
			put(b, "lattice_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"%g\"} %llu\n",
			    rt->method, rt->pattern, metrics_bounds[i], (unsigned long long)cum);
		}
		put(b, "lattice_http_request_duration_seconds_bucket{method=\"%s\",route=\"%s\",le=\"+Inf\"} %llu\n",
		    rt->method, rt->pattern, (unsigned long long)cnt);
		put(b, "lattice_http_request_duration_seconds_sum{method=\"%s\",route=\"%s\"} %.6f\n", rt->method,
		    rt->pattern, (double)atomic_load(&rt->dur_sum_us) / 1e6);
		put(b, "lattice_http_request_duration_seconds_count{method=\"%s\",route=\"%s\"} %llu\n", rt->method,
		    rt->pattern, (unsigned long long)cnt);
	}
}

static void histogram(struct buf *b, const char *name, const char *help, const struct durhist *h)
{
	put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	uint64_t cum = 0;
	for (int i = 0; i < DURHIST_BUCKETS; i++) {
		cum += h->bucket[i];
		put(b, "%s_bucket{le=\"%g\"} %llu\n", name, durhist_bound(h, i), (unsigned long long)cum);
	}
	put(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name, (unsigned long long)h->count, name,
	    (double)h->sum_us / 1e6, name, (unsigned long long)h->count);
}

/* The process_* family every Prometheus client library exports, from /proc. */
static void render_process(struct buf *b, const struct metrics *m)
{
	long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/stat", "r");
	char line[1024];
	if (f && tick > 0 && page > 0 && fgets(line, sizeof(line), f)) {
		/* Fields after the command name, which may hold spaces: from the last ')'. */
		const char *p = strrchr(line, ')');
		unsigned long long utime = 0, stime = 0, vsize = 0, rss = 0;
		if (p && sscanf(p + 2,
				"%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u "
				"%llu %llu",
				&utime, &stime, &vsize, &rss) == 4) {
			put(b, "# HELP process_cpu_seconds_total User and system CPU time spent, in seconds.\n"
			       "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
			    (double)(utime + stime) / (double)tick);
			put(b, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
			       "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n",
			    vsize);
			put(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
			       "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
			    rss * (unsigned long long)page);
		}
	}
	if (f)
		fclose(f);
	unsigned long long fds = 0;
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			fds += e->d_name[0] != '.';
		closedir(d);
		put(b, "# HELP process_open_fds Number of open file descriptors.\n"
		       "# TYPE process_open_fds gauge\nprocess_open_fds %llu\n",
		    fds > 0 ? fds - 1 : 0); /* not the one opendir holds */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		put(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
		       "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n",
		    (unsigned long long)rl.rlim_cur);
	put(b, "# HELP process_start_time_seconds Start time of the process since the Unix epoch in seconds.\n"
	       "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.3f\n",
	    m->start_time);
}

char *metrics_render(struct metrics *m, const struct metrics_gauges *g)
{
	struct buf b = {malloc(8192), 0, 8192, 0};
	if (b.p == NULL)
		return NULL;
	b.p[0] = '\0';
	render_http(&b, m);
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
	counter(&b, "lattice_raft_leader_changes_total",
		"Times the leader this replica knows of changed to another replica (since it started).",
		g->leader_changes);
	put(&b, "# HELP lattice_placements_total Placement decisions of the leader: instances placed, requests "
		"refused for want of room.\n# TYPE lattice_placements_total counter\n");
	put(&b, "lattice_placements_total{result=\"placed\"} %llu\n", (unsigned long long)g->placed);
	put(&b, "lattice_placements_total{result=\"insufficient_resources\"} %llu\n",
	    (unsigned long long)g->place_refused);
	if (g->place)
		histogram(&b, "lattice_placement_duration_seconds",
			  "Time the leader took to choose nodes for one request's placements.", g->place);
	put(&b, "# HELP lattice_failovers_total Failovers finished (applied from the log since this replica started), "
		"by status.\n# TYPE lattice_failovers_total counter\n");
	put(&b, "lattice_failovers_total{status=\"completed\"} %llu\n", (unsigned long long)g->failovers_completed);
	put(&b, "lattice_failovers_total{status=\"failed\"} %llu\n", (unsigned long long)g->failovers_failed);
	if (g->failover)
		histogram(&b, "lattice_failover_duration_seconds",
			  "From a node found dead to its failover finished (the replacements started), by the log's "
			  "clock.",
			  g->failover);
	if (g->command_rtt)
		histogram(&b, "lattice_command_round_trip_seconds",
			  "From a command published to its ack recorded, by the log's clock.", g->command_rtt);
	if (g->bus)
		render_bus(&b, g->bus);
	if (g->bus && g->heartbeat_gap) {
		histogram(&b, "lattice_heartbeat_interval_seconds",
			  "Time between two heartbeats of one agent, as the leader received them.", g->heartbeat_gap);
		gauge_s(&b, "lattice_heartbeat_age_max_seconds",
			"On the leader: the age of the oldest last heartbeat among the nodes (0 elsewhere).",
			(double)g->heartbeat_age_max_ms / 1000);
	}
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
	if (g->reads) {
		gauge(&b, "lattice_api_pg_reads_waiting",
		      "REST API reads of PostgreSQL queued for a read thread (--pg-read-threads).", g->reads->waiting);
		gauge(&b, "lattice_api_pg_reads_running", "REST API reads of PostgreSQL running now.", g->reads->running);
		counter(&b, "lattice_api_pg_reads_total", "REST API reads of PostgreSQL finished.", g->reads->done);
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
	render_process(&b, m);
	if (b.failed) {
		free(b.p);
		return NULL;
	}
	return b.p;
}
