/* query — the API's reads. PostgreSQL builds each document (schema/ api_* views);
 * this module only pages, filters and parses. */
#include "query.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_TEXTOID 25 /* pg_type oid of text (catalog/pg_type_d.h is server-only) */

/* Parameters of every list statement, by position ($1 is QP_AFTER, ...); each
 * statement uses the ones it needs. Typed as text up front, so an unused one is
 * not an error. */
enum { QP_AFTER, QP_LIMIT, QP_REGION, QP_STATUS, QP_LABEL_KEY, QP_LABEL_VALUE, QP_NODE, QP_ACTOR,
       QP_PROVIDER, QP_CONTRACT, QP_COUNT };

static const char *const query_get_sql[] = {
	[QUERY_NODES] = "SELECT doc::text FROM api_nodes WHERE id = $1",
	[QUERY_ACTORS] = "SELECT doc::text FROM api_actors WHERE id = $1",
	[QUERY_PROVIDERS] = "SELECT doc::text FROM api_providers WHERE id = $1",
	[QUERY_LINKS] = "SELECT doc::text FROM api_links WHERE id = $1",
	[QUERY_POLICIES] = "SELECT doc::text FROM api_policies WHERE policy_id = $1",
	[QUERY_COMMANDS] = "SELECT doc::text FROM api_commands WHERE command_id = $1",
	[QUERY_FAILOVERS] = "SELECT doc::text FROM api_failovers WHERE id = $1",
};

/* Unnamed statements are planned with the parameter values at hand, so the
 * "$n IS NULL OR ..." of an absent filter folds away and indexes still serve the
 * rest. Column 0 is the id (the cursor), column 1 the document. */
static const char *const query_list_sql[] = {
	[QUERY_NODES] = "SELECT id, doc::text FROM api_nodes"
			" WHERE ($1 IS NULL OR id > $1)"
			" AND ($3 IS NULL OR region = $3) AND ($4 IS NULL OR status = $4)"
			" AND ($5 IS NULL OR $6 IS NOT NULL OR labels ? $5)"
			" AND ($6 IS NULL OR labels @> jsonb_build_object($5, $6))"
			" ORDER BY id LIMIT $2::bigint",
	[QUERY_ACTORS] = "SELECT id, doc::text FROM api_actors a"
			 " WHERE ($1 IS NULL OR id > $1)"
			 " AND ($7 IS NULL OR EXISTS (SELECT 1 FROM placements p"
			 "  WHERE p.actor_id = a.id AND p.node_id = $7))"
			 " ORDER BY id LIMIT $2::bigint",
	[QUERY_PROVIDERS] = "SELECT id, doc::text FROM api_providers"
			    " WHERE ($1 IS NULL OR id > $1) AND ($10 IS NULL OR contract_id = $10)"
			    " ORDER BY id LIMIT $2::bigint",
	[QUERY_LINKS] = "SELECT id, doc::text FROM api_links"
			" WHERE ($1 IS NULL OR id > $1)"
			" AND ($8 IS NULL OR actor_id = $8) AND ($9 IS NULL OR provider_id = $9)"
			" AND ($10 IS NULL OR contract_id = $10)"
			" ORDER BY id LIMIT $2::bigint",
	[QUERY_POLICIES] = "SELECT policy_id, doc::text FROM api_policies"
			   " WHERE ($1 IS NULL OR policy_id > $1)"
			   " ORDER BY policy_id LIMIT $2::bigint",
	[QUERY_COMMANDS] = "SELECT command_id, doc::text FROM api_commands"
			   " WHERE ($1 IS NULL OR command_id > $1)"
			   " AND ($7 IS NULL OR target_node = $7) AND ($4 IS NULL OR status = $4)"
			   " ORDER BY command_id LIMIT $2::bigint",
	[QUERY_FAILOVERS] = "SELECT id, doc::text FROM api_failovers"
			    " WHERE ($1 IS NULL OR id > $1)"
			    " AND ($7 IS NULL OR failed_node = $7) AND ($4 IS NULL OR status = $4)"
			    " ORDER BY id LIMIT $2::bigint",
};

static const char query_versions_sql[] =
	"SELECT policy_id, doc::text FROM api_policy_versions WHERE policy_id = $1 ORDER BY version";
