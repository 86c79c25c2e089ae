/* test_agent — sim/agent.c without NATS: the steps of protocol.md's "The agent"
 * (target check, at most once per command_id, fencing per object, apply and
 * record), what survives a reopen of the state dir, snapshots and heartbeats. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "driver.h"
#include "tap.h"

struct fake_io {
	int fail_publish;
	int published;
	char last_subject[128], last_id[128], last[1024];
};

static int64_t fake_wall(void *ctx)
{
	return 1796292930125LL; /* 2026-12-03T10:15:30.125Z */
}

static int fake_publish(void *ctx, const char *subject, const char *msg_id, const char *json, size_t len)
{
	struct fake_io *f = ctx;
	if (f->fail_publish)
		return -1;
	f->published++;
	snprintf(f->last_subject, sizeof(f->last_subject), "%s", subject);
	snprintf(f->last_id, sizeof(f->last_id), "%s", msg_id);
	snprintf(f->last, sizeof(f->last), "%.*s", (int)len, json);
	return 0;
}

static struct fake_io io_state;
static const struct agent_io io = {&io_state, fake_wall, fake_publish};

static struct agent *open_agent(const char *dir, size_t max_ids, int64_t now)
{
	struct agent_config cfg = {
		.lattice = "default",
		.node_id = "n1",
		.region = "eu",
		.cpu_capacity = 4000,
		.memory_mb = 8192,
		.agent_version = "lattice-agent test",
		.agent_instance = "0123456789abcdef",
		.snapshot_interval_ms = 0,
		.usage_from_requests = 1,
		.max_command_ids = max_ids,
	};
	struct agent *a = NULL;
	char err[256];
	if (agent_open(&a, &cfg, &io, driver_sim_new(), dir, now, err, sizeof(err)) < 0)
		tap_diag("agent_open: %s", err);
	return a;
}

