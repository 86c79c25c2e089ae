/* test_nemesis — the faults of a chaos run (sim/nemesis.h, docs/chaos.md):
 * the parser refuses every kind of mistake naming the key; a schedule run
 * against simulated agents (no NATS needed: they only lose their heartbeats)
 * and stand-in process callbacks does each fault at its time, ends it, picks
 * targets within the region asked, and writes start/end/skipped lines to the
 * history. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "nemesis.h"
#include "tap.h"

static void refused(const char *json, int replicas, int netns, const char *want, const char *name)
{
	char err[512] = "";
	json_t *j = json_loads(json, 0, NULL);
	struct nemesis_plan p;
	int rc = nemesis_parse(j, replicas, netns, 60000, &p, err, sizeof(err));
	ok(j && rc < 0 && strstr(err, want) != NULL, "%s: refused (%s)", name, err);
	if (rc == 0)
		nemesis_plan_free(&p);
	json_decref(j);
}

/* Stand-ins for the cluster: they record what they were asked. */
static char calls[4096];
static int leader_now = 2;
static void rec(const char *fmt, int a, int b)
{
	char s[64];
	snprintf(s, sizeof(s), fmt, a, b);
	strncat(calls, s, sizeof(calls) - strlen(calls) - 1);
}
static int f_leader(void *c) { (void)c; return leader_now; }
static int f_kill(void *c, int i, char *e, size_t l) { (void)c, (void)e, (void)l; rec("kill %d;", i, 0); return 0; }
static int f_start(void *c, int i, char *e, size_t l) { (void)c, (void)e, (void)l; rec("start %d;", i, 0); return 0; }
static int f_pgstop(void *c, int i, int k, char *e, size_t l) { (void)c, (void)e, (void)l; rec("pgstop %d %d;", i, k); return 0; }
static int f_pgstart(void *c, int i, char *e, size_t l) { (void)c, (void)e, (void)l; rec("pgstart %d;", i, 0); return 0; }
static int f_nstop(void *c, char *e, size_t l) { (void)c, (void)e, (void)l; rec("natsstop;", 0, 0); return 0; }
static int f_nstart(void *c, char *e, size_t l) { (void)c, (void)e, (void)l; rec("natsstart;", 0, 0); return 0; }
static int f_cut(void *c, int i, int j, char *e, size_t l) { (void)c, (void)e, (void)l; rec("cut %d-%d;", i, j); return 0; }
static int f_heal(void *c, char *e, size_t l) { (void)c, (void)e, (void)l; rec("heal;", 0, 0); return 0; }