static const char query_events_sql[] =
	"SELECT seq, doc::text FROM api_events WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint";
static const char query_applied_sql[] = "SELECT applied_index FROM lattice_state";
static const char query_head_sql[] = "SELECT coalesce(max(seq), 0) FROM events";
/* Counts for dashboards (GET /v1/summary): one row, one JSON document. A
 * region's use is its nodes' base load plus the requests of the placements on
 * them, summed in one join (api_nodes' per-node aggregate, run for every node,
 * took half a second at 10,000 nodes and 100,000 actors). */
static const char query_summary_sql[] =
	"WITH nr AS (SELECT region, count(*) AS total,"
	"   count(*) FILTER (WHERE status = 'healthy') AS healthy,"
	"   count(*) FILTER (WHERE status = 'degraded') AS degraded,"
	"   count(*) FILTER (WHERE status = 'unhealthy') AS unhealthy,"
	"   count(*) FILTER (WHERE cordoned) AS cordoned, count(*) FILTER (WHERE draining) AS draining,"
	"   count(*) FILTER (WHERE policy_version < policy_target) AS policy_behind,"
	"   sum(cpu_capacity) AS cpu_capacity, sum(memory_mb) AS memory_mb, sum(base_cpu_used) AS base_cpu,"
	"   sum(base_memory_used_mb) AS base_mem, sum(base_actor_count) AS base_actors"
	"  FROM nodes GROUP BY region),"
	" ru AS (SELECT n.region, sum(a.cpu_required) AS cpu, sum(a.memory_required_mb) AS mem, count(*) AS inst"
	"  FROM placements p JOIN actors a ON a.id = p.actor_id JOIN nodes n ON n.id = p.node_id GROUP BY n.region),"
	" r AS (SELECT nr.region, nr.total,"
	"   json_build_object('healthy', nr.healthy, 'degraded', nr.degraded, 'unhealthy', nr.unhealthy) AS by_status,"
	"   nr.cordoned, nr.policy_behind, nr.cpu_capacity, nr.base_cpu + coalesce(ru.cpu, 0) AS cpu_used,"
	"   nr.memory_mb, nr.base_mem + coalesce(ru.mem, 0) AS memory_used_mb,"
	"   nr.base_actors + coalesce(ru.inst, 0) AS actor_count"
	"  FROM nr LEFT JOIN ru ON ru.region = nr.region)"
	"SELECT json_build_object("
	" 'nodes', json_build_object("
	"  'total', (SELECT coalesce(sum(total), 0) FROM nr),"
	"  'by_status', (SELECT json_build_object('healthy', coalesce(sum(healthy), 0),"
	"    'degraded', coalesce(sum(degraded), 0), 'unhealthy', coalesce(sum(unhealthy), 0)) FROM nr),"
	"  'cordoned', (SELECT coalesce(sum(cordoned), 0) FROM nr),"
	"  'draining', (SELECT coalesce(sum(draining), 0) FROM nr),"
	"  'policy_behind', (SELECT coalesce(sum(policy_behind), 0) FROM nr),"
	"  'regions', (SELECT coalesce(json_agg(r ORDER BY r.region), '[]') FROM r)),"
	" 'actors', json_build_object("
	"  'total', (SELECT count(*) FROM actors),"
	"  'instances', (SELECT count(*) FROM placements),"
	"  'by_state', (SELECT coalesce(json_object_agg(state, c), '{}') FROM"
	"   (SELECT state, count(*) AS c FROM placements GROUP BY state) s)),"
	" 'commands', json_build_object('by_status', (SELECT json_build_object("
	"   'pending', count(*) FILTER (WHERE status = 'pending'),"
	"   'published', count(*) FILTER (WHERE status = 'published'),"
	"   'acked', count(*) FILTER (WHERE status = 'acked'),"
	"   'failed', count(*) FILTER (WHERE status = 'failed'),"
	"   'superseded', count(*) FILTER (WHERE status = 'superseded')) FROM commands)),"
	" 'failovers', json_build_object('by_status', (SELECT coalesce(json_object_agg(status, c), '{}') FROM"
	"   (SELECT status, count(*) AS c FROM failovers GROUP BY status) s)),"
	" 'events', json_build_object('last_seq', (SELECT coalesce(max(seq), 0) FROM events))"
	")::text";

