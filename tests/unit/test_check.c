/* test_check — sim/check.c against planted histories (tests/data/chaos/NAME/
 * {history.jsonl,final.json}, hand-written): each planted violation is caught
 * with its check, its key and the planted lines as evidence, and the clean
 * histories pass. Then a few cases written inline (lost_write's concurrent and
 * unknown writes, stale_read's budget), and check_dir on a copy of one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "hist.h"
#include "tap.h"

#ifndef CHAOS_DATA_DIR
#define CHAOS_DATA_DIR "tests/data/chaos"
#endif

/* check_run on a planted directory; NULL (and a failed point) on error */
static json_t *run_dir(const char *name)
{
	char path[512], err[256];
	json_t *h = NULL, *f = NULL, *out = NULL;
	json_error_t je;
	snprintf(path, sizeof(path), "%s/%s/history.jsonl", CHAOS_DATA_DIR, name);
	if (hist_load(path, &h, err, sizeof(err)) != 0) {
		ok(0, "%s: history loads: %s", name, err);
		return NULL;
	}
	snprintf(path, sizeof(path), "%s/%s/final.json", CHAOS_DATA_DIR, name);
	if (!(f = json_load_file(path, 0, &je))) {
		ok(0, "%s: final.json loads: %s", name, je.text);
		json_decref(h);
		return NULL;
	}
	if (check_run(h, f, &out, err, sizeof(err)) != 0) {
		ok(0, "%s: check_run: %s", name, err);
		out = NULL;
	}
	json_decref(h);
	json_decref(f);
	return out;
}

/* The violation of check with key, or NULL. */
static json_t *find(json_t *res, const char *check, const char *key)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(res, "violations"), i, v)
	{
		if (strcmp(json_string_value(json_object_get(v, "check")), check) == 0 &&
		    strcmp(json_string_value(json_object_get(v, "key")), key) == 0)
			return v;
	}
	return NULL;
}

/* Does v's evidence hold the line at time t of this type (verbatim: the
 * whole object as the history has it)? */
static int has_line(json_t *v, long long t, const char *type)
{
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(v, "evidence"), i, l)
	{
		if (json_integer_value(json_object_get(l, "t")) == t &&
		    strcmp(json_string_value(json_object_get(l, "type")), type) == 0)
			return 1;
	}
	return 0;
}

static void print_violations(json_t *res)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(res, "violations"), i, v)
	{
		tap_diag("  %s %s: %s", json_string_value(json_object_get(v, "check")),
			 json_string_value(json_object_get(v, "key")),
			 json_string_value(json_object_get(v, "message")));
	}
}

static size_t nviol(json_t *res)
{
	return json_array_size(json_object_get(res, "violations"));
}

static json_int_t checked(json_t *res, const char *check)
{
	return json_integer_value(json_object_get(json_object_get(json_object_get(res, "checks"), check), "checked"));
}

/* A planted case: exactly `n` violations, one of them check/key, whose
 * evidence holds the lines (t, type) listed (0-terminated). */
struct planted {
	const char *dir;
	size_t n;
	const char *check, *key;
	struct {
		long long t;
		const char *type;
	} lines[6];
};

static const struct planted planted[] = {
	{"lost_write", 2, "lost_write", "w-1", {{1200, "invoke"}, {1262, "ok"}}},
	{"lost_write", 2, "replicas_differ", "w-1", {{100, "invoke"}, {1262, "ok"}}},
	{"stale_read", 1, "stale_read", "w-1", {{300, "invoke"}, {310, "ok"}, {200, "invoke"}, {210, "ok"}, {110, "ok"}}},
	{"double_apply", 1, "double_apply", "c-1", {{100, "agent"}, {5600, "agent"}, {5500, "agent"}}},
	{"stuck_command", 1, "stuck_command", "c-2", {{2000, "agent"}}},
	{"stuck_command_dead_node", 1, "stuck_command", "c-4", {{0, NULL}}},
	{"replicas_differ", 1, "replicas_differ", "w-1", {{100, "invoke"}, {150, "ok"}}},
	{"failover", 1, "failover", "w-1", {{1000, "nemesis"}, {1000, "agent"}, {4100, "observe"}, {120, "agent"}}},
	{"migration", 2, "migration", "w-1", {{700, "invoke"}, {710, "ok"}, {120, "agent"}, {750, "agent"}}},
	{"migration", 2, "agent_state", "n1", {{120, "agent"}}},
	{"policy_behind", 1, "policy_behind", "n1", {{200, "invoke"}, {210, "ok"}}},
};

