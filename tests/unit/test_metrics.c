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
	tap_plan(9);
	static struct metrics m;
	metrics_init(&m);
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
	free(t);
	return tap_done();
}
