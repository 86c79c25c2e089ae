/* test_metrics — the Prometheus text: raft's unsigned 64-bit term and indexes
 * printed exactly (above INT64_MAX too), and the raft port's refusal counters
 * as one family with a reason label. */
#include "metrics.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
			return 1;
	return 0;
}

int main(void)
{
	tap_plan(12);
	static struct metrics m;
	static const char *const methods[] = {"GET"}, *const patterns[] = {"/v1/nodes/{id}"};
	metrics_init(&m, 1, methods, patterns);
	metrics_observe_http(&m, 0, 404, 0.0003);
	metrics_observe_http(&m, 7, 413, 0.002); /* no route */
	struct metrics_gauges g;
	memset(&g, 0, sizeof(g));
	g.term = UINT64_MAX;
	g.commit_index = (uint64_t)INT64_MAX + 1;
	g.applied_index = UINT64_MAX - 1;
	g.last_index = UINT64_MAX;
	g.raft_refused_not_member = 12;
	g.raft_refused_wrong_address = 3;
	g.raft_refused_self = 1;
	char *t = metrics_render(&m, &g);
	ok(t != NULL, "rendered");
	ok(t && has_line(t, "lattice_raft_term 18446744073709551615"), "a term of 2^64-1 is printed exactly");
	ok(t && has_line(t, "lattice_raft_commit_index 9223372036854775808"), "2^63 is printed exactly");
	ok(t && has_line(t, "lattice_raft_applied_index 18446744073709551614"), "2^64-2 is printed exactly");
	ok(t && has_line(t, "# TYPE lattice_raft_refused_connections_total counter"),
	   "the refusals are a counter family");
	ok(t && has_line(t, "lattice_raft_refused_connections_total{reason=\"not_member\"} 12"), "not_member");
	ok(t && has_line(t, "lattice_raft_refused_connections_total{reason=\"wrong_address\"} 3"), "wrong_address");
	ok(t && has_line(t, "lattice_raft_refused_connections_total{reason=\"self\"} 1"), "self");
	ok(t && has_line(t, "lattice_raft_refused_connections_total{reason=\"no_peer\"} 0"), "no_peer");
	ok(t && has_line(t, "lattice_http_requests_total{method=\"GET\",route=\"/v1/nodes/{id}\",code=\"404\"} 1"),
	   "a request counted by method, route and exact code");
	ok(t && has_line(t, "lattice_http_requests_total{method=\"\",route=\"unmatched\",code=\"413\"} 1"),
	   "one no route took: route unmatched");
	ok(t && has_line(t, "lattice_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/nodes/{id}\",le=\"0.0005\"} 1") &&
		   has_line(t, "lattice_http_request_duration_seconds_bucket{method=\"\",route=\"unmatched\",le=\"0.001\"} 0") &&
		   has_line(t, "lattice_http_request_duration_seconds_bucket{method=\"\",route=\"unmatched\",le=\"0.0025\"} 1"),
	   "durations in cumulative buckets per route");
	free(t);
	metrics_release(&m);
	return tap_done();
}
