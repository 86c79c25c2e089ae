/* collect — see collect.h. */
#include "collect.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"

/* ms since the epoch of a timestamptz column (NULL stays NULL): the times the
 * model wrote, as the numbers it wrote them as (schema's lattice_from_ms). */
#define MS(c) "(extract(epoch FROM " c ") * 1000)::bigint"

/* Each table as one JSON array of row objects, sorted by primary key (ids are
 * COLLATE "C": byte order). Every column the model writes; the names are the
 * columns' (failovers.failed_node as "node_id", docs/chaos.md). */
static const struct {
	const char *name;
	const char *sql;
} tables[COLLECT_NTABLES] = {
	{"actors", "SELECT coalesce(json_agg(json_build_object("
		   "'id', id, 'name', name, 'module', module, 'cpu_required', cpu_required, "
		   "'memory_required_mb', memory_required_mb, 'preferred_region', preferred_region, "
		   "'constraints', constraints, 'priority', priority, 'max_latency_ms', max_latency_ms, "
		   "'replicas', replicas, 'strategy', strategy, 'contracts', contracts, 'generation', generation, "
		   "'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ") ORDER BY id), '[]') "
		   "FROM actors"},
	{"placements", "SELECT coalesce(json_agg(json_build_object("
		       "'actor_id', actor_id, 'instance', instance, 'node_id', node_id, 'state', state, "
		       "'state_version', state_version) ORDER BY actor_id, instance), '[]') FROM placements"},
	{"nodes", "SELECT coalesce(json_agg(json_build_object("
		  "'id', id, 'region', region, 'labels', labels, 'cpu_capacity', cpu_capacity, 'memory_mb', memory_mb, "
		  "'base_cpu_used', base_cpu_used, 'base_memory_used_mb', base_memory_used_mb, "
		  "'base_actor_count', base_actor_count, 'cpu_measured', cpu_measured, "
		  "'memory_measured_mb', memory_measured_mb, 'status', status, 'cordoned', cordoned, "
		  "'draining', draining, 'error_count', error_count, 'last_heartbeat', " MS("last_heartbeat") ", "
		  "'policy_version', policy_version, 'policy_target', policy_target, 'agent_version', agent_version, "
		  "'generation', generation, 'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ") "
		  "ORDER BY id), '[]') FROM nodes"},
	{"commands", "SELECT coalesce(json_agg(json_build_object("
		     "'command_id', command_id, 'command_type', command_type, 'target_node', target_node, "
		     "'actor_id', actor_id, 'instance', instance, 'term', term, 'generation', generation, "
		     "'config_version', config_version, 'payload', payload, 'status', status, 'attempts', attempts, "
		     "'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ", "
		     "'published_at', " MS("published_at") ", 'acked_at', " MS("acked_at") ", "
		     "'applied_version', applied_version, 'error', error) ORDER BY command_id), '[]') FROM commands"},
	{"failovers", "SELECT coalesce(json_agg(json_build_object("
		      "'id', id, 'node_id', failed_node, 'status', status, 'error', error, 'assignments', assignments, "
		      "'actor_ids', actor_ids, 'detected_at', " MS("detected_at") ", 'started_at', " MS("started_at") ", "
		      "'finished_at', " MS("finished_at") ", 'downtime_ms', downtime_ms) ORDER BY id), '[]') "
		      "FROM failovers"},
	{"policies", "SELECT coalesce(json_agg(json_build_object("
		     "'policy_id', policy_id, 'version', version, 'allowed_contracts', allowed_contracts, "
		     "'denied_contracts', denied_contracts, 'max_actor_memory_mb', max_actor_memory_mb, "
		     "'network_restrictions', network_restrictions, 'selector', selector, "
		     "'created_at', " MS("created_at") ") ORDER BY policy_id, version), '[]') FROM policies"},
};

int collect_digest(json_t *tables_obj, char hex[65])
{
	/* sorted keys, compact: the same rows always give the same bytes */
	char *s = json_dumps(tables_obj, JSON_COMPACT | JSON_SORT_KEYS);
	if (!s)
		return -1;
	uint8_t d[DIGEST_SHA256_LEN];
	digest_sha256(s, strlen(s), d);
	digest_hex(d, sizeof(d), hex);
	free(s);
	return 0;
}

/* libpq's messages end with a newline and may hold more lines (a hint):
 * one line for the run's output. */
