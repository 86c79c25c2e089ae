/* test_work — sim/work.c's parts that need no server: the `workload` keys of
 * a scenario (defaults of docs/chaos.md, strictness) and the classification
 * of answers (docs/chaos.md "The workload"). The clients themselves run
 * against real replicas in tests/integration/chaos_work.sh. */
#include <jansson.h>
#include <string.h>

#include "tap.h"
#include "work.h"

static int parse(const char *text, struct work_cfg *cfg, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loads(text, 0, &je);
	if (!j) {
		snprintf(err, errlen, "test JSON: %s", je.text);
		return -2;
	}
	int rc = work_parse(j, cfg, err, errlen);
	json_decref(j);
	return rc;
}

static void refused(const char *text, const char *want)
{
	struct work_cfg cfg;
	char err[256] = "";
	int rc = parse(text, &cfg, err, sizeof(err));
	ok(rc == -1 && strstr(err, want) != NULL, "%s refused: %s", text, err);
}

int main(void)
{
	tap_plan(32);
	struct work_cfg cfg;
	char err[256] = "";

	is_int(work_parse(NULL, &cfg, err, sizeof(err)), 0, "no workload: the defaults");
	ok(cfg.clients == 4 && cfg.ops_per_s == 20 && cfg.actors == 40 && cfg.policies == 2 && cfg.cpu_required == 100 &&
		   cfg.memory_required_mb == 64 && cfg.max_replicas == 3,
	   "... clients 4, ops_per_s 20, actors 40, policies 2, cpu 100, memory 64, max_replicas 3");
	ok(cfg.mix[WORK_CREATE] == 2 && cfg.mix[WORK_SCALE] == 3 && cfg.mix[WORK_MIGRATE] == 1 &&
		   cfg.mix[WORK_DELETE] == 1 && cfg.mix[WORK_POLICY] == 1 && cfg.mix[WORK_READ] == 4,
	   "... mix create 2, scale 3, migrate 1, delete 1, policy 1, read 4");
	ok(cfg.timeout_ms == 10000 && cfg.n_regions == 0 && strcmp(cfg.module, "registry.local/chaos:1") == 0,
	   "... request timeout 10 s, no regions, a module");

	is_int(parse("{\"clients\":8,\"ops_per_s\":2.5,\"actors\":5,\"policies\":0,\"cpu_required\":50,"
		     "\"memory_required_mb\":32,\"max_replicas\":1,\"mix\":{\"read\":1,\"create\":3}}",
		     &cfg, err, sizeof(err)),
	       0, "every key given (%s)", err);
	ok(cfg.clients == 8 && cfg.ops_per_s == 2.5 && cfg.actors == 5 && cfg.policies == 0 && cfg.cpu_required == 50 &&
		   cfg.memory_required_mb == 32 && cfg.max_replicas == 1,
	   "... taken (ops_per_s may be fractional)");
	ok(cfg.mix[WORK_READ] == 1 && cfg.mix[WORK_CREATE] == 3 && cfg.mix[WORK_SCALE] == 0 && cfg.mix[WORK_POLICY] == 0,
	   "... a mix replaces the default one: the operations it leaves out get 0");
	is_int(parse("{\"clients\":0,\"mix\":{}}", &cfg, err, sizeof(err)), 0, "no clients: an empty mix is fine");
	is_int(parse("{\"ops_per_s\":100}", &cfg, err, sizeof(err)), 0, "an integer ops_per_s");

	refused("[]", "workload: want an object");
	refused("{\"client\":4}", "workload.client: unknown key");
	refused("{\"clients\":65}", "workload.clients: want an integer 0..64");
	refused("{\"clients\":-1}", "workload.clients: want an integer 0..64");
	refused("{\"clients\":\"4\"}", "workload.clients: want an integer");
	refused("{\"clients\":2.0}", "workload.clients: want an integer");
	refused("{\"ops_per_s\":0}", "workload.ops_per_s: want a number above 0");
	refused("{\"ops_per_s\":10001}", "workload.ops_per_s");
	refused("{\"ops_per_s\":null}", "workload.ops_per_s");
	refused("{\"actors\":0}", "workload.actors: want an integer 1..10000");
	refused("{\"max_replicas\":0}", "workload.max_replicas: want an integer 1..100");
	refused("{\"memory_required_mb\":-5}", "workload.memory_required_mb");
	refused("{\"mix\":[1]}", "workload.mix: want an object");
	refused("{\"mix\":{\"update\":1}}", "workload.mix.update: unknown operation");
	refused("{\"mix\":{\"read\":-1}}", "workload.mix.read: want an integer 0..1000");
	refused("{\"mix\":{\"read\":0}}", "workload.mix: every weight is 0");
	refused("{\"policies\":0,\"mix\":{\"policy\":3}}", "workload.mix: every weight is 0");

	/* The classification table. */
	is_int(work_classify(WORK_SCALE, 0, NULL), WORK_INFO, "no answer: info");
	ok(work_classify(WORK_CREATE, 201, NULL) == WORK_OK && work_classify(WORK_DELETE, 204, NULL) == WORK_OK &&
		   work_classify(WORK_MIGRATE, 202, NULL) == WORK_OK,
	   "2xx: ok");
	ok(work_classify(WORK_CREATE, 409, "already_exists") == WORK_FAIL &&
		   work_classify(WORK_SCALE, 404, "not_found") == WORK_FAIL &&
		   work_classify(WORK_POLICY, 400, "invalid_field") == WORK_FAIL &&
		   work_classify(WORK_MIGRATE, 409, "conflict") == WORK_FAIL,
	   "4xx of a write: fail");
	ok(work_classify(WORK_CREATE, 503, "no_leader") == WORK_FAIL &&
		   work_classify(WORK_DELETE, 503, "not_leader") == WORK_FAIL &&
		   work_classify(WORK_SCALE, 503, "shutting_down") == WORK_FAIL,
	   "503 no_leader, not_leader, shutting_down of a write: fail (never proposed)");
	ok(work_classify(WORK_CREATE, 503, "unavailable") == WORK_INFO &&
		   work_classify(WORK_CREATE, 503, "commit_timeout") == WORK_INFO &&
		   work_classify(WORK_SCALE, 503, "projection_lagging") == WORK_INFO &&
		   work_classify(WORK_SCALE, 503, "disk_full") == WORK_INFO &&
		   work_classify(WORK_SCALE, 503, "database_unavailable") == WORK_INFO &&
		   work_classify(WORK_SCALE, 503, NULL) == WORK_INFO && work_classify(WORK_SCALE, 500, "internal") == WORK_INFO &&
		   work_classify(WORK_SCALE, 502, NULL) == WORK_INFO,
	   "other 5xx of a write (unavailable, commit_timeout, projection_lagging, disk_full...): info");
	ok(work_classify(WORK_READ, 200, NULL) == WORK_OK && work_classify(WORK_READ, 404, "not_found") == WORK_OK &&
		   work_classify(WORK_READ, 503, "unavailable") == WORK_FAIL &&
		   work_classify(WORK_READ, 0, NULL) == WORK_INFO,
	   "a read: 200 and 404 ok (a value), another answer fail, none info");
	return tap_done();
}