int main(void)
{
	tap_plan(92);
	char err[256];

	/* ---- clean histories pass ---- */
	static const char *const clean[] = {"clean", "double_apply_new_disk", "failover_no_target"};
	for (size_t i = 0; i < sizeof(clean) / sizeof(clean[0]); i++) {
		json_t *res = run_dir(clean[i]);
		is_int(res ? (long long)nviol(res) : -1, 0, "%s: no violation", clean[i]);
		if (res && nviol(res))
			print_violations(res);
		json_decref(res);
	}
	json_t *res = run_dir("clean");
	/* the clean run is checked, not skipped: each check saw something */
	static const char *const checks[] = {"lost_write",   "replicas_differ", "failover",  "migration",  "stuck_command",
					     "double_apply", "policy_behind",   "stale_read", "agent_state"};
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
		ok(checked(res, checks[i]) > 0, "clean: %s checked %lld", checks[i], (long long)checked(res, checks[i]));
	is_int(checked(res, "lost_write"), 6, "clean: lost_write checked w-1, w-2, w-4 on the 2 live replicas (w-3 has no acknowledged write)");
	json_decref(res);

	/* ---- planted violations are caught ---- */
	for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++) {
		const struct planted *p = &planted[i];
		res = run_dir(p->dir);
		is_int(res ? (long long)nviol(res) : -1, p->n, "%s: %zu violation(s)", p->dir, p->n);
		json_t *v = find(res, p->check, p->key);
		if (!ok(v != NULL, "%s: %s %s caught", p->dir, p->check, p->key))
			print_violations(res);
		else
			tap_diag("  %s", json_string_value(json_object_get(v, "message")));
		for (size_t j = 0; j < 6 && p->lines[j].type; j++)
			ok(v && has_line(v, p->lines[j].t, p->lines[j].type), "%s: evidence holds the %s line at t=%lld",
			   p->dir, p->lines[j].type, p->lines[j].t);
		ok(v && json_is_string(json_object_get(v, "message")) &&
			   json_string_length(json_object_get(v, "message")) > 20,
		   "%s: %s has a message", p->dir, p->check);
		json_decref(res);
	}

	/* a command published to a node dead at the end waits in its consumer: not stuck */
	res = run_dir("stuck_command_dead_node");
	is_int(json_integer_value(json_object_get(json_object_get(json_object_get(res, "checks"), "stuck_command"),
						  "waiting_for_dead_node")),
	       1, "stuck_command: c-3, published to dead n3, is counted as waiting, not stuck");
	ok(find(res, "stuck_command", "c-3") == NULL, "... and is no violation");
	json_decref(res);

	/* a superseded security_policy is finished, like acked and failed */
	res = run_dir("stuck_command");
	ok(find(res, "stuck_command", "c-2") != NULL && find(res, "stuck_command", "c-5") == NULL,
	   "stuck_command: c-2 (published, open) is stuck; c-5 (superseded) is not");
	json_decref(res);

	/* the lost write names the replica that lost it, and only that one */
	res = run_dir("lost_write");
	json_t *v = find(res, "lost_write", "w-1");
	is_int(json_integer_value(json_object_get(v, "replica")), 2, "lost_write: replica 2 lost it");
	ok(strstr(json_string_value(json_object_get(v, "message")), "generation 1") != NULL,
	   "lost_write: the message says what the database has");
	json_decref(res);

	/* evidence is the history's lines verbatim */
	res = run_dir("stale_read");
	v = find(res, "stale_read", "w-1");
	json_t *read_ok = json_pack("{s:i, s:s, s:i, s:i, s:i, s:{s:i, s:i, s:[[i,s,s]]}}", "t", 310, "type", "ok", "op", 3,
				    "status", 200, "index", 10, "value", "replicas", 1, "generation", 1, "placements", 0,
				    "n1", "running");
	int verbatim = 0;
	size_t k;
	json_t *l;
	json_array_foreach(json_object_get(v, "evidence"), k, l) verbatim |= json_equal(l, read_ok);
	ok(verbatim, "stale_read: the read's ok line is in the evidence verbatim");
	json_decref(read_ok);
	json_decref(res);

	/* ---- inline cases ---- */