/* Sends a command; returns the reply (release it). */
static struct agent_reply send(struct agent *a, int64_t now, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static struct agent_reply send(struct agent *a, int64_t now, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	struct agent_reply r;
	agent_handle_command(a, buf, strlen(buf), now, &r);
	return r;
}

#define START(id, actor, term, gen, mem, snap)                                                                     \
	"{\"command_id\":\"" id "\",\"command_type\":\"actor_start\",\"target_node\":\"n1\",\"term\":" #term          \
	",\"generation\":" #gen ",\"config_version\":1,\"issued_at\":\"2026-12-02T10:15:31.002Z\",\"payload\":{"     \
	"\"actor_id\":\"" actor "\",\"instance\":0,\"module\":\"m\",\"cpu_required\":250,\"memory_required_mb\":" #mem \
	",\"config\":{},\"snapshot\":" snap "}}"
#define SNAP42 "{\"state_version\":12,\"data\":\"eyJjb3VudCI6IDQyfQ==\"}"

static const char *ack_field(const struct agent_reply *r, const char *key, char *buf, size_t len)
{
	json_t *j = r->ack ? json_loads(r->ack, 0, NULL) : NULL;
	json_t *v = j ? json_object_get(j, key) : NULL;
	if (json_is_string(v))
		snprintf(buf, len, "%s", json_string_value(v));
	else if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else if (json_is_null(v))
		snprintf(buf, len, "null");
	else
		snprintf(buf, len, "(none)");
	json_decref(j);
	return buf;
}

static long long hb_int(struct agent *a, int64_t now, const char *key)
{
	char *hb = agent_heartbeat(a, now, 0, 0);
	json_t *j = hb ? json_loads(hb, 0, NULL) : NULL;
	long long v = json_integer_value(json_object_get(j, key));
	json_decref(j);
	free(hb);
	return v;
}

int main(void)
{
	tap_plan(45);
	char dir[] = "/tmp/lattice-agent-test.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char b1[256];
	int64_t now = 1000;
	struct agent *a = open_agent(dir, 0, now);
	ok(a != NULL, "agent opens on an empty state dir");

	/* actor_start from a snapshot */
	struct agent_reply r = send(a, now, START("c-1", "a1", 3, 7, 128, SNAP42));
	ok(r.verdict == AGENT_ACK && r.ok && r.applied, "actor_start: ok, applied");
	is_str(ack_field(&r, "applied_version", b1, sizeof(b1)), "12", "applied_version is the snapshot's state_version");
	is_str(ack_field(&r, "error", b1, sizeof(b1)), "null", "error is null");
	is_str(r.ack_msg_id, "ack-c-1", "ack Nats-Msg-Id is ack-<command_id>");
	is_str(ack_field(&r, "at", b1, sizeof(b1)), "2026-12-03T10:15:30.125Z", "at: RFC 3339 UTC with ms");
	agent_reply_release(&r);

	/* the same command again: acked again, applied once */
	r = send(a, now, START("c-1", "a1", 3, 7, 128, SNAP42));
	ok(r.verdict == AGENT_ACK && r.ok && !r.applied, "the same command_id again: ok ack, nothing applied");
	is_str(ack_field(&r, "applied_version", b1, sizeof(b1)), "12", "with the recorded applied_version");
	agent_reply_release(&r);
	is_int(agent_applied_count(a), 1, "one command applied");

	/* another command id starting the same instance: success, the version it runs */
	r = send(a, now, START("c-2", "a1", 3, 7, 128, "null"));
	ok(r.ok && r.applied, "starting an instance it runs is a success");
	is_str(ack_field(&r, "applied_version", b1, sizeof(b1)), "12", "applied_version = the state_version it runs");
	agent_reply_release(&r);

	/* wrong node */
	r = send(a, now, "{\"command_id\":\"c-3\",\"command_type\":\"actor_stop\",\"target_node\":\"n2\",\"term\":3,"
			 "\"generation\":7,\"payload\":{\"actor_id\":\"a1\",\"instance\":0,\"reason\":\"deleted\"}}");
	ok(r.verdict == AGENT_ACK && !r.ok && !r.applied, "another node's command: error ack");
	is_str(r.error, "wrong node", "its error is 'wrong node'");
	agent_reply_release(&r);

	/* fencing: (term, generation) compared as a pair */
	r = send(a, now, "{\"command_id\":\"c-4\",\"command_type\":\"actor_stop\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":6,\"payload\":{\"actor_id\":\"a1\",\"instance\":0,\"reason\":\"deleted\"}}");
	is_str(r.error, "stale command: term 3 generation 6 is older than applied term 3 generation 7",
	       "a lower generation in the same term is refused with protocol.md's text");
	agent_reply_release(&r);
	r = send(a, now, "{\"command_id\":\"c-5\",\"command_type\":\"actor_stop\",\"target_node\":\"n1\",\"term\":2,"
			 "\"generation\":99,\"payload\":{\"actor_id\":\"a1\",\"instance\":0,\"reason\":\"deleted\"}}");
	ok(r.error && strstr(r.error, "stale command: term 2 generation 99"), "a lower term is refused whatever the generation");
	agent_reply_release(&r);
	r = send(a, now, START("c-6", "b1", 1, 1, 64, "null"));
	ok(r.ok && r.applied, "fencing is per object: another actor at a lower term applies");
	agent_reply_release(&r);

	/* actor_migrate: the snapshot is published, then the ack; it keeps running */
	now += 1000; /* 10 ticks: the counter went from 42 to 52 */
	int before = io_state.published;
	r = send(a, now, "{\"command_id\":\"c-7\",\"command_type\":\"actor_migrate\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":7,\"payload\":{\"actor_id\":\"a1\",\"instance\":0,\"migration_id\":\"m-1\","
			 "\"target_node\":\"n2\"}}");
	ok(r.ok && io_state.published == before + 1, "actor_migrate publishes one snapshot before its ack");
	is_str(ack_field(&r, "applied_version", b1, sizeof(b1)), "13", "applied_version is the new snapshot's (12 + 1)");
	is_str(io_state.last_subject, "lattice.default.snap.n1", "on lattice.L.snap.<node_id>");
	is_str(io_state.last_id, "snap-a1-13", "with Nats-Msg-Id snap-<actor_id>-<state_version>");
	json_t *sj = json_loads(io_state.last, 0, NULL);
	size_t dl = 0;
	unsigned char *raw = driver_b64_decode(json_string_value(json_object_get(sj, "data")), &dl);
	is_str(raw ? (char *)raw : "", "{\"count\":52}", "its data is the counter, restored from 42 and 10 ticks on");
	is_str(json_string_value(json_object_get(sj, "migration_id")), "m-1", "and carries the migration_id");
	free(raw);
	json_decref(sj);
	agent_reply_release(&r);

	/* a snapshot that cannot be published: not applied, not recorded */
	io_state.fail_publish = 1;
	r = send(a, now, "{\"command_id\":\"c-8\",\"command_type\":\"actor_migrate\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":7,\"payload\":{\"actor_id\":\"a1\",\"migration_id\":\"m-2\"}}");
	ok(r.verdict == AGENT_RETRY, "snapshot publish failed: RETRY (no ack, the message comes back)");
	agent_reply_release(&r);
	io_state.fail_publish = 0;
	r = send(a, now, "{\"command_id\":\"c-8\",\"command_type\":\"actor_migrate\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":7,\"payload\":{\"actor_id\":\"a1\",\"migration_id\":\"m-2\"}}");
	ok(r.verdict == AGENT_ACK && r.ok && r.applied, "its redelivery applies it");
	agent_reply_release(&r);

	/* security_policy and the memory cap */
	r = send(a, now, "{\"command_id\":\"c-9\",\"command_type\":\"security_policy\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":4,\"payload\":{\"version\":4,\"allowed_contracts\":[],\"denied_contracts\":[],"
			 "\"max_actor_memory_mb\":100,\"network_restrictions\":{}}}");
	is_str(ack_field(&r, "applied_version", b1, sizeof(b1)), "4", "security_policy: applied_version is its version");
	agent_reply_release(&r);
	is_int(hb_int(a, now, "policy_version"), 4, "the heartbeat reports policy_version 4");
	r = send(a, now, START("c-10", "big", 3, 1, 128, "null"));
	is_str(r.error, "capability denied: memory", "an actor over the policy's memory cap is refused");
	agent_reply_release(&r);

	/* bad input */
	r = send(a, now, "{not json");
	ok(r.verdict == AGENT_TERM, "not JSON: TERM");
	agent_reply_release(&r);
	r = send(a, now, "{\"command_type\":\"actor_stop\"}");
	ok(r.verdict == AGENT_TERM, "no command_id: TERM");
	agent_reply_release(&r);
	r = send(a, now, "{\"command_id\":\"c-11\",\"command_type\":\"actor_stop\",\"target_node\":\"n1\"}");
	ok(r.verdict == AGENT_ACK && !r.ok && strstr(r.error, "malformed command"), "no term/payload: error ack (%s)",
	   r.error ? r.error : "");
	agent_reply_release(&r);
	r = send(a, now, "{\"command_id\":\"c-12\",\"command_type\":\"reboot\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":1,\"payload\":{}}");
	is_str(r.error, "unknown command_type 'reboot'", "an unknown command_type: error ack");
	agent_reply_release(&r);
	ok(hb_int(a, now, "error_count") >= 6, "error_count counts refusals and bad messages");
	is_int(hb_int(a, now + 61000, "error_count"), 0, "and forgets them after a minute");
	long long seq = hb_int(a, now, "seq");
	is_int(hb_int(a, now, "seq"), seq + 1, "seq rises by one per heartbeat");
	agent_close(a);

	/* restart with the same state dir (also what kill -9 leaves: every record synced) */
	now = 5000;
	a = open_agent(dir, 0, now);
	r = send(a, now, START("c-1", "a1", 3, 7, 128, SNAP42));
	ok(r.ok && !r.applied, "after a reopen, an old command_id is acked again and not applied");
	agent_reply_release(&r);
	r = send(a, now, "{\"command_id\":\"c-13\",\"command_type\":\"actor_stop\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":6,\"payload\":{\"actor_id\":\"a1\",\"reason\":\"deleted\"}}");
	ok(r.error && strstr(r.error, "stale command"), "fencing positions survive a reopen");
	agent_reply_release(&r);
	is_int(hb_int(a, now, "policy_version"), 4, "so does the policy version");
	/* 15: c-8's first try took snapshot 14 and could not publish it */
	char *hb = agent_heartbeat(a, now, 0, 0);
	ok(hb && strstr(hb, "{\"actor_id\":\"a1\",\"instance\":0,\"state\":\"running\",\"state_version\":15}"),
	   "the actors it ran run again, from their last snapshot: %s", hb ? hb : "");
	free(hb);
	r = send(a, now, "{\"command_id\":\"c-14\",\"command_type\":\"actor_stop\",\"target_node\":\"n1\",\"term\":3,"
			 "\"generation\":8,\"payload\":{\"actor_id\":\"a1\",\"instance\":0,\"reason\":\"deleted\"}}");
	ok(r.ok && r.applied, "actor_stop: ok");
	agent_reply_release(&r);
	agent_close(a);

	/* the bound on remembered command ids (here 2): the oldest is forgotten */
	a = open_agent(NULL, 2, now);
	struct agent_reply r0 = send(a, now, START("x-1", "a", 1, 1, 1, "null"));
	agent_reply_release(&r0);
	struct agent_reply r1 = send(a, now, START("x-2", "b", 1, 1, 1, "null"));
	struct agent_reply r2 = send(a, now, START("x-3", "c", 1, 1, 1, "null"));
	struct agent_reply r3 = send(a, now, START("x-1", "a", 1, 1, 1, "null"));
	ok(r3.applied, "beyond max_command_ids the oldest id is forgotten (and applied again, harmlessly)");
	agent_reply_release(&r1);
	agent_reply_release(&r2);
	agent_reply_release(&r3);
	agent_close(a);

	/* a batch: applied with the journal unsynced, one agent_sync, then the acks */
	char dir2[] = "/tmp/lattice-agent-test.XXXXXX";
	if (!mkdtemp(dir2))
		return 1;
	a = open_agent(dir2, 0, now);
	const char *b_start = START("d-1", "d", 1, 1, 1, "null");
	agent_handle_deferred(a, b_start, strlen(b_start), now, &r0);
	agent_handle_deferred(a, b_start, strlen(b_start), now, &r1);
	ok(r0.verdict == AGENT_ACK && r0.applied && r1.verdict == AGENT_ACK && !r1.applied,
	   "deferred: a command repeated in the same batch is applied once");
	char serr[256];
	is_int(agent_sync(a, serr, sizeof(serr)), 0, "agent_sync makes the batch durable");
	is_int(agent_sync(a, serr, sizeof(serr)), 0, "agent_sync with nothing pending: 0");
	agent_reply_release(&r0);
	agent_reply_release(&r1);
	agent_close(a);
	a = open_agent(dir2, 0, now);
	r0 = send(a, now, START("d-1", "d", 1, 1, 1, "null"));
	ok(r0.ok && !r0.applied, "a synced batch's command is remembered after a reopen");
	agent_reply_release(&r0);
	agent_close(a);
	char rm2[300];
	snprintf(rm2, sizeof(rm2), "rm -rf '%s'", dir2);
	if (system(rm2) != 0)
		tap_diag("could not remove %s", dir2);

	char *cmd = driver_exec_expand("run {module} --id {actor_id}#{instance}", "oci://x'; rm -rf /", "act", 2);
	is_str(cmd, "run 'oci://x'\\''; rm -rf /' --id 'act'#'2'", "exec templates shell-quote what they substitute");
	free(cmd);

	char rm[300];
	snprintf(rm, sizeof(rm), "rm -rf %s", dir);
	if (system(rm) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