static void query_err(char *err, size_t errlen, const char *msg)
{
	if (!err || !errlen)
		return;
	snprintf(err, errlen, "%s", msg && *msg ? msg : "unknown error");
	size_t n = strlen(err);
	while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
		err[--n] = '\0';
	for (char *p = err; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* Every statement is prepared once per session: parsing a query over the api_*
 * views (expanding the view rules) costs far more than running it. Sessions use
 * custom plans so the "$n IS NULL OR ..." of an absent filter still folds away. */
enum {
	QS_GET = 0,
	QS_LIST = QS_GET + 7,
	QS_VERSIONS = QS_LIST + 7,
	QS_EVENTS,
	QS_APPLIED,
	QS_HEAD,
	QS_SUMMARY,
	QS_COUNT
};

static const char *query_sql(int stmt)
{
	if (stmt < QS_LIST)
		return query_get_sql[stmt - QS_GET];
	if (stmt < QS_VERSIONS)
		return query_list_sql[stmt - QS_LIST];
	return stmt == QS_VERSIONS ? query_versions_sql
	       : stmt == QS_EVENTS ? query_events_sql
	       : stmt == QS_APPLIED ? query_applied_sql
	       : stmt == QS_HEAD    ? query_head_sql
				    : query_summary_sql;
}

static const unsigned int query_types[QP_COUNT] = {
	QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID,
	QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID, QUERY_TEXTOID,
};

static int query_nparams(int stmt)
{
	if (stmt < QS_LIST || stmt == QS_VERSIONS)
		return 1;
	if (stmt < QS_VERSIONS)
		return QP_COUNT;
	return stmt == QS_EVENTS ? 2 : 0;
}

/* Which session this thread prepared its statements in (connection + backend). */
static _Thread_local PGconn *query_prepared_conn;
static _Thread_local int query_prepared_pid;

static int query_prepare(PGconn *c)
{
	if (query_prepared_conn == c && query_prepared_pid == PQbackendPID(c))
		return 0;
	/* No JIT: these are short OLTP reads, and the node list's per-node usage
	 * aggregate (schema 003) makes its cost estimate big enough to trigger a
	 * compile that took longer than the query itself (~20 ms at 100k actors). */
	PGresult *r = PQexec(c, "SET plan_cache_mode = force_custom_plan; SET jit = off");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	for (int i = 0; ok && i < QS_COUNT; i++) {
		char name[16];
		snprintf(name, sizeof(name), "q%d", i);
		r = PQprepare(c, name, query_sql(i), query_nparams(i), query_types);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK;
		/* Prepared by an earlier pass on this same session: fine. */
		if (!ok && r && PQresultErrorField(r, PG_DIAG_SQLSTATE) &&
		    strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42P05") == 0)
			ok = true;
		PQclear(r);
	}
	if (!ok)
		return -1;
	query_prepared_conn = c;
	query_prepared_pid = PQbackendPID(c);
	return 0;
}

/* Runs statement stmt; on success returns rows, else NULL with *rc and err set. */
static PGresult *query_run(PGconn *c, int stmt, int n, const char *const *params, int *rc, char *err,
			   size_t errlen)
{
	if (!c || PQstatus(c) != CONNECTION_OK) {
		query_err(err, errlen, c ? PQerrorMessage(c) : "no connection to PostgreSQL");
		*rc = QUERY_UNAVAILABLE;
		return NULL;
	}
	char name[16];
	snprintf(name, sizeof(name), "q%d", stmt);
	PGresult *r = NULL;
	if (query_prepare(c) == 0) {
		r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
		const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
		if (st && strcmp(st, "26000") == 0) {
			/* The session was replaced under us (reconnect): prepare again. */
			PQclear(r);
			query_prepared_conn = NULL;
			r = query_prepare(c) == 0 ? PQexecPrepared(c, name, n, params, NULL, NULL, 0) : NULL;
		}
	} else {
		r = PQexecParams(c, query_sql(stmt), n, query_types, params, NULL, NULL, 0);
	}
	const char *fst = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	bool gone = PQstatus(c) == CONNECTION_BAD ||
		    (fst && (strncmp(fst, "08", 2) == 0 || strncmp(fst, "57P0", 4) == 0));
	if (PQresultStatus(r) != PGRES_TUPLES_OK && gone) {
		/* The server restarted under this thread's connection (libpq may
		 * report the server's "terminating connection" before it notices
		 * the socket closed): one fresh try instead of failing the first
		 * read after every restart. */
		PQclear(r);
		r = NULL;
		PQreset(c);
		if (PQstatus(c) == CONNECTION_OK && query_prepare(c) == 0)
			r = PQexecPrepared(c, name, n, params, NULL, NULL, 0);
	}
	if (PQresultStatus(r) == PGRES_TUPLES_OK)
		return r;
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	query_err(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	/* lost connection, server shutting down or starting up: worth a retry */
	*rc = PQstatus(c) != CONNECTION_OK || !st || strncmp(st, "08", 2) == 0 ||
			      strncmp(st, "57P0", 4) == 0
		      ? QUERY_UNAVAILABLE
		      : QUERY_ERROR;
	if (*rc == QUERY_ERROR && strcmp(st, "57014") == 0) /* query_canceled */
		*rc = QUERY_TIMEOUT;
	PQclear(r);
	return NULL;
}

static json_t *query_doc(const PGresult *r, int row, int col, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col), 0, &je);
	if (!j)
		snprintf(err, errlen, "bad document from the database: %s", je.text);
	return j;
}

/* Rows [0, n) of column col as a JSON array. */
static int query_array(const PGresult *r, int n, int col, json_t **out, char *err, size_t errlen)
{
	json_t *arr = json_array();
	if (!arr) {
		query_err(err, errlen, "out of memory");
		return QUERY_ERROR;
	}
	for (int i = 0; i < n; i++) {
		json_t *doc = query_doc(r, i, col, err, errlen);
		if (!doc || json_array_append_new(arr, doc) != 0) {
			json_decref(arr);
			return QUERY_ERROR;
		}
	}
	*out = arr;
	return QUERY_OK;
}

static int64_t query_limit(int64_t limit)
{
	if (limit <= 0)
		return QUERY_LIMIT_DEFAULT;
	return limit > QUERY_LIMIT_MAX ? QUERY_LIMIT_MAX : limit;
}

int query_get(PGconn *c, enum query_obj o, const char *id, json_t **out, char *err, size_t errlen)
{
	int rc;
	const char *params[] = {id};
	PGresult *r = query_run(c, QS_GET + (int)o, 1, params, &rc, err, errlen);
	if (!r)
		return rc;
	if (PQntuples(r) == 0) {
		snprintf(err, errlen, "%s not found", id);
		rc = QUERY_NOT_FOUND;
	} else {
		json_t *doc = query_doc(r, 0, 0, err, errlen);
		rc = doc ? QUERY_OK : QUERY_ERROR;
		if (doc)
			*out = doc;
	}
	PQclear(r);
	return rc;
}

int query_list(PGconn *c, enum query_obj o, const struct query_filter *f, json_t **items,
	       char **next, char *err, size_t errlen)
{
	static const struct query_filter none;
	char limbuf[24];
	int rc;
	if (!f)
		f = &none;
	int64_t limit = query_limit(f->limit);
	snprintf(limbuf, sizeof(limbuf), "%" PRId64, limit + 1); /* one more: is there a next page? */
	const char *params[QP_COUNT] = {
		[QP_AFTER] = f->after,
		[QP_LIMIT] = limbuf,
		[QP_REGION] = f->region,
		[QP_STATUS] = f->status,
		[QP_LABEL_KEY] = f->label_key,
		[QP_LABEL_VALUE] = f->label_key ? f->label_value : NULL,
		[QP_NODE] = f->node_id,
		[QP_ACTOR] = f->actor_id,
		[QP_PROVIDER] = f->provider_id,
		[QP_CONTRACT] = f->contract_id,
	};
	PGresult *r = query_run(c, QS_LIST + (int)o, QP_COUNT, params, &rc, err, errlen);
	if (!r)
		return rc;
	int n = PQntuples(r);
	bool more = n > limit;
	if (more)
		n = (int)limit;
	json_t *arr;
	char *cursor = NULL;
	rc = query_array(r, n, 1, &arr, err, errlen);
	if (rc == QUERY_OK && more && !(cursor = strdup(PQgetvalue(r, n - 1, 0)))) {
		json_decref(arr);
		query_err(err, errlen, "out of memory");
		rc = QUERY_ERROR;
	}
	PQclear(r);
	if (rc == QUERY_OK) {
		*items = arr;
		*next = cursor;
	}
	return rc;
}

int query_policy_versions(PGconn *c, const char *policy_id, json_t **items, char *err,
			  size_t errlen)
{
	int rc;
	const char *params[] = {policy_id};
	PGresult *r = query_run(c, QS_VERSIONS, 1, params, &rc, err, errlen);
	if (!r)
		return rc;
	if (PQntuples(r) == 0) {
		snprintf(err, errlen, "policy %s not found", policy_id);
		rc = QUERY_NOT_FOUND;
	} else {
		rc = query_array(r, PQntuples(r), 1, items, err, errlen);
	}
	PQclear(r);
	return rc;
}

int query_events(PGconn *c, uint64_t since, bool from_oldest, int64_t limit, json_t **items, uint64_t *last_seq,
		 uint64_t *first_seq, char *err, size_t errlen)
{
	char sbuf[24], lbuf[24];
	int rc;
	snprintf(sbuf, sizeof(sbuf), "%" PRIu64, since);
	snprintf(lbuf, sizeof(lbuf), "%" PRId64, query_limit(limit));
	const char *params[] = {sbuf, lbuf};
	PGresult *r = query_run(c, QS_EVENTS, 2, params, &rc, err, errlen);
	if (!r)
		return rc;
	int n = PQntuples(r);
	uint64_t first = n ? strtoull(PQgetvalue(r, 0, 0), NULL, 10) : 0;
	if (n && !from_oldest && first != since + 1) {
		PQclear(r);
		snprintf(err, errlen, "events %" PRIu64 " to %" PRIu64 " are not held", since + 1, first - 1);
		*first_seq = first;
		return QUERY_GONE;
	}
	/* Up to the first gap: the page ends there. */
	int upto = n ? 1 : 0;
	while (upto < n && strtoull(PQgetvalue(r, upto, 0), NULL, 10) == first + (uint64_t)upto)
		upto++;
	json_t *arr;
	rc = query_array(r, upto, 1, &arr, err, errlen);
	if (rc == QUERY_OK) {
		*items = arr;
		*last_seq = upto ? strtoull(PQgetvalue(r, upto - 1, 0), NULL, 10) : since;
	}
	PQclear(r);
	return rc;
}

/* One row, one unsigned number: lattice_state.applied_index or max(seq). */
static int query_one_u64(PGconn *c, int stmt, uint64_t *out, char *err, size_t errlen)
{
	int rc;
	PGresult *r = query_run(c, stmt, 0, NULL, &rc, err, errlen);
	if (!r)
		return rc;
	if (PQntuples(r) != 1) {
		query_err(err, errlen, "no row (lattice_state empty): was the schema migrated?");
		rc = QUERY_ERROR;
	} else {
		*out = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		rc = QUERY_OK;
	}
	PQclear(r);
	return rc;
}

int query_applied_index(PGconn *c, uint64_t *out, char *err, size_t errlen)
{
	return query_one_u64(c, QS_APPLIED, out, err, errlen);
}

int query_events_head(PGconn *c, uint64_t *out, char *err, size_t errlen)
{
	return query_one_u64(c, QS_HEAD, out, err, errlen);
}

int query_summary(PGconn *c, json_t **out, char *err, size_t errlen)
{
	int rc;
	PGresult *r = query_run(c, QS_SUMMARY, 0, NULL, &rc, err, errlen);
	if (!r)
		return rc;
	json_t *j = PQntuples(r) == 1 ? query_doc(r, 0, 0, err, errlen) : NULL;
	PQclear(r);
	if (j == NULL)
		return QUERY_ERROR;
	*out = j;
	return QUERY_OK;
}