int main(void)
{
	tap_plan(28);
	char err[512];

	refused("[{\"f\":\"kill_agents\",\"at_s\":1}]", 3, 1, "exactly one of count, fraction, nodes", "no targets");
	refused("[{\"f\":\"kill_agent\",\"at_s\":1,\"count\":1}]", 3, 1, "nemeses[0].f: want one of", "unknown f");
	refused("[{\"f\":\"kill_agents\",\"at_s\":1,\"count\":1,\"which\":1}]", 3, 1, "unknown key 'which' for kill_agents",
		"a key of another fault");
	refused("[{\"f\":\"kill_replica\",\"at_s\":1}]", 3, 1, "nemeses[0].which: required", "which is required");
	refused("[{\"f\":\"kill_replica\",\"at_s\":1,\"which\":4}]", 3, 1, "which: want leader, follower or 1-3",
		"which out of range");
	refused("[{\"f\":\"partition\",\"at_s\":1,\"kind\":\"minority\"}]", 3, 0, "partitions need cluster.netns true",
		"no partition without namespaces");
	refused("[{\"f\":\"partition\",\"at_s\":1,\"kind\":\"bridge\"}]", 2, 1, "needs at least 3 replicas",
		"a bridge needs three replicas");
	refused("[{\"f\":\"partition\",\"at_s\":1,\"kind\":\"minority\",\"for_s\":10},"
		"{\"f\":\"partition\",\"at_s\":5,\"kind\":\"bridge\"}]",
		3, 1, "two partitions at once", "overlapping partitions");
	refused("[{\"f\":\"kill_agents\",\"at_s\":61,\"count\":1}]", 3, 1, "nemeses[0].at_s: want a number of seconds 0-60",
		"a fault after the run");
	refused("[{\"f\":\"crash_agents\",\"at_s\":1,\"count\":1,\"for_s\":0}]", 3, 1, "crash_agents must end",
		"a crash that never restarts");
	refused("[{\"f\":\"kill_agents\",\"at_s\":1,\"fraction\":1.5}]", 3, 1, "fraction: want a number above 0",
		"fraction above 1");

	/* A schedule against 6 agents in two regions. */
	const char *scen = "{\"heartbeat_ms\":100,\"agents\":[{\"count\":4,\"prefix\":\"eu\",\"region\":\"eu-west\"},"
			   "{\"count\":2,\"prefix\":\"us\",\"region\":\"us-east\"}]}";
	struct simrt_scenario *sc = NULL;
	if (simrt_scenario_parse(&sc, scen, strlen(scen), err, sizeof(err)) < 0)
		{ printf("Bail out! scenario: %s\n", err); return 1; }
	json_t *nj = json_loads("["
				"{\"f\":\"kill_agents\",\"at_s\":0.1,\"count\":2,\"region\":\"eu-west\",\"for_s\":0.3},"
				"{\"f\":\"crash_agents\",\"at_s\":0.1,\"nodes\":[\"us-0001\"],\"disk\":false,\"for_s\":0.2},"
				"{\"f\":\"kill_replica\",\"at_s\":0.2,\"which\":\"leader\",\"for_s\":0.2},"
				"{\"f\":\"pg\",\"at_s\":0.2,\"which\":\"follower\",\"kill\":true,\"for_s\":0.1},"
				"{\"f\":\"partition\",\"at_s\":0.5,\"kind\":\"leader_isolated\",\"for_s\":0.1},"
				"{\"f\":\"nats_restart\",\"at_s\":0.5,\"for_s\":0.1},"
				"{\"f\":\"kill_agents\",\"at_s\":0.7,\"count\":1,\"region\":\"nowhere\"}"
				"]",
				0, NULL);
	struct nemesis_plan plan;
	ok(nemesis_parse(nj, 3, 1, 60000, &plan, err, sizeof(err)) == 0 && plan.n == 7, "a schedule parses (%s)", err);
	json_decref(nj);

	char dir[] = "/tmp/test_nemesis.XXXXXX";
	if (!mkdtemp(dir))
		{ printf("Bail out! mkdtemp\n"); return 1; }
	char hpath[256], sdir[256];
	snprintf(hpath, sizeof(hpath), "%s/history.jsonl", dir);
	snprintf(sdir, sizeof(sdir), "%s/state", dir);
	struct hist *h = hist_open(hpath, err, sizeof(err));
	if (!h)
		{ printf("Bail out! hist: %s\n", err); return 1; }
	/* No NATS here: the agents retry in the background and run all the same. */
	struct simrt_options so = {.nats = "nats://127.0.0.1:1", .state_dir = sdir, .agent_version = "t", .threads = 2,
				   .hist = h};
	struct simrt *rt = NULL;
	if (simrt_start(&rt, sc, &so, err, sizeof(err)) < 0)
		{ printf("Bail out! simrt: %s\n", err); return 1; }
	struct nemesis_env env = {.replicas = 3,
				  .leader = f_leader,
				  .replica_kill = f_kill,
				  .replica_start = f_start,
				  .pg_stop = f_pgstop,
				  .pg_start = f_pgstart,
				  .nats_stop = f_nstop,
				  .nats_start = f_nstart,
				  .cut = f_cut,
				  .heal = f_heal};
	struct nemesis_run *nr = NULL;
	ok(nemesis_start(&nr, &plan, sc, rt, &env, h, 42, err, sizeof(err)) == 0, "the schedule starts (%s)", err);
	ok(!nemesis_done(nr), "not done at once");
	for (int i = 0; i < 200 && !nemesis_done(nr); i++)
		usleep(20000);
	ok(nemesis_done(nr), "done within 4 s");
	uint64_t st, en, sk, fa;
	nemesis_counts(nr, &st, &en, &sk, &fa);
	ok(st == 6 && en == 6 && sk == 1 && fa == 0, "6 started, 6 ended, 1 skipped, 0 failed (%llu %llu %llu %llu)",
	   (unsigned long long)st, (unsigned long long)en, (unsigned long long)sk, (unsigned long long)fa);
	nemesis_stop(nr, 0);
	/* kill of the leader (2) then its start; a follower's PostgreSQL killed;
	 * the leader cut from 1 and 3, healed; nats stopped, started. */
	ok(strstr(calls, "kill 2;") && strstr(calls, "start 2;"), "kill_replica leader: kill 2, start 2 (%s)", calls);
	ok((strstr(calls, "pgstop 1 1;") || strstr(calls, "pgstop 3 1;")) &&
		   (strstr(calls, "pgstart 1;") || strstr(calls, "pgstart 3;")),
	   "pg follower kill: a follower's PostgreSQL killed and started");
	ok(strstr(calls, "cut 1-2;") && strstr(calls, "cut 2-3;") && !strstr(calls, "cut 1-3;") && strstr(calls, "heal;"),
	   "leader isolated: 1-2 and 2-3 cut, not 1-3, then healed");
	ok(strstr(calls, "natsstop;") && strstr(calls, "natsstart;"), "nats stopped and started");

	usleep(100000); /* the workers apply the last queued faults */
	json_t *view = simrt_view(rt);
	json_t *us1 = json_object_get(view, "us-0001");
	ok(json_integer_value(json_object_get(us1, "life")) == 2 && json_integer_value(json_object_get(us1, "disk")) == 2 &&
		   json_is_true(json_object_get(us1, "alive")),
	   "the crashed agent restarted on a new disk: life 2, disk 2, alive");
	size_t alive = 0;
	const char *k;
	json_t *v;
	json_object_foreach(view, k, v) alive += json_is_true(json_object_get(v, "alive"));
	is_int((long long)alive, 6, "every agent alive at the end (the kill ended)");
	json_decref(view);
	simrt_stop(rt);
	hist_close(h);

	json_t *hist = NULL;
	ok(hist_load(hpath, &hist, err, sizeof(err)) == 0, "the history reads back (%s)", err);
	size_t starts = 0, ends = 0, skipped = 0, dead = 0, crash = 0, restart = 0, eu_targets = 0;
	json_t *kill_line = NULL, *part_line = NULL;
	size_t i;
	json_array_foreach(hist, i, v)
	{
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *f = json_string_value(json_object_get(v, "f"));
		const char *phase = json_string_value(json_object_get(v, "phase"));
		if (!type || !f)
			continue;
		if (!strcmp(type, "nemesis")) {
			starts += phase && !strcmp(phase, "start");
			ends += phase && !strcmp(phase, "end");
			skipped += phase && !strcmp(phase, "skipped");
			if (phase && !strcmp(phase, "start") && !strcmp(f, "kill_agents"))
				kill_line = v;
			if (phase && !strcmp(phase, "start") && !strcmp(f, "partition"))
				part_line = v;
		} else if (!strcmp(type, "agent")) {
			dead += !strcmp(f, "dead");
			crash += !strcmp(f, "crash");
			restart += !strcmp(f, "restart");
		}
	}
	ok(starts == 6 && ends == 6 && skipped == 1, "history: 6 starts, 6 ends, 1 skipped");
	json_t *t = json_object_get(kill_line, "targets");
	json_array_foreach(t, i, v) eu_targets += strncmp(json_string_value(v), "eu-", 3) == 0;
	ok(json_array_size(t) == 2 && eu_targets == 2, "kill_agents region eu-west: two eu- targets");
	ok(json_integer_value(json_object_get(kill_line, "t")) >= 100, "kill_agents started at 0.1 s or later");
	ok(dead == 2 && crash == 1 && restart == 1, "agent lines: 2 dead, 1 crash, 1 restart (%zu %zu %zu)", dead, crash,
	   restart);
	char *groups = json_dumps(json_object_get(part_line, "groups"), JSON_COMPACT);
	is_str(groups ? groups : "", "[[\"2\"],[\"1\",\"3\"]]", "partition groups: the leader alone");
	free(groups);
	json_decref(hist);
	nemesis_plan_free(&plan);
	simrt_scenario_free(sc);
	nats_CloseAndWait(5000); /* its threads gone before exit (else they may run into the teardown) */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