static void one_line(char *s)
{
	size_t n = strlen(s), j = 0;
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' || s[i] == '\t') {
			if (j > 0 && s[j - 1] != ' ')
				s[j++] = ' ';
			continue;
		}
		s[j++] = s[i];
	}
	s[j] = '\0';
}

/* Runs sql; returns its result when it has the wanted status, else NULL with
 * err naming what. */
static PGresult *run(PGconn *c, const char *sql, ExecStatusType want, const char *what, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	if (PQresultStatus(r) == want)
		return r;
	snprintf(err, errlen, "%s: %s", what, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	one_line(err);
	PQclear(r);
	return NULL;
}

int collect_replica(const char *conninfo, int replica, json_t **out, char *err, size_t errlen)
{
	/* connect_timeout: a killed server must not hang the end of a run */
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {conninfo, "10", "lattice-sim collect", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	json_t *tabs = NULL, *el = NULL, *projected = NULL;
	PGresult *r = NULL;
	if (!c || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "replica %d: cannot connect to its database: %s", replica,
			 c ? PQerrorMessage(c) : "out of memory");
		one_line(err);
		PQfinish(c);
		return -1;
	}
	char what[64];
	snprintf(what, sizeof(what), "replica %d: BEGIN", replica);
	/* one snapshot for every table: the rows of a table must agree with the
	 * others' (placements of the actors read) and with projected_index */
	if (!(r = run(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 120000",
		      PGRES_COMMAND_OK, what, err, errlen)))
		goto fail;
	PQclear(r);
	if (!(tabs = json_object()))
		goto oom;
	for (int i = 0; i < COLLECT_NTABLES; i++) {
		snprintf(what, sizeof(what), "replica %d: reading %s", replica, tables[i].name);
		if (!(r = run(c, tables[i].sql, PGRES_TUPLES_OK, what, err, errlen)))
			goto fail;
		json_error_t je;
		json_t *rows = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, &je) : NULL;
		if (!json_is_array(rows)) {
			snprintf(err, errlen, "replica %d: %s: not a JSON array (%s)", replica, tables[i].name,
				 rows ? "wrong type" : je.text);
			json_decref(rows);
			goto fail;
		}
		PQclear(r);
		r = NULL;
		if (json_object_set_new(tabs, tables[i].name, rows) != 0)
			goto oom;
	}
	snprintf(what, sizeof(what), "replica %d: reading lattice_state", replica);
	if (!(r = run(c, "SELECT applied_index FROM lattice_state", PGRES_TUPLES_OK, what, err, errlen)))
		goto fail;
	projected = PQntuples(r) == 1 ? json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)) : json_null();
	PQclear(r);
	r = NULL;
	char hex[65];
	if (collect_digest(tabs, hex) != 0)
		goto oom;
	el = json_pack("{s:i, s:b, s:n, s:o, s:O, s:s}", "replica", replica, "alive", 1, "applied_index",
		       "projected_index", projected, "tables", tabs, "digest", hex);
	projected = NULL; /* stolen */
	if (!el)
		goto oom;
	json_decref(tabs);
	PQclear(PQexec(c, "COMMIT"));
	PQfinish(c);
	*out = el;
	return 0;
oom:
	snprintf(err, errlen, "replica %d: out of memory reading its database", replica);
fail:
	PQclear(r);
	json_decref(projected);
	json_decref(tabs);
	PQfinish(c);
	return -1;
}

int collect_final(json_t *replicas, json_t *agents, json_t *dead_nodes, int64_t t, json_t **out, char *err,
		  size_t errlen)
{
	if (!agents)
		agents = json_object();
	if (!dead_nodes)
		dead_nodes = json_array();
	if (!json_is_array(replicas) || !json_is_object(agents) || !json_is_array(dead_nodes)) {
		snprintf(err, errlen, "collect_final: replicas and dead_nodes must be arrays, agents an object");
		json_decref(replicas);
		json_decref(agents);
		json_decref(dead_nodes);
		return -1;
	}
	/* "o" steals each, also when json_pack fails */
	json_t *f = json_pack("{s:I, s:o, s:o, s:o}", "t", (json_int_t)t, "replicas", replicas, "agents", agents,
			      "dead_nodes", dead_nodes);
	if (!f) {
		snprintf(err, errlen, "collect_final: out of memory");
		return -1;
	}
	*out = f;
	return 0;
}
