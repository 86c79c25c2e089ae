/* test_proto — the edge protocol's decoders (controller/proto.c): what a
 * heartbeat must be to be accepted, and why each bad one is dropped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "tap.h"

#define SUBJ "lattice.default.hb.edge-1"

/* A valid heartbeat with one field replaced: FIELD is the whole "key":value
 * text to put in place of the default for that key ("" drops it). */
static char *hb_with(const char *key, const char *field)
{
	static const char *const keys[] = {"node_id", "region", "labels", "cpu_capacity", "memory_mb",
					   "cpu_measured", "memory_measured_mb", "actors", "error_count",
					   "policy_version", "agent_version", "agent_instance", "seq", "sent_at"};
	static const char *const vals[] = {
		"\"node_id\":\"edge-1\"",
		"\"region\":\"eu-west\"",
		"\"labels\":{\"zone\":\"a\",\"gpu\":\"false\"}",
		"\"cpu_capacity\":4000",
		"\"memory_mb\":8192",
		"\"cpu_measured\":350",
		"\"memory_measured_mb\":1210",
		("\"actors\":[{\"actor_id\":\"thumb\",\"state\":\"running\",\"state_version\":12},"
		 "{\"actor_id\":\"echo\",\"instance\":1,\"state\":\"starting\",\"state_version\":0}]"),
		"\"error_count\":0",
		"\"policy_version\":3",
		"\"agent_version\":\"lattice-agent 0.8.0\"",
		"\"agent_instance\":\"9f1c2e7a4b6d4c1e\"",
		"\"seq\":418",
		"\"sent_at\":\"2026-12-02T10:15:30.125Z\"",
	};
	size_t cap = 4096 + (field ? strlen(field) : 0);
	char *out = malloc(cap);
	size_t n = 0;
	out[n++] = '{';
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = key && strcmp(key, keys[i]) == 0 ? field : vals[i];
		if (v[0] == '\0')
			continue;
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n > 1 ? "," : "", v);
	}
	if (key && strcmp(key, "+") == 0)
		n += (size_t)snprintf(out + n, cap - n, ",%s", field);
	snprintf(out + n, cap - n, "}");
	return out;
}

static enum proto_drop decode(const char *subject, const char *body, struct proto_hb *hb, char *err)
{
	return proto_hb_decode("default", subject, body, strlen(body), hb, err, 256);
}

/* Expects body (freed here) on subject to be dropped for `want`, with a message
 * containing `says`. */
static void drops(const char *subject, char *body, enum proto_drop want, const char *says, const char *name)
{
	struct proto_hb hb;
	memset(&hb, 0xab, sizeof(hb));
	struct proto_hb before = hb;
	char err[256] = "";
	enum proto_drop got = decode(subject, body, &hb, err);
	ok(got == want && strstr(err, says) != NULL && memcmp(&hb, &before, sizeof(hb)) == 0,
	   "%s: dropped as %s (%s)", name, proto_drop_name(want), err);
	if (got != want || strstr(err, says) == NULL)
		tap_diag("got %s, message '%s', wanted '%s'", proto_drop_name(got), err, says);
	if (got == PROTO_OK)
		proto_hb_free(&hb);
	free(body);
}

