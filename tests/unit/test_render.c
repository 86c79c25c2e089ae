/* test_render — GET /v1/cluster's text (render_cluster): the exact shape, and
 * raft's unsigned 64-bit ids, terms and indexes printed exactly above INT64_MAX
 * (jansson's json_int_t printed 2^64-1 as -1). And render_time, written digit
 * by digit, equal to gmtime_r + strftime everywhere. */
#include "render.h"
#include "tap.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What render_time wrote before it was written by hand. */
static void libc_time(int64_t ms, char *buf, size_t len)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03dZ", (int)(ms % 1000));
}

/* Returns the first ms where the two differ, or -1. */
static int64_t time_differs(int64_t ms)
{
	char a[40], b[40];
	render_time(ms, a, sizeof(a));
	libc_time(ms, b, sizeof(b));
	if (strcmp(a, b) != 0) {
		tap_diag("  %lld: %s against %s", (long long)ms, a, b);
		return ms;
	}
	return -1;
}

static void test_time(void)
{
	/* Edges: the epoch's first ms, leap days (2000 is a leap year, 1900 and
	 * 2100 are not), year ends, the last ms before 10000. */
	static const int64_t edges[] = {1, 999, 1000, 86399999, 86400000, 951782400000LL, 951868799999LL,
					 951868800000LL, 4107456000000LL, 4107542400000LL, 946684799999LL,
					 946684800000LL, 1700000000123LL, 253402300799999LL, 253402300800000LL,
					 253402300800001LL};
	int64_t bad = -1;
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]) && bad < 0; i++)
		bad = time_differs(edges[i]);
	ok(bad < 0, "render_time equals strftime at the edges (leap days, year ends, 9999 -> 10000)");
	/* Every day from 1970 to 2400 at a changing time of day. */
	bad = -1;
	for (int64_t day = 0; day < 157000 && bad < 0; day++)
		bad = time_differs(day * 86400000LL + (day * 7919) % 86400000LL);
	ok(bad < 0, "... and on every day from 1970 to 2399");
	/* Random instants up to 9999. */
	uint64_t x = 88172645463325252ULL;
	bad = -1;
	for (int i = 0; i < 200000 && bad < 0; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		bad = time_differs((int64_t)(x % 253402300800000ULL) + 1);
	}
	ok(bad < 0, "... and at 200,000 random instants");
}

int main(void)
{
	tap_plan(8);
	test_time();
	struct raft_configuration c;
	raft_configuration_init(&c);
	raft_configuration_add(&c, 1, "127.0.0.1:9001", RAFT_VOTER);
	raft_configuration_add(&c, UINT64_MAX, "127.0.0.2:9001", RAFT_SPARE);

	struct render_cluster rc = {
		.leader_id = 1,
		.leader_address = "127.0.0.1:9001",
		.self_id = 1,
		.state = RAFT_LEADER,
		.api_url = "http://127.0.0.1:8080",
		.term = 7,
		.commit_index = 12,
		.applied_index = 11,
		.projected_index = 10,
		.conf = &c,
		.self_pg_ok = 1,
	};
	/* The leader's view of the spare: reachable, indexes above INT64_MAX. */
	struct render_member rm[2] = {
		{.id = 1, .api_url = "http://127.0.0.1:8080", .reachable = 1, .indices = true, .applied_index = 11,
		 .projected_index = 10},
		{.id = UINT64_MAX, .api_url = "http://127.0.0.2:8080", .reachable = 0, .indices = true,
		 .applied_index = UINT64_MAX - 1, .projected_index = (uint64_t)INT64_MAX + 1},
	};
	rc.members = rm;
	rc.nmembers = 2;
	char *t = render_cluster(&rc);
	is_str(t,
	       "{\"leader\":{\"id\":1,\"address\":\"127.0.0.1:9001\",\"api_url\":\"http://127.0.0.1:8080\"},"
	       "\"term\":7,\"commit_index\":12,\"applied_index\":11,\"projected_index\":10,\"members\":["
	       "{\"id\":1,\"address\":\"127.0.0.1:9001\",\"role\":\"voter\",\"leader\":true,"
	       "\"api_url\":\"http://127.0.0.1:8080\",\"reachable\":true,\"applied_index\":11,\"projected_index\":10,"
	       "\"projection_lag\":1},"
	       "{\"id\":18446744073709551615,\"address\":\"127.0.0.2:9001\",\"role\":\"spare\",\"leader\":false,"
	       "\"api_url\":\"http://127.0.0.2:8080\",\"reachable\":false,\"applied_index\":18446744073709551614,"
	       "\"projected_index\":9223372036854775808,\"projection_lag\":9223372036854775806}],"
	       "\"self\":{\"id\":1,\"state\":\"leader\",\"api_url\":\"http://127.0.0.1:8080\",\"postgresql_ok\":true}}",
	       "a leader's view, with a member id of 2^64-1 printed exactly");
	free(t);

	rc.leader_id = 0;
	rc.leader_address = NULL;
	rc.state = RAFT_CANDIDATE;
	rc.term = UINT64_MAX;
	rc.commit_index = (uint64_t)INT64_MAX + 1;
	rc.applied_index = UINT64_MAX - 1;
	rc.projected_index = 0;
	rc.conf = NULL;
	rc.members = NULL;
	rc.nmembers = 0;
	rc.self_pg_ok = -1;
	t = render_cluster(&rc);
	is_str(t,
	       "{\"leader\":null,\"term\":18446744073709551615,\"commit_index\":9223372036854775808,"
	       "\"applied_index\":18446744073709551614,\"projected_index\":0,\"members\":[],"
	       "\"self\":{\"id\":1,\"state\":\"candidate\",\"api_url\":\"http://127.0.0.1:8080\"}}",
	       "no leader; term 2^64-1 and indexes above INT64_MAX printed exactly (not -1)");
	/* the text is JSON: a parser that keeps big integers (jq, Python) reads it;
	 * jansson refuses integers above INT64_MAX, which is why it is not used here */
	json_error_t e;
	json_t *j = t ? json_loads(t, 0, &e) : NULL;
	ok(j == NULL && json_error_code(&e) == json_error_numeric_overflow,
	   "jansson cannot hold the term (numeric overflow), so a tree could not print it");
	json_decref(j);
	free(t);

	rc.state = 42;
	rc.term = 0;
	rc.commit_index = rc.applied_index = 0;
	t = render_cluster(&rc);
	j = t ? json_loads(t, 0, &e) : NULL;
	is_str(j ? json_string_value(json_object_get(json_object_get(j, "self"), "state")) : NULL, "unknown",
	       "an unknown raft state reads unknown");
	ok(j && json_integer_value(json_object_get(j, "term")) == 0, "the text parses as JSON");
	json_decref(j);
	free(t);
	raft_configuration_close(&c);
	return tap_done();
}
