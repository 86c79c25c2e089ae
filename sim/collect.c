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

/* Each table's rows as JSON objects, sorted by primary key (ids are COLLATE
 * "C": byte order). Every column the model writes; the names are the
 * columns' (failovers.failed_node as "node_id", docs/chaos.md). keep: which
 * rows final.json holds (all but finished commands: a run writes hundreds of
 * thousands, and the checks need the open ones; the digest covers all). */
static const struct {
	const char *name, *row, *order, *keep;
} tables[COLLECT_NTABLES] = {
	{"actors",
	 "json_build_object('id', id, 'name', name, 'module', module, 'cpu_required', cpu_required, "
	 "'memory_required_mb', memory_required_mb, 'preferred_region', preferred_region, "
	 "'constraints', constraints, 'priority', priority, 'max_latency_ms', max_latency_ms, "
	 "'replicas', replicas, 'strategy', strategy, 'contracts', contracts, 'generation', generation, "
	 "'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ")",
	 "id", "true"},
	{"placements",
	 "json_build_object('actor_id', actor_id, 'instance', instance, 'node_id', node_id, 'state', state, "
	 "'state_version', state_version)",
	 "actor_id, instance", "true"},
	{"nodes",
	 "json_build_object('id', id, 'region', region, 'labels', labels, 'cpu_capacity', cpu_capacity, "
	 "'memory_mb', memory_mb, 'base_cpu_used', base_cpu_used, 'base_memory_used_mb', base_memory_used_mb, "
	 "'base_actor_count', base_actor_count, 'cpu_measured', cpu_measured, "
	 "'memory_measured_mb', memory_measured_mb, 'status', status, 'cordoned', cordoned, "
	 "'draining', draining, 'error_count', error_count, 'last_heartbeat', " MS("last_heartbeat") ", "
	 "'policy_version', policy_version, 'policy_target', policy_target, 'agent_version', agent_version, "
	 "'generation', generation, 'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ")",
	 "id", "true"},
	{"commands",
	 "json_build_object('command_id', command_id, 'command_type', command_type, 'target_node', target_node, "
	 "'actor_id', actor_id, 'instance', instance, 'term', term, 'generation', generation, "
	 "'config_version', config_version, 'payload', payload, 'status', status, 'attempts', attempts, "
	 "'created_at', " MS("created_at") ", 'updated_at', " MS("updated_at") ", "
	 "'published_at', " MS("published_at") ", 'acked_at', " MS("acked_at") ", "
	 "'applied_version', applied_version, 'error', error)",
	 "command_id", "status IN ('pending', 'published')"},
	{"failovers",
	 "json_build_object('id', id, 'node_id', failed_node, 'status', status, 'error', error, "
	 "'assignments', assignments, 'actor_ids', actor_ids, 'detected_at', " MS("detected_at") ", "
	 "'started_at', " MS("started_at") ", 'finished_at', " MS("finished_at") ", 'downtime_ms', downtime_ms)",
	 "id", "true"},
	{"policies",
	 "json_build_object('policy_id', policy_id, 'version', version, 'allowed_contracts', allowed_contracts, "
	 "'denied_contracts', denied_contracts, 'max_actor_memory_mb', max_actor_memory_mb, "
	 "'network_restrictions', network_restrictions, 'selector', selector, "
	 "'created_at', " MS("created_at") ")",
	 "policy_id, version", "true"},
};

/* Every command counted, finished ones included. */
#define COMMANDS_SUMMARY_SQL                                                                                    \
	"SELECT json_build_object('total', count(*), 'retried', count(*) FILTER (WHERE attempts > 1), "          \
	"'by_status', coalesce((SELECT json_object_agg(status, n ORDER BY status) FROM "                         \
	"(SELECT status, count(*) AS n FROM commands GROUP BY status) s), '{}')) FROM commands"

