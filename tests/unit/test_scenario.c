/* test_scenario — lattice-sim's scenario parser (sim/simrt.h, sim/scenarios/README.md):
 * a good file gives its groups, node ids and defaults; every kind of mistake is
 * refused with a message that names the key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simrt.h"
#include "tap.h"

static struct simrt_scenario *parse(const char *json, char *err, size_t errlen)
{
	struct simrt_scenario *sc = NULL;
	err[0] = '\0';
	if (simrt_scenario_parse(&sc, json, strlen(json), err, errlen) < 0)
		return NULL;
	return sc;
}

/* Refused, with a message containing want. */
static void refused(const char *json, const char *want, const char *name)
{
	char err[512];
	struct simrt_scenario *sc = parse(json, err, sizeof(err));
	ok(sc == NULL && strstr(err, want) != NULL, "%s: refused (%s)", name, err);
	simrt_scenario_free(sc);
}

int main(void)
{
	tap_plan(41);
	char err[512], id[96];

	struct simrt_scenario *sc = parse(
		"{\"lattice\":\"l1\",\"heartbeat_ms\":250,\"snapshot_ms\":0,\"agents\":["
		"{\"count\":3,\"prefix\":\"eu\",\"region\":\"eu-west\",\"labels\":{\"tier\":\"edge\",\"zone\":\"a\"},"
		"\"cpu_capacity\":2000,\"memory_mb\":1024},"
		"{\"count\":2,\"prefix\":\"us\"}]}",
		err, sizeof(err));
	ok(sc != NULL, "a good scenario parses (%s)", err);
	if (!sc)
		return tap_done();
	is_str(sc->lattice, "l1", "lattice");
	is_int(sc->heartbeat_ms, 250, "heartbeat_ms");
	is_int(sc->snapshot_ms, 0, "snapshot_ms 0 (only on migrate)");
	is_int((long long)sc->n_groups, 2, "two groups");
	is_int((long long)sc->n_agents, 5, "five agents in all");
	const struct simrt_group *g = simrt_scenario_node(sc, 0, id, sizeof(id));
	is_str(id, "eu-0000", "agent 0 is eu-0000");
	ok(g && strcmp(g->region, "eu-west") == 0 && g->cpu_capacity == 2000 && g->memory_mb == 1024,
	   "... with its group's region and capacity");
	ok(g && g->n_labels == 2 && strcmp(g->labels[0].key, "tier") == 0 && strcmp(g->labels[0].value, "edge") == 0,
	   "... and labels");
	g = simrt_scenario_node(sc, 2, id, sizeof(id));
	is_str(id, "eu-0002", "agent 2 is eu-0002");
	g = simrt_scenario_node(sc, 3, id, sizeof(id));
	is_str(id, "us-0000", "agent 3 is us-0000 (the second group)");
	ok(g && strcmp(g->region, "default") == 0 && g->cpu_capacity == 4000 && g->memory_mb == 4096 &&
		   g->n_labels == 0,
	   "defaults: region default, 4000 millicores, 4096 MiB, no labels");
	ok(simrt_scenario_node(sc, 5, id, sizeof(id)) == NULL, "no agent 5");
	simrt_scenario_free(sc);

	sc = parse("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}]}", err, sizeof(err));
	ok(sc && strcmp(sc->lattice, "default") == 0 && sc->heartbeat_ms == 1000 && sc->snapshot_ms == 5000,
	   "defaults: lattice default, heartbeat 1000 ms, snapshots 5000 ms");
	ok(sc && sc->duration_s == 60 && sc->settle_s == 30 && !sc->cluster && !sc->workload && !sc->nemeses,
	   "defaults of a chaos run: 60 s, settle 30 s, no cluster/workload/nemeses keys");
	simrt_scenario_free(sc);
	sc = parse("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"duration_s\":20,\"settle_s\":0,"
		   "\"cluster\":{\"replicas\":3},\"workload\":{\"clients\":2},\"nemeses\":[{\"at_s\":1}]}",
		   err, sizeof(err));
	ok(sc && sc->duration_s == 20 && sc->settle_s == 0 && json_is_object(sc->cluster) &&
		   json_integer_value(json_object_get(sc->workload, "clients")) == 2 && json_array_size(sc->nemeses) == 1,
	   "the chaos keys are kept for their parsers (%s)", sc ? "" : err);
	simrt_scenario_free(sc);

	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"nemesis\":[]}", "unknown key 'nemesis'",
		"an unknown top-level key");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"nemeses\":{}}", "nemeses: want an array",
		"nemeses must be an array");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"workload\":[]}", "workload: want an object",
		"workload must be an object");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"settle_s\":-1}", "settle_s: want an integer 0-3600",
		"settle_s out of range");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\",\"cpu\":1}]}", "agents[0]: unknown key 'cpu'",
		"an unknown group key");
	refused("{\"agents\":[{\"count\":0,\"prefix\":\"x\"}]}", "agents[0].count: want an integer 1-100000",
		"count 0");
	refused("{\"agents\":[{\"count\":-3,\"prefix\":\"x\"}]}", "agents[0].count", "a negative count");
	refused("{\"agents\":[{\"count\":\"2\",\"prefix\":\"x\"}]}", "agents[0].count", "a count that is a string");
	refused("{\"agents\":[{\"prefix\":\"x\"}]}", "agents[0].count is required", "no count");
	refused("{\"agents\":[{\"count\":1}]}", "agents[0].prefix is required", "no prefix");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"a.b\"}]}", "must be subject tokens", "a prefix with a dot");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"a b\"}]}", "must be subject tokens", "a prefix with a space");
	refused("{\"agents\":[{\"count\":2,\"prefix\":\"eu\"},{\"count\":1,\"prefix\":\"eu\"}]}",
		"node id 'eu-0000' is made by more than one group", "two groups with one prefix: duplicate ids");
	refused("{\"agents\":[]}", "agents: want a non-empty array", "no agents");
	refused("{\"lattice\":\"x\"}", "agents: want a non-empty array", "agents missing");
	refused("{\"lattice\":\"a.b\",\"agents\":[{\"count\":1,\"prefix\":\"x\"}]}", "lattice 'a.b'",
		"a lattice that is not a token");
	refused("{\"heartbeat_ms\":5,\"agents\":[{\"count\":1,\"prefix\":\"x\"}]}", "heartbeat_ms: want an integer 10-",
		"heartbeat_ms 5");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\",\"labels\":{\"k\":1}}]}", "agents[0].labels.k",
		"a label that is not a string");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\",\"labels\":[]}]}", "agents[0].labels: want an object",
		"labels as an array");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\",\"memory_mb\":-1}]}", "agents[0].memory_mb",
		"negative memory");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}],\"agents\":[]}", "duplicate", "a key given twice");
	refused("{\"agents\":[{\"count\":1,\"prefix\":\"x\"}", "line 1", "truncated JSON");
	refused("[1]", "want a JSON object", "not an object");

	/* a file: the message starts with its path */
	struct simrt_scenario *f = NULL;
	ok(simrt_scenario_load(&f, "/nonexistent/s.json", err, sizeof(err)) < 0 &&
		   strstr(err, "/nonexistent/s.json: ") == err,
	   "a missing file: its path and why (%s)", err);
	const char *srcdir = getenv("top_srcdir");
	char path[4096];
	snprintf(path, sizeof(path), "%s/sim/scenarios/edge2000.json", srcdir ? srcdir : ".");
	ok(simrt_scenario_load(&f, path, err, sizeof(err)) == 0 && f->n_agents == 2000,
	   "the shipped edge2000.json parses: 2000 agents (%s)", err);
	simrt_scenario_free(f);
	return tap_done();
}
