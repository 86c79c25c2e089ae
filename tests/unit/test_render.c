/* test_render — GET /v1/cluster's text (render_cluster): the exact shape, and
 * raft's unsigned 64-bit ids, terms and indexes printed exactly above INT64_MAX
 * (jansson's json_int_t printed 2^64-1 as -1). */
#include "render.h"
#include "tap.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int main(void)
{
	tap_plan(5);
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