int collect_digest(json_t *digests, char hex[65])
{
	static const char *const names[COLLECT_NTABLES] = COLLECT_TABLES;
	char buf[COLLECT_NTABLES * 96];
	size_t n = 0;
	for (int i = 0; i < COLLECT_NTABLES; i++) {
		const char *d = json_string_value(json_object_get(digests, names[i]));
		if (!d)
			return -1;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s:%s\n", names[i], d);
		if (n >= sizeof(buf))
			return -1;
	}
	uint8_t d[DIGEST_SHA256_LEN];
	digest_sha256(buf, n, d);
	digest_hex(d, sizeof(d), hex);
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

struct collect_snap {
	PGconn *c;
	int replica;
	json_t *projected; /* lattice_state.applied_index at the snapshot */
};

void collect_abort(struct collect_snap *s)
{
	if (!s)
		return;
	PQfinish(s->c);
	json_decref(s->projected);
	free(s);
}

int collect_begin(const char *conninfo, int replica, struct collect_snap **out, char *err, size_t errlen)
{
	/* connect_timeout: a killed server must not hang the end of a run */
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {conninfo, "10", "lattice-sim collect", NULL};
	struct collect_snap *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "replica %d: out of memory reading its database", replica);
		return -1;
	}
	s->replica = replica;
	s->c = PQconnectdbParams(keys, vals, 1);
	PGresult *r = NULL;
	if (!s->c || PQstatus(s->c) != CONNECTION_OK) {
		snprintf(err, errlen, "replica %d: cannot connect to its database: %s", replica,
			 s->c ? PQerrorMessage(s->c) : "out of memory");
		one_line(err);
		collect_abort(s);
		return -1;
	}
	char what[64];
	snprintf(what, sizeof(what), "replica %d: BEGIN", replica);
	/* one snapshot for every table: the rows of a table must agree with the
	 * others' (placements of the actors read) and with projected_index; the
	 * first query takes it */
	if (!(r = run(s->c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = 120000",
		      PGRES_COMMAND_OK, what, err, errlen)))
		goto fail;
	PQclear(r);
	snprintf(what, sizeof(what), "replica %d: reading lattice_state", replica);
	if (!(r = run(s->c, "SELECT applied_index FROM lattice_state", PGRES_TUPLES_OK, what, err, errlen)))
		goto fail;
	s->projected = PQntuples(r) == 1 ? json_integer(strtoll(PQgetvalue(r, 0, 0), NULL, 10)) : json_null();
	PQclear(r);
	*out = s;
	return 0;
fail:
	PQclear(r);
	collect_abort(s);
	return -1;
}

int collect_finish(struct collect_snap *s, json_t **out, char *err, size_t errlen)
{
	PGconn *c = s->c;
	int replica = s->replica;
	json_t *tabs = NULL, *el = NULL, *summary = NULL, *digests = NULL;
	PGresult *r = NULL;
	char what[64];
	if (!(tabs = json_object()) || !(digests = json_object()))
		goto oom;
	char sql[4096];
	for (int i = 0; i < COLLECT_NTABLES; i++) {
		/* The digest in PostgreSQL, row by row: the text of every row, in key
		 * order, without moving the rows. */
		snprintf(what, sizeof(what), "replica %d: digest of %s", replica, tables[i].name);
		snprintf(sql, sizeof(sql),
			 "SELECT encode(sha256(convert_to(coalesce(string_agg(md5((%s)::text), '' ORDER BY %s), ''), "
			 "'UTF8')), 'hex') FROM %s",
			 tables[i].row, tables[i].order, tables[i].name);
		if (!(r = run(c, sql, PGRES_TUPLES_OK, what, err, errlen)))
			goto fail;
		if (PQntuples(r) != 1 || json_object_set_new(digests, tables[i].name, json_string(PQgetvalue(r, 0, 0))))
			goto oom;
		PQclear(r);
		snprintf(what, sizeof(what), "replica %d: reading %s", replica, tables[i].name);
		snprintf(sql, sizeof(sql), "SELECT coalesce(json_agg(%s ORDER BY %s), '[]') FROM %s WHERE %s",
			 tables[i].row, tables[i].order, tables[i].name, tables[i].keep);
		if (!(r = run(c, sql, PGRES_TUPLES_OK, what, err, errlen)))
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
	snprintf(what, sizeof(what), "replica %d: counting commands", replica);
	if (!(r = run(c, COMMANDS_SUMMARY_SQL, PGRES_TUPLES_OK, what, err, errlen)))
		goto fail;
	summary = PQntuples(r) == 1 ? json_loads(PQgetvalue(r, 0, 0), 0, NULL) : NULL;
	if (!json_is_object(summary))
		goto oom;
	PQclear(r);
	r = NULL;
	char hex[65];
	if (collect_digest(digests, hex) != 0)
		goto oom;
	el = json_pack("{s:i, s:b, s:n, s:O, s:O, s:O, s:O, s:s}", "replica", replica, "alive", 1, "applied_index",
		       "projected_index", s->projected, "tables", tabs, "commands_summary", summary, "digests",
		       digests, "digest", hex);
	if (!el)
		goto oom;
	json_decref(tabs);
	json_decref(summary);
	json_decref(digests);
	PQclear(PQexec(c, "COMMIT"));
	collect_abort(s);
	*out = el;
	return 0;
oom:
	snprintf(err, errlen, "replica %d: out of memory reading its database", replica);
fail:
	PQclear(r);
	json_decref(tabs);
	json_decref(summary);
	json_decref(digests);
	collect_abort(s);
	return -1;
}

int collect_replica(const char *conninfo, int replica, json_t **out, char *err, size_t errlen)
{
	struct collect_snap *s;
	if (collect_begin(conninfo, replica, &s, err, errlen) < 0)
		return -1;
	return collect_finish(s, out, err, errlen);
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
