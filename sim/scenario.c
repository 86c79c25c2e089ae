/* scenario — lattice-sim's scenario files (simrt.h "scenario";
 * sim/scenarios/README.md, docs/chaos.md). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simrt.h"

#define SIMRT_MAX_AGENTS 100000
#define SIMRT_MAX_LABELS 64

/* ---- scenario ------------------------------------------------------------- */

static int serr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int serr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int only_keys(json_t *obj, const char *const *keys, const char *where, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		int known = 0;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known) {
			char list[256] = "";
			for (size_t i = 0; keys[i]; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", keys[i]);
			return serr(err, errlen, "%s: unknown key '%s' (known: %s)", where, k, list);
		}
	}
	return 0;
}

/* An optional integer key in [min, max]; absent keeps *out. */
static int get_int(json_t *obj, const char *key, long long min, long long max, long long *out, const char *where,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return serr(err, errlen, "%s%s: want an integer %lld-%lld", where, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

/* An optional string key of 1-maxlen characters; absent keeps *out. */
static int get_str(json_t *obj, const char *key, size_t maxlen, const char **out, const char *where, char *err,
		   size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > maxlen ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return serr(err, errlen, "%s%s: want a string of 1-%zu characters", where, key, maxlen);
	*out = json_string_value(v);
	return 0;
}

void simrt_scenario_free(struct simrt_scenario *sc)
{
	if (!sc)
		return;
	for (size_t g = 0; g < sc->n_groups; g++) {
		struct simrt_group *gr = &sc->groups[g];
		free(gr->prefix);
		free(gr->region);
		for (size_t i = 0; i < gr->n_labels; i++) {
			free((char *)gr->labels[i].key);
			free((char *)gr->labels[i].value);
		}
		free(gr->labels);
	}
	free(sc->groups);
	free(sc->lattice);
	json_decref(sc->cluster);
	json_decref(sc->workload);
	json_decref(sc->nemeses);
	free(sc);
}

const struct simrt_group *simrt_scenario_node(const struct simrt_scenario *sc, size_t i, char *buf, size_t len)
{
	for (size_t g = 0; g < sc->n_groups; g++) {
		if (i < (size_t)sc->groups[g].count) {
			snprintf(buf, len, "%s-%04zu", sc->groups[g].prefix, i);
			return &sc->groups[g];
		}
		i -= (size_t)sc->groups[g].count;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_group(json_t *ja, size_t gi, struct simrt_group *gr, char *err, size_t errlen)
{
	char where[48];
	snprintf(where, sizeof(where), "agents[%zu]", gi);
	if (!json_is_object(ja))
		return serr(err, errlen, "%s: want an object", where);
	static const char *const keys[] = {"count", "prefix", "region", "labels", "cpu_capacity", "memory_mb", NULL};
	if (only_keys(ja, keys, where, err, errlen) < 0)
		return -1;
	snprintf(where, sizeof(where), "agents[%zu].", gi);
	if (!json_object_get(ja, "count"))
		return serr(err, errlen, "%scount is required", where);
	if (!json_object_get(ja, "prefix"))
		return serr(err, errlen, "%sprefix is required", where);
	const char *prefix = NULL, *region = "default";
	long long count = 0, cpu = 4000, mem = 4096;
	if (get_int(ja, "count", 1, SIMRT_MAX_AGENTS, &count, where, err, errlen) < 0 ||
	    get_str(ja, "prefix", 58, &prefix, where, err, errlen) < 0 ||
	    get_str(ja, "region", 128, &region, where, err, errlen) < 0 ||
	    get_int(ja, "cpu_capacity", 0, 1LL << 40, &cpu, where, err, errlen) < 0 ||
	    get_int(ja, "memory_mb", 0, 1LL << 40, &mem, where, err, errlen) < 0)
		return -1;
	/* the longest id it makes must be a subject token */
	char probe[96];
	snprintf(probe, sizeof(probe), "%s-%04lld", prefix, count - 1);
	if (!agent_valid_token(prefix) || !agent_valid_token(probe))
		return serr(err, errlen,
			    "%sprefix '%s': node ids %s-0000... must be subject tokens: 1-64 of A-Z a-z 0-9 _ -", where,
			    prefix, prefix);
	gr->count = count;
	gr->cpu_capacity = cpu;
	gr->memory_mb = mem;
	gr->prefix = strdup(prefix);
	gr->region = strdup(region);
	if (!gr->prefix || !gr->region)
		return serr(err, errlen, "out of memory");
	json_t *labels = json_object_get(ja, "labels");
	if (labels) {
		if (!json_is_object(labels))
			return serr(err, errlen, "%slabels: want an object of strings", where);
		if (json_object_size(labels) > SIMRT_MAX_LABELS)
			return serr(err, errlen, "%slabels: at most %d", where, SIMRT_MAX_LABELS);
		gr->labels = calloc(json_object_size(labels) + 1, sizeof(*gr->labels));
		if (!gr->labels)
			return serr(err, errlen, "out of memory");
		const char *k;
		json_t *v;
		json_object_foreach(labels, k, v) {
			if (!*k || strlen(k) > 63)
				return serr(err, errlen, "%slabels: key '%s': want 1-63 characters", where, k);
			if (!json_is_string(v) || json_string_length(v) > 256 ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return serr(err, errlen, "%slabels.%s: want a string of at most 256 characters", where, k);
			char *kk = strdup(k), *vv = strdup(json_string_value(v));
			gr->labels[gr->n_labels++] = (struct agent_label){kk, vv};
			if (!kk || !vv)
				return serr(err, errlen, "out of memory");
		}
	}
	return 0;
}

int simrt_scenario_parse(struct simrt_scenario **out, const char *json, size_t len, char *err, size_t errlen)
{
	*out = NULL;
	json_error_t je;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return serr(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
	struct simrt_scenario *sc = calloc(1, sizeof(*sc));
	char **ids = NULL;
	size_t n_ids = 0;
	int rc = -1;
	if (!sc) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	if (!json_is_object(root)) {
		serr(err, errlen, "want a JSON object");
		goto out;
	}
	static const char *const keys[] = {"lattice",  "heartbeat_ms", "snapshot_ms", "agents", "duration_s",
					   "settle_s", "cluster",      "workload",    "nemeses", NULL};
	if (only_keys(root, keys, "scenario", err, errlen) < 0)
		goto out;
	const char *lattice = "default";
	sc->heartbeat_ms = 1000;
	sc->snapshot_ms = 5000;
	sc->duration_s = 60;
	sc->settle_s = 30;
	if (get_str(root, "lattice", 64, &lattice, "", err, errlen) < 0 ||
	    get_int(root, "duration_s", 1, 86400, &sc->duration_s, "", err, errlen) < 0 ||
	    get_int(root, "settle_s", 0, 3600, &sc->settle_s, "", err, errlen) < 0 ||
	    get_int(root, "heartbeat_ms", 10, 3600000, &sc->heartbeat_ms, "", err, errlen) < 0 ||
	    get_int(root, "snapshot_ms", 0, 86400000, &sc->snapshot_ms, "", err, errlen) < 0)
		goto out;
	if (!agent_valid_token(lattice)) {
		serr(err, errlen, "lattice '%s': want a subject token (1-64 of A-Z a-z 0-9 _ -)", lattice);
		goto out;
	}
	if (!(sc->lattice = strdup(lattice))) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	static const struct {
		const char *key;
		int array;
	} parts[] = {{"cluster", 0}, {"workload", 0}, {"nemeses", 1}};
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(root, parts[i].key);
		if (v && (parts[i].array ? !json_is_array(v) : !json_is_object(v))) {
			serr(err, errlen, "%s: want %s", parts[i].key, parts[i].array ? "an array" : "an object");
			goto out;
		}
	}
	sc->cluster = json_incref(json_object_get(root, "cluster"));
	sc->workload = json_incref(json_object_get(root, "workload"));
	sc->nemeses = json_incref(json_object_get(root, "nemeses"));
	json_t *agents = json_object_get(root, "agents");
	if (!agents || !json_is_array(agents) || json_array_size(agents) == 0) {
		serr(err, errlen, "agents: want a non-empty array of agent groups");
		goto out;
	}
	sc->groups = calloc(json_array_size(agents), sizeof(*sc->groups));
	if (!sc->groups) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t g = 0; g < json_array_size(agents); g++) {
		sc->n_groups++; /* freed with the scenario even when half filled */
		if (parse_group(json_array_get(agents, g), g, &sc->groups[g], err, errlen) < 0)
			goto out;
		sc->n_agents += (size_t)sc->groups[g].count;
	}
	if (sc->n_agents > SIMRT_MAX_AGENTS) {
		serr(err, errlen, "agents: %zu in all; at most %d", sc->n_agents, SIMRT_MAX_AGENTS);
		goto out;
	}
	/* Duplicate node ids (two groups with one prefix, or "a" 10 and "a-0"...). */
	ids = calloc(sc->n_agents, sizeof(*ids));
	if (!ids) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sc->n_agents; i++) {
		char id[96];
		simrt_scenario_node(sc, i, id, sizeof(id));
		if (!(ids[i] = strdup(id))) {
			serr(err, errlen, "out of memory");
			goto out;
		}
		n_ids++;
	}
	qsort(ids, n_ids, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < sc->n_agents; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			serr(err, errlen, "agents: node id '%s' is made by more than one group (prefixes must differ)",
			     ids[i]);
			goto out;
		}
	rc = 0;
	*out = sc;
	sc = NULL;
out:
	for (size_t i = 0; i < n_ids; i++)
		free(ids[i]);
	free(ids);
	simrt_scenario_free(sc);
	json_decref(root);
	return rc;
}

int simrt_scenario_load(struct simrt_scenario **out, const char *path, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return serr(err, errlen, "%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				return serr(err, errlen, "%s: out of memory", path);
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
		if (len > (16u << 20)) {
			free(buf);
			fclose(f);
			return serr(err, errlen, "%s: larger than 16 MiB", path);
		}
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(buf);
		return serr(err, errlen, "%s: read error", path);
	}
	char msg[400];
	int rc = simrt_scenario_parse(out, buf, len, msg, sizeof(msg));
	free(buf);
	if (rc < 0)
		serr(err, errlen, "%s: %s", path, msg);
	return rc;
}