int main(void)
{
	tap_plan(44);
	char subj[64];
	is_int(proto_subject(subj, sizeof(subj), "default", "cmd", "edge-1"), 0, "proto_subject fits");
	is_str(subj, "lattice.default.cmd.edge-1", "proto_subject: lattice.L.kind.token");
	ok(proto_subject(subj, 10, "default", "cmd", "edge-1") == -1, "proto_subject: too small is -1");

	/* A good one. */
	char *body = hb_with(NULL, NULL);
	struct proto_hb hb;
	char err[256] = "";
	is_int(decode(SUBJ, body, &hb, err), PROTO_OK, "the protocol's example heartbeat decodes");
	is_str(hb.profile.id, "edge-1", "node id");
	is_str(hb.profile.region, "eu-west", "region");
	ok(hb.profile.labels.n == 2 && strcmp(hb.profile.labels.items[0].key, "gpu") == 0, "labels, sorted");
	ok(hb.profile.cpu_capacity == 4000 && hb.profile.memory_mb == 8192 && hb.profile.cpu_used == 0,
	   "capacity; no base load");
	ok(hb.cpu_measured == 350 && hb.memory_measured_mb == 1210, "measured usage");
	ok(hb.error_count == 0 && hb.policy_version == 3 && hb.seq == 418, "error count, policy version, seq");
	is_str(hb.agent_version, "lattice-agent 0.8.0", "agent version");
	is_str(hb.instance, "9f1c2e7a4b6d4c1e", "agent instance");
	ok(hb.nactors == 2 && strcmp(hb.actors[0].actor_id, "echo") == 0 && hb.actors[0].instance == 1 &&
		   hb.actors[0].state == PROTO_ST_STARTING && strcmp(hb.actors[1].actor_id, "thumb") == 0 &&
		   hb.actors[1].instance == 0 && hb.actors[1].state == PROTO_ST_RUNNING &&
		   hb.actors[1].state_version == 12,
	   "actors sorted by id and instance; instance defaults to 0");
	proto_hb_free(&hb);
	ok(hb.actors == NULL && hb.profile.id == NULL, "proto_hb_free zeroes it");
	free(body);

	body = hb_with("sent_at", "\"sent_at\":\"2026-12-02T10:15:30+01:00\"");
	is_int(decode(SUBJ, body, &hb, err), PROTO_OK, "a time with an offset and no fraction is fine");
	proto_hb_free(&hb);
	free(body);

	/* Subjects. */
	drops("lattice.other.hb.edge-1", hb_with(NULL, NULL), PROTO_MALFORMED, "is not lattice.default.hb",
	      "another lattice's subject");
	drops("lattice.default.hb.edge-1.x", hb_with(NULL, NULL), PROTO_MALFORMED, "is not", "a subject with an extra token");
	drops("lattice.default.cmd.edge-1", hb_with(NULL, NULL), PROTO_MALFORMED, "is not", "a command subject");
	drops("lattice.default.hb.edge-2", hb_with(NULL, NULL), PROTO_SPOOFED, "subject names node 'edge-2'",
	      "subject and body name different nodes");

	/* Bodies. */
	drops(SUBJ, strdup("{\"node_id\":"), PROTO_MALFORMED, "not JSON", "truncated JSON");
	drops(SUBJ, strdup("[1,2]"), PROTO_MALFORMED, "a JSON object", "an array");
	drops(SUBJ, strdup("{\"node_id\":\"edge-1\",\"node_id\":\"edge-1\"}"), PROTO_MALFORMED, "not JSON",
	      "a duplicate key");
	drops(SUBJ, hb_with("+", "\"extra\":1"), PROTO_MALFORMED, "unknown field 'extra'", "an unknown field");
	drops(SUBJ, hb_with("node_id", ""), PROTO_MALFORMED, "'node_id' is missing", "no node_id");
	drops(SUBJ, hb_with("region", ""), PROTO_MALFORMED, "region", "no region");
	drops(SUBJ, hb_with("cpu_measured", "\"cpu_measured\":-1"), PROTO_MALFORMED, "cpu_measured",
	      "negative measured CPU");
	drops(SUBJ, hb_with("seq", "\"seq\":0"), PROTO_MALFORMED, "'seq'", "seq 0");
	drops(SUBJ, hb_with("seq", "\"seq\":\"7\""), PROTO_MALFORMED, "'seq'", "seq as a string");
	drops(SUBJ, hb_with("agent_instance", "\"agent_instance\":\"\""), PROTO_MALFORMED, "agent_instance",
	      "an empty agent instance");
	drops(SUBJ, hb_with("sent_at", "\"sent_at\":\"yesterday\""), PROTO_MALFORMED, "RFC 3339", "sent_at not a time");
	drops(SUBJ, hb_with("labels", "\"labels\":{\"a\":1}"), PROTO_MALFORMED, "labels", "a label that is a number");
	drops(SUBJ, hb_with("actors", "\"actors\":{}"), PROTO_MALFORMED, "'actors' must be an array", "actors not an array");
	drops(SUBJ, hb_with("actors", "\"actors\":[{\"actor_id\":\"a\",\"state\":\"dancing\",\"state_version\":0}]"),
	      PROTO_MALFORMED, "state must be", "an unknown actor state");
	drops(SUBJ,
	      hb_with("actors", "\"actors\":[{\"actor_id\":\"a\",\"state\":\"running\",\"state_version\":0},"
				"{\"actor_id\":\"a\",\"state\":\"running\",\"state_version\":1}]"),
	      PROTO_MALFORMED, "twice", "one instance listed twice");
	drops(SUBJ, hb_with("actors", "\"actors\":[{\"actor_id\":\"a\",\"state\":\"running\",\"state_version\":0,\"x\":1}]"),
	      PROTO_MALFORMED, "unknown field 'x'", "an unknown field in an actor");
	drops(SUBJ, hb_with("actors", "\"actors\":[{\"actor_id\":\"..\",\"state\":\"running\",\"state_version\":0}]"),
	      PROTO_MALFORMED, "actor id", "an actor id that is not one");
	drops(SUBJ, hb_with("cpu_capacity", "\"cpu_capacity\":100000000000"), PROTO_MALFORMED, "cpu_capacity",
	      "an absurd capacity");

	/* Node ids that cannot be a subject token never get this far: the
	 * subject itself is refused. */
	drops("lattice.default.hb.edge.1", hb_with("node_id", "\"node_id\":\"edge.1\""), PROTO_MALFORMED, "is not",
	      "a dotted node id");

	/* Sizes. */
	{
		size_t n = PROTO_HB_MAX + 1;
		char *big = malloc(n + 1);
		memset(big, ' ', n);
		big[n] = '\0';
		big[0] = '{';
		big[n - 1] = '}';
		drops(SUBJ, big, PROTO_OVERSIZED, "at most 262144", "a heartbeat over 256 KiB");
	}
	{
		/* 10,001 actors: over the limit, though well under 256 KiB? No: each
		 * is ~60 bytes, so build it with short ids and check the count rule. */
		size_t cap = 64 + (size_t)(PROTO_HB_ACTORS_MAX + 1) * 64;
		char *a = malloc(cap);
		size_t n = (size_t)snprintf(a, cap, "\"actors\":[");
		for (int i = 0; i <= PROTO_HB_ACTORS_MAX; i++)
			n += (size_t)snprintf(a + n, cap - n, "%s{\"actor_id\":\"a%d\",\"state\":\"running\",\"state_version\":0}",
					      i ? "," : "", i);
		snprintf(a + n, cap - n, "]");
		char *b = hb_with("actors", a);
		if (strlen(b) > PROTO_HB_MAX)
			drops(SUBJ, b, PROTO_OVERSIZED, "at most", "10,001 actors (over the size limit too)");
		else
			drops(SUBJ, b, PROTO_MALFORMED, "at most 10000", "10,001 actors");
		free(a);
	}

	/* The drop reasons' names are the metric's label values. */
	is_str(proto_drop_name(PROTO_MALFORMED), "malformed", "drop name: malformed");
	is_str(proto_drop_name(PROTO_SPOOFED), "spoofed", "drop name: spoofed");
	is_str(proto_drop_name(PROTO_STALE), "stale", "drop name: stale");
	is_str(proto_drop_name((enum proto_drop)99), "unknown", "drop name out of range");
	return tap_done();
}