#define HIST(s) json_loads("[" s "]", 0, NULL)
	/* a delete acknowledged, then a create whose answer was lost: the actor
	 * may exist again */
	json_t *h = HIST("{\"t\":1,\"type\":\"invoke\",\"op\":1,\"f\":\"create\",\"key\":\"a\",\"value\":{\"replicas\":1}},"
			 "{\"t\":2,\"type\":\"ok\",\"op\":1,\"value\":{\"replicas\":1,\"generation\":1}},"
			 "{\"t\":3,\"type\":\"invoke\",\"op\":2,\"f\":\"delete\",\"key\":\"a\"},"
			 "{\"t\":4,\"type\":\"ok\",\"op\":2},"
			 "{\"t\":5,\"type\":\"invoke\",\"op\":3,\"f\":\"create\",\"key\":\"a\",\"value\":{\"replicas\":2}},"
			 "{\"t\":6,\"type\":\"info\",\"op\":3,\"error\":\"timeout\"}");
	json_t *f = json_loads("{\"replicas\":[{\"replica\":1,\"tables\":{\"actors\":[{\"id\":\"a\",\"replicas\":2,"
			       "\"generation\":1}]}}],\"agents\":{},\"dead_nodes\":[]}",
			       0, NULL);
	res = NULL;
	is_int(check_run(h, f, &res, err, sizeof(err)), 0, "inline: check_run");
	is_int(nviol(res), 0, "a delete then an unknown create: the actor may be back");
	json_decref(res);
	json_decref(f);
	/* ... but not with another replica count than the create's */
	f = json_loads("{\"replicas\":[{\"replica\":1,\"tables\":{\"actors\":[{\"id\":\"a\",\"replicas\":1,"
		       "\"generation\":1}]}}]}",
		       0, NULL);
	check_run(h, f, &res, err, sizeof(err));
	ok(find(res, "lost_write", "a") != NULL, "... the old actor is still there: lost delete");
	json_decref(res);
	json_decref(f);
	json_decref(h);

	/* two overlapping scales: the database may hold either */
	h = HIST("{\"t\":1,\"type\":\"invoke\",\"op\":1,\"f\":\"create\",\"key\":\"a\",\"value\":{\"replicas\":1}},"
		 "{\"t\":2,\"type\":\"ok\",\"op\":1,\"value\":{\"replicas\":1,\"generation\":1}},"
		 "{\"t\":10,\"type\":\"invoke\",\"op\":2,\"f\":\"scale\",\"key\":\"a\",\"value\":{\"replicas\":2}},"
		 "{\"t\":11,\"type\":\"invoke\",\"op\":3,\"f\":\"scale\",\"key\":\"a\",\"value\":{\"replicas\":3}},"
		 "{\"t\":20,\"type\":\"ok\",\"op\":3,\"value\":{\"replicas\":3,\"generation\":2}},"
		 "{\"t\":30,\"type\":\"ok\",\"op\":2,\"value\":{\"replicas\":2,\"generation\":3}}");
	f = json_loads("{\"replicas\":[{\"replica\":1,\"tables\":{\"actors\":[{\"id\":\"a\",\"replicas\":3,"
		       "\"generation\":2}]}}]}",
		       0, NULL);
	check_run(h, f, &res, err, sizeof(err));
	is_int(nviol(res), 0, "overlapping scales: the one acknowledged first may be the last applied");
	json_decref(res);
	json_decref(f);
	f = json_loads("{\"replicas\":[{\"replica\":1,\"tables\":{\"actors\":[{\"id\":\"a\",\"replicas\":1,"
		       "\"generation\":1}]}}]}",
		       0, NULL);
	check_run(h, f, &res, err, sizeof(err));
	v = find(res, "lost_write", "a");
	ok(v && has_line(v, 30, "ok") && has_line(v, 20, "ok"), "... but not the value before both: lost, both shown");
	json_decref(res);
	json_decref(f);
	json_decref(h);

	/* bad input is an error naming it, not a crash */
	h = HIST("{\"t\":1,\"type\":\"invoke\",\"f\":\"create\",\"key\":\"a\"}");
	f = json_loads("{\"replicas\":[]}", 0, NULL);
	res = NULL;
	ok(check_run(h, f, &res, err, sizeof(err)) == -1 && strstr(err, "op") && !res, "an invoke without op: %s", err);
	json_decref(h);
	h = HIST("");
	json_decref(f);
	f = json_loads("{\"replicas\":{}}", 0, NULL);
	ok(check_run(h, f, &res, err, sizeof(err)) == -1 && strstr(err, "replicas"), "replicas not an array: %s", err);
	json_decref(f);
	/* no live replica: the database checks say so rather than pass silently */
	f = json_loads("{\"replicas\":[{\"replica\":1,\"alive\":false,\"tables\":{}}]}", 0, NULL);
	check_run(h, f, &res, err, sizeof(err));
	ok(json_is_string(json_object_get(json_object_get(json_object_get(res, "checks"), "lost_write"), "skipped")),
	   "no live replica: the database checks say they were skipped");
	json_decref(res);
	json_decref(f);
	json_decref(h);

	/* ---- check_dir on a copy of stale_read ---- */
	char dir[] = "/tmp/test_check.XXXXXX", cmd[1024], path[600];
	ok(mkdtemp(dir) != NULL, "temp dir");
	snprintf(cmd, sizeof(cmd), "cp %s/stale_read/history.jsonl %s/stale_read/final.json %s/", CHAOS_DATA_DIR,
		 CHAOS_DATA_DIR, dir);
	ok(system(cmd) == 0, "copied stale_read");
	size_t n = 99;
	is_int(check_dir(dir, &n, err, sizeof(err)), 0, "check_dir");
	is_int(n, 1, "check_dir: one violation");
	snprintf(path, sizeof(path), "%s/violations.json", dir);
	json_t *vf = json_load_file(path, 0, NULL);
	ok(vf && find(vf, "stale_read", "w-1") && json_is_object(json_object_get(vf, "checks")),
	   "violations.json written with the violation and the counts");
	json_decref(vf);
	snprintf(path, sizeof(path), "%s/final.json", dir);
	unlink(path);
	ok(check_dir(dir, &n, err, sizeof(err)) == -1 && strstr(err, "final.json"), "no final.json: %s", err);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
