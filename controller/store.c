/* store — this replica's PostgreSQL database: migrations, the projection writer
 * thread, and per-thread reader connections. See store.h for the contract.
 *
 * Writer thread, one transaction per round:
 *
 *   queue --take--> in flight --BEGIN; changes...; lattice_advance(max); COMMIT-->
 *         retained (committed, WAL maybe not flushed) --flush LSN passes--> freed
 *
 * The whole transaction is one libpq pipeline (one round trip). The projection
 * session runs with synchronous_commit = off: the Raft log on a majority of disks
 * is the durable copy, and applied_index commits atomically with the rows, so a
 * commit PostgreSQL loses in a crash is simply written again from the recorded
 * index, never twice. While this process runs, that replay comes from the retained
 * list: batches stay in memory until PostgreSQL reports their WAL flushed. After a
 * restart of latticed it comes from the Raft log (entries above
 * store_applied_index()). */
#include "store.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proj.h"

enum {
	STORE_TX_BATCHES = 1000,      /* per transaction, so one round trip stays bounded */
	STORE_TX_CHANGES = 10000,
	STORE_BACKOFF_MIN_MS = 100,
	STORE_BACKOFF_MAX_MS = 2000,
	STORE_PING_MS = 1000,         /* idle probe: notice a dead server without traffic */
	STORE_RETAIN_PING_MS = 100,   /* probe sooner while holding unflushed batches */
	STORE_IO_TIMEOUT_MS = 30000,  /* no byte in or out this long: the server is gone */
	STORE_PING_TIMEOUT_MS = 5000,
	STORE_MIGRATION_MAX = 16 << 20,
};
#define STORE_CONNECT_TIMEOUT "5" /* s; a default the conninfo may override */

/* ---- SQL ------------------------------------------------------------------- */

struct store_stmt {
	const char *name; /* prepared statement name (writer) */
	int nparams;
	const char *sql;
};

/* One statement per projection kind, parameters in proj.h's order. */
static const struct store_stmt store_proj_sql[PROJ_KIND_COUNT] = {
	[PROJ_NODE_UPSERT] = {"proj_node_upsert", 23,
		"INSERT INTO nodes (id, region, labels, cpu_capacity, memory_mb, base_cpu_used,"
		" base_memory_used_mb, base_actor_count, cpu_used, memory_used_mb, actor_count,"
		" cpu_measured, memory_measured_mb, status, cordoned, draining, error_count,"
		" last_heartbeat, policy_version, agent_version, generation, created_at, updated_at)"
		" VALUES ($1::text, $2::text, $3::jsonb, $4::bigint, $5::bigint, $6::bigint, $7::bigint,"
		" $8::bigint, $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::bigint, $14::text,"
		" $15::boolean, $16::boolean, $17::bigint, lattice_from_ms($18::bigint), $19::bigint,"
		" $20::text, $21::bigint, lattice_from_ms($22::bigint), lattice_from_ms($23::bigint))"
		" ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region, labels = EXCLUDED.labels,"
		" cpu_capacity = EXCLUDED.cpu_capacity, memory_mb = EXCLUDED.memory_mb,"
		" base_cpu_used = EXCLUDED.base_cpu_used,"
		" base_memory_used_mb = EXCLUDED.base_memory_used_mb,"
		" base_actor_count = EXCLUDED.base_actor_count, cpu_used = EXCLUDED.cpu_used,"
		" memory_used_mb = EXCLUDED.memory_used_mb, actor_count = EXCLUDED.actor_count,"
		" cpu_measured = EXCLUDED.cpu_measured,"
		" memory_measured_mb = EXCLUDED.memory_measured_mb, status = EXCLUDED.status,"
		" cordoned = EXCLUDED.cordoned, draining = EXCLUDED.draining,"
		" error_count = EXCLUDED.error_count, last_heartbeat = EXCLUDED.last_heartbeat,"
		" policy_version = EXCLUDED.policy_version, agent_version = EXCLUDED.agent_version,"
		" generation = EXCLUDED.generation, created_at = EXCLUDED.created_at,"
		" updated_at = EXCLUDED.updated_at"},
	[PROJ_NODE_DELETE] = {"proj_node_delete", 1, "DELETE FROM nodes WHERE id = $1::text"},
	[PROJ_ACTOR_UPSERT] = {"proj_actor_upsert", 15,
		"INSERT INTO actors (id, name, module, cpu_required, memory_required_mb,"
		" preferred_region, constraints, priority, max_latency_ms, replicas, strategy,"
		" contracts, generation, created_at, updated_at)"
		" VALUES ($1::text, $2::text, $3::text, $4::bigint, $5::bigint, $6::text, $7::jsonb,"
		" $8::integer, $9::bigint, $10::bigint, $11::text, $12::jsonb, $13::bigint,"
		" lattice_from_ms($14::bigint), lattice_from_ms($15::bigint))"
		" ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, module = EXCLUDED.module,"
		" cpu_required = EXCLUDED.cpu_required,"
		" memory_required_mb = EXCLUDED.memory_required_mb,"
		" preferred_region = EXCLUDED.preferred_region, constraints = EXCLUDED.constraints,"
		" priority = EXCLUDED.priority, max_latency_ms = EXCLUDED.max_latency_ms,"
		" replicas = EXCLUDED.replicas, strategy = EXCLUDED.strategy,"
		" contracts = EXCLUDED.contracts, generation = EXCLUDED.generation,"
		" created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at"},
	[PROJ_ACTOR_DELETE] = {"proj_actor_delete", 1, "DELETE FROM actors WHERE id = $1::text"},
	/* The DELETE and the upsert touch disjoint rows (instances gone / instances
	 * kept), as data-modifying CTEs must. */
	[PROJ_PLACEMENTS_SET] = {"proj_placements_set", 2,
		"WITH p AS (SELECT * FROM jsonb_to_recordset($2::jsonb)"
		"   AS x(instance integer, node_id text, state text, state_version bigint)),"
		" gone AS (DELETE FROM placements WHERE actor_id = $1::text"
		"   AND instance NOT IN (SELECT instance FROM p))"
		" INSERT INTO placements (actor_id, instance, node_id, state, state_version)"
		" SELECT $1::text, instance, node_id, state, coalesce(state_version, 0) FROM p"
		" ON CONFLICT (actor_id, instance) DO UPDATE SET node_id = EXCLUDED.node_id,"
		" state = EXCLUDED.state, state_version = EXCLUDED.state_version"
		" WHERE (placements.node_id, placements.state, placements.state_version)"
		" IS DISTINCT FROM (EXCLUDED.node_id, EXCLUDED.state, EXCLUDED.state_version)"},
	[PROJ_PROVIDER_UPSERT] = {"proj_provider_upsert", 5,
		"INSERT INTO providers (id, contract_id, image, nodes, created_at)"
		" VALUES ($1::text, $2::text, $3::text, $4::jsonb, lattice_from_ms($5::bigint))"
		" ON CONFLICT (id) DO UPDATE SET contract_id = EXCLUDED.contract_id,"
		" image = EXCLUDED.image, nodes = EXCLUDED.nodes, created_at = EXCLUDED.created_at"},
	[PROJ_PROVIDER_DELETE] = {"proj_provider_delete", 1,
		"DELETE FROM providers WHERE id = $1::text"},
	[PROJ_LINK_UPSERT] = {"proj_link_upsert", 10,
		"INSERT INTO links (id, actor_id, provider_id, contract_id, link_name, \"values\","
		" timeout_ms, retry_count, retry_delay_ms, created_at)"
		" VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::jsonb, $7::bigint,"
		" $8::bigint, $9::bigint, lattice_from_ms($10::bigint))"
		" ON CONFLICT (id) DO UPDATE SET actor_id = EXCLUDED.actor_id,"
		" provider_id = EXCLUDED.provider_id, contract_id = EXCLUDED.contract_id,"
		" link_name = EXCLUDED.link_name, \"values\" = EXCLUDED.\"values\","
		" timeout_ms = EXCLUDED.timeout_ms, retry_count = EXCLUDED.retry_count,"
		" retry_delay_ms = EXCLUDED.retry_delay_ms, created_at = EXCLUDED.created_at"},
	[PROJ_LINK_DELETE] = {"proj_link_delete", 1, "DELETE FROM links WHERE id = $1::text"},
	/* An upsert although versions are immutable: a rebuild re-inserts the current
	 * version of each policy. */
	[PROJ_POLICY_INSERT] = {"proj_policy_insert", 8,
		"INSERT INTO policies (policy_id, version, allowed_contracts, denied_contracts,"
		" max_actor_memory_mb, network_restrictions, selector, created_at)"
		" VALUES ($1::text, $2::bigint, $3::jsonb, $4::jsonb, $5::bigint, $6::jsonb, $7::jsonb,"
		" lattice_from_ms($8::bigint))"
		" ON CONFLICT (policy_id, version) DO UPDATE SET"
		" allowed_contracts = EXCLUDED.allowed_contracts,"
		" denied_contracts = EXCLUDED.denied_contracts,"
		" max_actor_memory_mb = EXCLUDED.max_actor_memory_mb,"
		" network_restrictions = EXCLUDED.network_restrictions,"
		" selector = EXCLUDED.selector, created_at = EXCLUDED.created_at"},
	/* A plain INSERT on purpose: an event written twice is a duplicate key. */
	[PROJ_EVENT_INSERT] = {"proj_event_insert", 8,
		"INSERT INTO events (seq, raft_index, at, who, kind, object_type, object_id, data)"
		" VALUES ($1::bigint, $2::bigint, lattice_from_ms($3::bigint), $4::text, $5::text,"
		" $6::text, $7::text, $8::jsonb)"},
	[PROJ_RESET] = {"proj_reset", 0, "SELECT lattice_reset()"},
};

/* The store's own statements. */
enum store_sql_id {
	SQL_BEGIN,
	SQL_COMMIT,
	SQL_ROLLBACK,
	SQL_ADVANCE,
	SQL_WAL,
	SQL_APPLIED,
	SQL_SYNC_OFF,
	SQL_MIGRATIONS_TABLE,
	SQL_MIGRATE_LOCK,
	SQL_MIGRATION_MAX,
	SQL_MIGRATION_DONE,
	SQL_MIGRATION_RECORD,
	SQL_STATE_ROW,
	SQL_STATE_READ,
	SQL_STATE_CLAIM,
	SQL_STATE_WIPE,
	SQL_COUNT
};

static const struct store_stmt store_sql[SQL_COUNT] = {
	[SQL_BEGIN] = {NULL, 0, "BEGIN"},
	[SQL_COMMIT] = {NULL, 0, "COMMIT"},
	[SQL_ROLLBACK] = {NULL, 0, "ROLLBACK"},
	[SQL_ADVANCE] = {"store_advance", 1, "SELECT lattice_advance($1::bigint)"},
	/* WAL insert position (at or past every commit so far) and flush position. */
	[SQL_WAL] = {"store_wal", 0,
		"SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint,"
		" (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint"},
	[SQL_APPLIED] = {"store_applied", 0,
		"SELECT applied_index, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint"
		" FROM lattice_state"},
	/* Why off: see the top of this file. */
	[SQL_SYNC_OFF] = {NULL, 0, "SET synchronous_commit = off"},
	[SQL_MIGRATIONS_TABLE] = {NULL, 0,
		"CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
		" name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"},
	/* One migrating process at a time; the key is "lattice1" in ASCII. */
	[SQL_MIGRATE_LOCK] = {NULL, 0, "SELECT pg_advisory_xact_lock(7810353712369739313)"},
	[SQL_MIGRATION_MAX] = {NULL, 0, "SELECT coalesce(max(version), 0) FROM schema_migrations"},
	[SQL_MIGRATION_DONE] = {NULL, 1, "SELECT 1 FROM schema_migrations WHERE version = $1::integer"},
	[SQL_MIGRATION_RECORD] = {NULL, 2,
		"INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2::text)"},
	[SQL_STATE_ROW] = {NULL, 0, "INSERT INTO lattice_state (id) VALUES (true) ON CONFLICT DO NOTHING"},
	[SQL_STATE_READ] = {NULL, 0, "SELECT applied_index, instance_id FROM lattice_state FOR UPDATE"},
	[SQL_STATE_CLAIM] = {NULL, 1, "UPDATE lattice_state SET instance_id = $1::text, updated_at = now()"},
	[SQL_STATE_WIPE] = {NULL, 1, "SELECT lattice_wipe($1::text)"},
};

/* ---- state ----------------------------------------------------------------- */

/* A committed transaction whose WAL PostgreSQL may not have flushed yet. */
struct store_txn {
	uint64_t from; /* applied index before it */
	uint64_t lsn;  /* WAL position at or past its commit record; 0 = not known yet */
	struct proj_batch *head, *tail;
	struct store_txn *next;
};

/* The calling thread's reader connection (value of s->reader_key). */
struct store_reader {
	struct store *s;
	PGconn *c;
	struct store_reader *prev, *next;
};

struct store {
	char *conninfo;
	char *instance_id;
	uint64_t open_applied;
	bool was_reset;

	pthread_mutex_t mu; /* guards the queue and the stop request */
	pthread_cond_t cv;  /* work queued or stop requested */
	struct proj_batch *qhead, *qtail;
	uint64_t last_submitted;
	bool started, stopping, flushed;
	int64_t stop_deadline; /* monotonic ms */
	pthread_t thread;
	store_projected_fn cb;
	void *cb_arg;

	atomic_uint_fast64_t projected;
	atomic_size_t backlog;
	atomic_bool healthy;
	atomic_uint_fast64_t n_tx, n_batches, n_changes, n_errors, n_reconnects;

	/* Writer thread only (and store_open before the thread exists). */
	PGconn *wc;                       /* NULL while disconnected */
	uint64_t db_applied;              /* applied_index as last committed or read */
	struct proj_batch *fl_head, *fl_tail; /* in flight: taken, not yet committed */
	size_t fl_n, fl_changes;
	struct store_txn *rt_head, *rt_tail; /* retained */
	bool down;                        /* connection lost, not yet back */
	bool sql_failing;                 /* last transaction hit an SQL error */
	bool lost;                        /* PostgreSQL lost entries we no longer hold */
	int backoff_ms;
	int64_t retry_at, ping_at;

	pthread_key_t reader_key;
	pthread_mutex_t rmu; /* guards readers */
	struct store_reader *readers;
};

/* ---- helpers --------------------------------------------------------------- */

static int64_t store_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void store_timedwait(struct store *s, int64_t until_ms)
{
	struct timespec ts = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000};
	pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

/* Formats into err, folding PostgreSQL's multi-line messages onto one line. */
__attribute__((format(printf, 3, 4))) static void store_err(char *err, size_t errlen, const char *fmt,
							    ...)
{
	va_list ap;
	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* collapse each run of white space to one space; drop it at the end */
	char *w = err;
	for (const char *r = err; *r; r++) {
		bool space = *r == ' ' || *r == '\n' || *r == '\t';
		if (!space)
			*w++ = *r;
		else if (w > err && w[-1] != ' ')
			*w++ = ' ';
	}
	if (w > err && w[-1] == ' ')
		w--;
	*w = '\0';
}

/* One line on stderr: the operator's view of a writer that is stuck or recovering. */
__attribute__((format(printf, 1, 2))) static void store_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char tmp[1024];
	store_err(tmp, sizeof(tmp), "%s", line);
	fprintf(stderr, "latticed: store: %s\n", tmp);
}

static const char *store_sqlstate(const PGresult *r)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return st ? st : "";
}

/* NOTICEs ("already exists, skipping") are noise here; WARNINGs are worth a line. */
static void store_notice(void *arg, const PGresult *r)
{
	(void)arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && strcmp(sev, "WARNING") == 0)
		store_log("PostgreSQL: %s", PQresultErrorMessage(r));
}

/* Connects (blocking), with a connect timeout and an application_name that the
 * conninfo may override. Never NULL unless out of memory; check PQstatus. */
static PGconn *store_connect(const char *conninfo, const char *appname)
{
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {STORE_CONNECT_TIMEOUT, appname, conninfo, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c)
		PQsetNoticeReceiver(c, store_notice, NULL);
	return c;
}

/* Runs one statement of store_sql (blocking); returns the result when its status
 * is want, else NULL with a message in err. */
static PGresult *store_exec(PGconn *c, enum store_sql_id id, const char *const *params,
			    ExecStatusType want, char *err, size_t errlen)
{
	const struct store_stmt *st = &store_sql[id];
	PGresult *r = PQexecParams(c, st->sql, st->nparams, NULL, params, NULL, NULL, 0);
	if (r && PQresultStatus(r) == want)
		return r;
	store_err(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	PQclear(r);
	return NULL;
}

static int store_exec_ok(PGconn *c, enum store_sql_id id, const char *const *params, char *err,
			 size_t errlen)
{
	PGresult *r = store_exec(c, id, params, PGRES_COMMAND_OK, err, errlen);
	PQclear(r);
	return r ? 0 : -1;
}

static int store_exec_tuples(PGconn *c, enum store_sql_id id, const char *const *params,
			     PGresult **out, char *err, size_t errlen)
{
	*out = store_exec(c, id, params, PGRES_TUPLES_OK, err, errlen);
	return *out ? 0 : -1;
}

static uint64_t store_u64(const PGresult *r, int row, int col)
{
	if (PQntuples(r) <= row || PQgetisnull(r, row, col))
		return 0;
	return strtoull(PQgetvalue(r, row, col), NULL, 10);
}

/* ---- migrations ------------------------------------------------------------ */

/* NNN_name.sql: digits, underscore, anything, ".sql". */
static int store_migration_version(const char *name)
{
	char *end;
	errno = 0;
	long v = strtol(name, &end, 10);
	size_t n = strlen(name);
	if (end == name || *end != '_' || errno || v <= 0 || v > 999999 || n < 5 ||
	    strcmp(name + n - 4, ".sql") != 0)
		return -1;
	return (int)v;
}

static int store_migration_filter(const struct dirent *d)
{
	return store_migration_version(d->d_name) > 0;
}

static int store_migration_cmp(const struct dirent **a, const struct dirent **b)
{
	int va = store_migration_version((*a)->d_name), vb = store_migration_version((*b)->d_name);
	return va < vb ? -1 : va > vb;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
static char *store_read_file(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		store_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);
	while (buf) {
		if (len + 1 >= cap) {
			char *nb = cap < STORE_MIGRATION_MAX ? realloc(buf, cap * 2) : NULL;
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t got = fread(buf + len, 1, cap - 1 - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (!buf || ferror(f)) {
		store_err(err, errlen, "cannot read %s: %s", path,
			  buf ? strerror(errno) : "too large or out of memory");
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

/* Applies one migration file unless schema_migrations records it. */
static int store_migrate_one(PGconn *c, const char *dir, const char *name, int version, char *err,
			     size_t errlen)
{
	char path[4096], vbuf[16], msg[512];
	PGresult *r;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(vbuf, sizeof(vbuf), "%d", version);
	const char *params[] = {vbuf, name};

	if (store_exec_ok(c, SQL_BEGIN, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	if (store_exec_tuples(c, SQL_MIGRATE_LOCK, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	PQclear(r);
	if (store_exec_tuples(c, SQL_MIGRATION_DONE, params, &r, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	int done = PQntuples(r) > 0;
	PQclear(r);
	if (done)
		return store_exec_ok(c, SQL_COMMIT, NULL, err, errlen);

	char *sql = store_read_file(path, err, errlen);
	if (!sql) {
		PQclear(PQexec(c, "ROLLBACK"));
		return -1;
	}
	/* The file may hold many statements: the simple protocol runs them all, inside
	 * our transaction. */
	r = PQexec(c, sql);
	free(sql);
	ExecStatusType st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
		store_err(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
		PQclear(r);
		goto fail_rollback;
	}
	PQclear(r);
	if (store_exec_ok(c, SQL_MIGRATION_RECORD, params, msg, sizeof(msg)) != 0 ||
	    store_exec_ok(c, SQL_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	return 0;

fail_rollback:
	PQclear(PQexec(c, "ROLLBACK"));
fail:
	store_err(err, errlen, "schema migration %s failed: %s", path, msg);
	return -1;
}

static int store_migrate(PGconn *c, const char *dir, char *err, size_t errlen)
{
	struct dirent **ents;
	char msg[512];
	int rc = -1;
	int n = scandir(dir, &ents, store_migration_filter, store_migration_cmp);
	if (n < 0) {
		store_err(err, errlen, "cannot read schema directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (n == 0) {
		store_err(err, errlen, "no migrations (NNN_name.sql) in schema directory %s", dir);
		goto out;
	}
	for (int i = 1; i < n; i++) {
		if (store_migration_version(ents[i]->d_name) ==
		    store_migration_version(ents[i - 1]->d_name)) {
			store_err(err, errlen, "schema directory %s: %s and %s have the same number", dir,
				  ents[i - 1]->d_name, ents[i]->d_name);
			goto out;
		}
	}

	/* The bookkeeping table itself, under the same lock as the migrations. */
	PGresult *r;
	if (store_exec_ok(c, SQL_BEGIN, NULL, msg, sizeof(msg)) != 0 ||
	    store_exec_tuples(c, SQL_MIGRATE_LOCK, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	PQclear(r);
	if (store_exec_ok(c, SQL_MIGRATIONS_TABLE, NULL, msg, sizeof(msg)) != 0 ||
	    store_exec_tuples(c, SQL_MIGRATION_MAX, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	long long have = (long long)store_u64(r, 0, 0);
	PQclear(r);
	if (store_exec_ok(c, SQL_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	int newest = store_migration_version(ents[n - 1]->d_name);
	if (have > newest) {
		store_err(err, errlen,
			  "database schema is at version %lld but %s only goes to %d: this latticed is "
			  "older than the one that migrated the database",
			  have, dir, newest);
		goto out;
	}

	for (int i = 0; i < n; i++)
		if (store_migrate_one(c, dir, ents[i]->d_name, store_migration_version(ents[i]->d_name),
				      err, errlen) != 0)
			goto out;
	rc = 0;
	goto out;
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	store_err(err, errlen, "creating schema_migrations failed: %s", msg);
out:
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
	return rc;
}

/* Reads (creating if needed) lattice_state; claims or wipes the database for our
 * instance id. */
static int store_claim(struct store *s, char *err, size_t errlen)
{
	PGconn *c = s->wc;
	char msg[512];
	PGresult *r;
	const char *params[] = {s->instance_id};

	if (store_exec_ok(c, SQL_BEGIN, NULL, msg, sizeof(msg)) != 0 ||
	    store_exec_ok(c, SQL_STATE_ROW, NULL, msg, sizeof(msg)) != 0 ||
	    store_exec_tuples(c, SQL_STATE_READ, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	uint64_t applied = store_u64(r, 0, 0);
	bool unclaimed = PQgetisnull(r, 0, 1);
	bool ours = !unclaimed && strcmp(PQgetvalue(r, 0, 1), s->instance_id) == 0;
	PQclear(r);
	if (unclaimed) {
		if (store_exec_ok(c, SQL_STATE_CLAIM, params, msg, sizeof(msg)) != 0)
			goto fail;
	} else if (!ours) {
		if (store_exec_tuples(c, SQL_STATE_WIPE, params, &r, msg, sizeof(msg)) != 0)
			goto fail;
		PQclear(r);
		applied = 0;
		s->was_reset = true;
	}
	if (store_exec_ok(c, SQL_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	s->open_applied = s->db_applied = applied;
	return 0;
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	store_err(err, errlen, "reading lattice_state failed: %s", msg);
	return -1;
}

/* Session settings and prepared statements of a writer connection. */
static int store_writer_setup(PGconn *c, char *err, size_t errlen)
{
	if (store_exec_ok(c, SQL_SYNC_OFF, NULL, err, errlen) != 0)
		return -1;
	for (int i = 0; i < PROJ_KIND_COUNT + SQL_COUNT; i++) {
		const struct store_stmt *st =
			i < PROJ_KIND_COUNT ? &store_proj_sql[i] : &store_sql[i - PROJ_KIND_COUNT];
		if (!st->name)
			continue;
		PGresult *r = PQprepare(c, st->name, st->sql, st->nparams, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			store_err(err, errlen, "preparing %s: %s", st->name,
				  r ? PQresultErrorMessage(r) : PQerrorMessage(c));
			PQclear(r);
			return -1;
		}
		PQclear(r);
	}
	/* Pipelines are driven by poll() below, so sends never block. */
	if (PQsetnonblocking(c, 1) != 0) {
		store_err(err, errlen, "%s", PQerrorMessage(c));
		return -1;
	}
	return 0;
}

/* ---- open / close ---------------------------------------------------------- */

static void store_reader_free(void *p);

int store_open(struct store **out, const char *conninfo, const char *schema_dir,
	       const char *instance_id, char *err, size_t errlen)
{
	assert(conninfo && schema_dir && instance_id && *instance_id);
	struct store *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	if (!s)
		goto nomem;
	s->conninfo = strdup(conninfo);
	s->instance_id = strdup(instance_id);
	if (!s->conninfo || !s->instance_id) {
		free(s->conninfo);
		free(s->instance_id);
		free(s);
		goto nomem;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_key_create(&s->reader_key, store_reader_free) != 0) {
		store_err(err, errlen, "pthread_key_create failed");
		pthread_mutex_destroy(&s->mu);
		pthread_mutex_destroy(&s->rmu);
		pthread_cond_destroy(&s->cv);
		free(s->conninfo);
		free(s->instance_id);
		free(s);
		return -1;
	}
	atomic_init(&s->healthy, true);

	s->wc = store_connect(conninfo, "lattice-writer");
	if (!s->wc)
		goto nomem_close;
	if (PQstatus(s->wc) != CONNECTION_OK) {
		store_err(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(s->wc));
		goto fail;
	}
	if (store_migrate(s->wc, schema_dir, err, errlen) != 0 || store_claim(s, err, errlen) != 0)
		goto fail;
	char msg[512];
	if (store_writer_setup(s->wc, msg, sizeof(msg)) != 0) {
		store_err(err, errlen, "setting up the projection session: %s", msg);
		goto fail;
	}
	atomic_init(&s->projected, s->open_applied);
	s->last_submitted = s->open_applied;
	*out = s;
	return 0;

nomem_close:
	store_err(err, errlen, "out of memory");
fail:
	store_close(s);
	return -1;
nomem:
	store_err(err, errlen, "out of memory");
	return -1;
}

uint64_t store_applied_index(const struct store *s)
{
	return s->open_applied;
}

bool store_was_reset(const struct store *s)
{
	return s->was_reset;
}

static void store_free_batches(struct proj_batch *b)
{
	while (b) {
		struct proj_batch *next = b->next;
		proj_batch_free(b);
		b = next;
	}
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->started)
		(void)store_stop(s, 0);
	store_free_batches(s->qhead);
	store_free_batches(s->fl_head);
	while (s->rt_head) {
		struct store_txn *t = s->rt_head;
		s->rt_head = t->next;
		store_free_batches(t->head);
		free(t);
	}
	PQfinish(s->wc);
	/* Readers of threads still alive; threads that exited already freed theirs. */
	pthread_setspecific(s->reader_key, NULL);
	pthread_key_delete(s->reader_key);
	while (s->readers) {
		struct store_reader *r = s->readers;
		s->readers = r->next;
		PQfinish(r->c);
		free(r);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->cv);
	free(s->conninfo);
	free(s->instance_id);
	free(s);
}

/* ---- queue ----------------------------------------------------------------- */

void store_submit(struct store *s, struct proj_batch *b)
{
	assert(b && !b->failed); /* the caller checks b->failed before submitting */
#ifndef NDEBUG
	for (const struct proj_change *c = b->head; c; c = c->next)
		assert(c->kind < PROJ_KIND_COUNT && c->nparams == store_proj_sql[c->kind].nparams);
#endif
	b->next = NULL;
	if (b->index <= atomic_load(&s->projected)) {
		proj_batch_free(b); /* already in the database (replay after a restart) */
		return;
	}
	pthread_mutex_lock(&s->mu);
	assert(b->index > s->last_submitted); /* log order */
	s->last_submitted = b->index;
	if (s->qtail)
		s->qtail->next = b;
	else
		s->qhead = b;
	s->qtail = b;
	atomic_fetch_add(&s->backlog, 1);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

uint64_t store_projected(const struct store *s)
{
	return atomic_load(&s->projected);
}

size_t store_backlog(const struct store *s)
{
	return atomic_load(&s->backlog);
}

bool store_healthy(const struct store *s)
{
	return atomic_load(&s->healthy);
}

void store_stats(const struct store *s, struct store_stats *out)
{
	out->transactions = atomic_load(&s->n_tx);
	out->batches = atomic_load(&s->n_batches);
	out->changes = atomic_load(&s->n_changes);
	out->errors = atomic_load(&s->n_errors);
	out->reconnects = atomic_load(&s->n_reconnects);
}

/* ---- writer: pipelines ----------------------------------------------------- */

enum { WR_OK = 0, WR_SQL, WR_CONN };

struct wr_fail {
	int q; /* number of the first failing query, -1 none */
	char sqlstate[6];
	char msg[512];
};

static bool wr_conn_state(const char *st)
{
	/* connection exceptions; server shutting down, crashed, or still starting */
	return strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
	       strcmp(st, "57P03") == 0;
}

/* The stop deadline while stopping, else INT64_MAX. */
static int64_t wr_stop_deadline(struct store *s)
{
	pthread_mutex_lock(&s->mu);
	int64_t d = s->stopping ? s->stop_deadline : INT64_MAX;
	pthread_mutex_unlock(&s->mu);
	return d;
}

/* Reads the results of the nq queries sent since the last sync, up to and
 * including the sync, sending whatever libpq still holds meanwhile. The result of
 * query keep_q (0-based; -1 none) goes to *kept when it returned rows. Returns
 * WR_OK, WR_SQL (f names the first failing query) or WR_CONN (f->msg says why). */
static int wr_collect(struct store *s, int nq, int keep_q, PGresult **kept, int idle_ms,
		      struct wr_fail *f)
{
	PGconn *c = s->wc;
	int q = 0;
	int64_t idle_until = store_now_ms() + idle_ms;

	f->q = -1;
	for (;;) {
		int pending = PQflush(c);
		if (pending < 0)
			goto conn;
		while (!PQisBusy(c)) {
			PGresult *r = PQgetResult(c);
			if (!r) { /* end of one query's results */
				if (++q > nq) {
					store_err(f->msg, sizeof(f->msg), "unexpected end of results");
					goto conn;
				}
				continue;
			}
			ExecStatusType st = PQresultStatus(r);
			if (st == PGRES_PIPELINE_SYNC) {
				PQclear(r);
				if (f->q < 0)
					return WR_OK;
				return wr_conn_state(f->sqlstate) ? WR_CONN : WR_SQL;
			}
			if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
			    st != PGRES_PIPELINE_ABORTED && f->q < 0) {
				f->q = q;
				snprintf(f->sqlstate, sizeof(f->sqlstate), "%s", store_sqlstate(r));
				store_err(f->msg, sizeof(f->msg), "%s", PQresultErrorMessage(r));
			}
			if (q == keep_q && st == PGRES_TUPLES_OK && kept && !*kept)
				*kept = r;
			else
				PQclear(r);
			if (PQstatus(c) != CONNECTION_OK)
				goto conn;
		}
		if (PQstatus(c) != CONNECTION_OK)
			goto conn;

		int64_t now = store_now_ms(), until = idle_until;
		int64_t stop = wr_stop_deadline(s);
		if (stop < until)
			until = stop;
		if (now >= until) {
			store_err(f->msg, sizeof(f->msg), "%s",
				  until == stop ? "stopping: gave up waiting for PostgreSQL"
						: "no answer from PostgreSQL");
			goto conn;
		}
		int64_t wait = until - now;
		struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN | (pending ? POLLOUT : 0)};
		int pr = poll(&pfd, 1, wait > 1000 ? 1000 : (int)wait); /* 1 s: re-check stop */
		if (pr < 0 && errno != EINTR) {
			store_err(f->msg, sizeof(f->msg), "poll: %s", strerror(errno));
			goto conn;
		}
		if (pr > 0) {
			idle_until = store_now_ms() + idle_ms;
			if ((pfd.revents & (POLLIN | POLLERR | POLLHUP)) && !PQconsumeInput(c))
				goto conn;
		}
	}
conn:
	if (!f->msg[0])
		store_err(f->msg, sizeof(f->msg), "%s",
			  PQerrorMessage(c)[0] ? PQerrorMessage(c) : "connection lost");
	return WR_CONN;
}

/* Runs one parameterless statement of store_sql (prepared when it has a name) as
 * its own pipeline; the rows (if any) go to *kept. */
static int wr_simple(struct store *s, enum store_sql_id id, PGresult **kept, struct wr_fail *f)
{
	PGconn *c = s->wc;
	const struct store_stmt *st = &store_sql[id];
	f->msg[0] = '\0';
	if (!PQenterPipelineMode(c) ||
	    !(st->name ? PQsendQueryPrepared(c, st->name, 0, NULL, NULL, NULL, 0)
		       : PQsendQueryParams(c, st->sql, 0, NULL, NULL, NULL, NULL, 0)) ||
	    !PQpipelineSync(c)) {
		store_err(f->msg, sizeof(f->msg), "%s", PQerrorMessage(c));
		return WR_CONN;
	}
	int rc = wr_collect(s, 1, 0, kept, STORE_PING_TIMEOUT_MS, f);
	if (rc != WR_CONN && !PQexitPipelineMode(c)) {
		store_err(f->msg, sizeof(f->msg), "%s", PQerrorMessage(c));
		rc = WR_CONN;
	}
	return rc;
}

/* Sends BEGIN; every in-flight change; lattice_advance(max); COMMIT; the WAL
 * position; sync. Returns the number of queries, or -1 (connection trouble). */
static int wr_send(struct store *s, uint64_t max)
{
	PGconn *c = s->wc;
	char maxbuf[24];
	const char *adv[] = {maxbuf};
	int nq = 0;

	snprintf(maxbuf, sizeof(maxbuf), "%" PRIu64, max);
	if (!PQenterPipelineMode(c) ||
	    !PQsendQueryParams(c, store_sql[SQL_BEGIN].sql, 0, NULL, NULL, NULL, NULL, 0))
		return -1;
	nq++;
	for (struct proj_batch *b = s->fl_head; b; b = b->next)
		for (struct proj_change *ch = b->head; ch; ch = ch->next, nq++)
			if (!PQsendQueryPrepared(c, store_proj_sql[ch->kind].name, ch->nparams,
						 (const char *const *)ch->params, NULL, NULL, 0))
				return -1;
	if (!PQsendQueryPrepared(c, store_sql[SQL_ADVANCE].name, 1, adv, NULL, NULL, 0) ||
	    !PQsendQueryParams(c, store_sql[SQL_COMMIT].sql, 0, NULL, NULL, NULL, NULL, 0) ||
	    !PQsendQueryPrepared(c, store_sql[SQL_WAL].name, 0, NULL, NULL, NULL, 0) ||
	    !PQpipelineSync(c))
		return -1;
	return nq + 3;
}

/* Describes the query numbered q of the last transaction, for the error line. */
static void wr_describe(const struct store *s, int q, int nq, char *buf, size_t len)
{
	if (q == 0) {
		snprintf(buf, len, "BEGIN");
		return;
	}
	if (q >= nq - 3) {
		snprintf(buf, len, "%s", q == nq - 3 ? "lattice_advance" : q == nq - 2 ? "COMMIT" : "WAL position");
		return;
	}
	int i = 1;
	for (const struct proj_batch *b = s->fl_head; b; b = b->next)
		for (const struct proj_change *ch = b->head; ch; ch = ch->next, i++)
			if (i == q) {
				snprintf(buf, len, "%s of entry %" PRIu64, store_proj_sql[ch->kind].name, b->index);
				return;
			}
	snprintf(buf, len, "query %d", q);
}

/* ---- writer: bookkeeping --------------------------------------------------- */

static void wr_close(struct store *s)
{
	PQfinish(s->wc);
	s->wc = NULL;
	atomic_store(&s->healthy, false);
}

static void wr_backoff(struct store *s)
{
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : STORE_BACKOFF_MIN_MS;
	if (s->backoff_ms > STORE_BACKOFF_MAX_MS)
		s->backoff_ms = STORE_BACKOFF_MAX_MS;
	s->retry_at = store_now_ms() + s->backoff_ms;
}

static void wr_conn_lost(struct store *s, const char *why)
{
	if (!s->down)
		store_log("lost the connection to PostgreSQL (%s); %zu batches wait, retrying", why,
			  store_backlog(s));
	s->down = true;
	wr_close(s);
	wr_backoff(s);
}

/* Takes the first n in-flight batches off the list (they are committed). */
static struct proj_batch *wr_detach(struct store *s, size_t n)
{
	struct proj_batch *head = s->fl_head, **tailp = &head;
	for (size_t i = 0; i < n; i++) {
		struct proj_batch *b = *tailp;
		s->fl_n--;
		s->fl_changes -= b->n;
		tailp = &b->next;
	}
	s->fl_head = *tailp;
	if (!s->fl_head)
		s->fl_tail = NULL;
	*tailp = NULL;
	return head;
}

/* Holds a committed transaction's batches (list, owned) until its WAL is flushed. */
static void wr_retain(struct store *s, struct proj_batch *list, uint64_t from, uint64_t lsn)
{
	struct store_txn *t = malloc(sizeof(*t));
	if (!t) {
		/* Nothing to hold them with: free them and lose only the ability to
		 * re-write them if PostgreSQL crashes in the next moments. */
		store_log("out of memory retaining committed batches; freeing them");
		store_free_batches(list);
		return;
	}
	*t = (struct store_txn){.from = from, .lsn = lsn, .head = list};
	if (s->rt_tail)
		s->rt_tail->next = t;
	else
		s->rt_head = t;
	s->rt_tail = t;
}

/* Frees retained transactions whose WAL PostgreSQL has flushed. */
static void wr_release(struct store *s, uint64_t insert_lsn, uint64_t flush_lsn)
{
	for (struct store_txn *t = s->rt_head; t; t = t->next)
		if (!t->lsn)
			t->lsn = insert_lsn; /* later than its commit, so a safe bound */
	while (s->rt_head && s->rt_head->lsn <= flush_lsn) {
		struct store_txn *t = s->rt_head;
		s->rt_head = t->next;
		if (!s->rt_head)
			s->rt_tail = NULL;
		store_free_batches(t->head);
		free(t);
	}
}

static void wr_projected(struct store *s, uint64_t index)
{
	atomic_store(&s->projected, index);
	if (s->cb)
		s->cb(s->cb_arg, index);
}

/* After (re)connecting: what does the database hold now? The last COMMIT may have
 * succeeded before the connection broke (drop those batches), or PostgreSQL may
 * have crashed and lost commits that synchronous_commit = off had not flushed
 * (write those again from the retained list). */
static int wr_resync(struct store *s, struct wr_fail *f)
{
	PGresult *r = NULL;
	int rc = wr_simple(s, SQL_APPLIED, &r, f);
	if (rc != WR_OK || !r) {
		PQclear(r);
		return rc == WR_OK ? WR_SQL : rc;
	}
	uint64_t applied = store_u64(r, 0, 0), lsn = store_u64(r, 0, 1);
	PQclear(r);

	if (applied >= s->db_applied) {
		if (applied == s->db_applied)
			return WR_OK;
		/* Committed in-flight batches: keep them until flushed, like any other. */
		size_t n = 0;
		for (struct proj_batch *b = s->fl_head; b && b->index <= applied; b = b->next)
			n++;
		if (n) {
			wr_retain(s, wr_detach(s, n), s->db_applied, lsn);
			atomic_fetch_sub(&s->backlog, n);
		}
		s->db_applied = applied;
		wr_projected(s, applied);
		return WR_OK;
	}

	/* PostgreSQL went back in time. */
	if (!s->rt_head || s->rt_head->from > applied) {
		store_log("PostgreSQL's applied_index went back from %" PRIu64 " to %" PRIu64
			  " and this process no longer holds those entries: not writing any further; "
			  "restart latticed to replay them from the Raft log",
			  s->db_applied, applied);
		atomic_fetch_add(&s->n_errors, 1);
		s->lost = true;
		atomic_store(&s->healthy, false);
		return WR_OK;
	}
	store_log("PostgreSQL lost entries %" PRIu64 "..%" PRIu64 " (a crash with "
		  "synchronous_commit = off); writing them again",
		  applied + 1, s->db_applied);
	struct proj_batch *head = NULL, *tail = NULL;
	size_t n = 0, changes = 0;
	while (s->rt_head) {
		struct store_txn *t = s->rt_head;
		s->rt_head = t->next;
		for (struct proj_batch *b = t->head, *next; b; b = next) {
			next = b->next;
			b->next = NULL;
			if (b->index <= applied) {
				proj_batch_free(b);
				continue;
			}
			if (tail)
				tail->next = b;
			else
				head = b;
			tail = b;
			n++;
			changes += b->n;
		}
		free(t);
	}
	s->rt_tail = NULL;
	if (tail) {
		tail->next = s->fl_head;
		if (!s->fl_head)
			s->fl_tail = tail;
		s->fl_head = head;
	}
	s->fl_n += n;
	s->fl_changes += changes;
	atomic_fetch_add(&s->backlog, n);
	s->db_applied = applied;
	atomic_store(&s->projected, applied);
	return WR_OK;
}

static void wr_connect(struct store *s)
{
	char msg[512];
	struct wr_fail f = {.q = -1};
	s->wc = store_connect(s->conninfo, "lattice-writer");
	if (!s->wc || PQstatus(s->wc) != CONNECTION_OK) {
		wr_conn_lost(s, s->wc ? PQerrorMessage(s->wc) : "out of memory");
		return;
	}
	if (store_writer_setup(s->wc, msg, sizeof(msg)) != 0) {
		wr_conn_lost(s, msg);
		return;
	}
	int rc = wr_resync(s, &f);
	if (rc != WR_OK) {
		wr_conn_lost(s, f.msg);
		return;
	}
	if (s->down) {
		atomic_fetch_add(&s->n_reconnects, 1);
		store_log("reconnected to PostgreSQL; applied_index %" PRIu64, s->db_applied);
	}
	s->down = false;
	s->backoff_ms = 0;
	atomic_store(&s->healthy, !s->sql_failing && !s->lost);
}

/* One transaction of everything in flight. */
static void wr_write(struct store *s)
{
	PGconn *c = s->wc;
	uint64_t max = s->fl_tail->index, from = s->db_applied;
	size_t nb = s->fl_n, nc = s->fl_changes;
	struct wr_fail f = {.q = -1};
	PGresult *wal = NULL;

	int nq = wr_send(s, max);
	int rc = nq < 0 ? WR_CONN : wr_collect(s, nq, nq - 1, &wal, STORE_IO_TIMEOUT_MS, &f);
	if (nq < 0)
		store_err(f.msg, sizeof(f.msg), "%s", PQerrorMessage(c));
	if (rc != WR_CONN && !PQexitPipelineMode(c)) {
		store_err(f.msg, sizeof(f.msg), "%s", PQerrorMessage(c));
		rc = WR_CONN;
	}
	if (rc == WR_SQL && f.q > nq - 2) /* only the WAL query failed: COMMIT went through */
		rc = WR_OK;
	if (rc == WR_CONN) {
		PQclear(wal);
		wr_conn_lost(s, f.msg); /* wr_resync sorts out whether COMMIT made it */
		return;
	}
	if (rc == WR_SQL) {
		char what[160];
		wr_describe(s, f.q, nq, what, sizeof(what));
		wr_backoff(s);
		store_log("projection of entries %" PRIu64 "..%" PRIu64 " failed at %s: %s [SQLSTATE %s]; "
			  "rolled back, retrying in %d ms",
			  s->fl_head->index, max, what, f.msg, f.sqlstate, s->backoff_ms);
		atomic_fetch_add(&s->n_errors, 1);
		s->sql_failing = true;
		atomic_store(&s->healthy, false);
		PQclear(wal);
		if (PQtransactionStatus(c) != PQTRANS_IDLE &&
		    wr_simple(s, SQL_ROLLBACK, NULL, &f) != WR_OK)
			wr_conn_lost(s, f.msg);
		return;
	}

	uint64_t insert_lsn = wal ? store_u64(wal, 0, 0) : 0, flush_lsn = wal ? store_u64(wal, 0, 1) : 0;
	PQclear(wal);
	wr_retain(s, wr_detach(s, nb), from, insert_lsn);
	if (insert_lsn)
		wr_release(s, insert_lsn, flush_lsn);
	s->db_applied = max;
	s->sql_failing = false;
	s->backoff_ms = 0;
	atomic_fetch_sub(&s->backlog, nb);
	atomic_fetch_add(&s->n_tx, 1);
	atomic_fetch_add(&s->n_batches, nb);
	atomic_fetch_add(&s->n_changes, nc);
	atomic_store(&s->healthy, !s->lost);
	wr_projected(s, max);
}

/* Idle: is the server still there, and has it flushed what we retain? */
static void wr_ping(struct store *s)
{
	struct wr_fail f = {.q = -1};
	PGresult *r = NULL;
	int rc = wr_simple(s, SQL_WAL, &r, &f);
	if (rc == WR_OK && r)
		wr_release(s, store_u64(r, 0, 0), store_u64(r, 0, 1));
	PQclear(r);
	if (rc == WR_CONN)
		wr_conn_lost(s, f.msg);
}

/* Moves queued batches in flight, up to one transaction's worth. Called locked. */
static void wr_take(struct store *s)
{
	while (s->qhead && s->fl_n < STORE_TX_BATCHES && s->fl_changes < STORE_TX_CHANGES) {
		struct proj_batch *b = s->qhead;
		s->qhead = b->next;
		if (!s->qhead)
			s->qtail = NULL;
		b->next = NULL;
		if (s->fl_tail)
			s->fl_tail->next = b;
		else
			s->fl_head = b;
		s->fl_tail = b;
		s->fl_n++;
		s->fl_changes += b->n;
	}
}

static void *store_writer(void *arg)
{
	struct store *s = arg;
	s->ping_at = store_now_ms() + STORE_PING_MS;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int64_t now = store_now_ms();
		bool work = (s->fl_head || s->qhead) && !s->lost;
		if (s->stopping && !s->fl_head && !s->qhead) {
			s->flushed = true;
			break;
		}
		if (s->stopping && now >= s->stop_deadline)
			break;
		int64_t wake;
		if (now < s->retry_at)
			wake = s->retry_at;
		else if (!s->wc || work)
			wake = now;
		else
			wake = s->ping_at;
		if (s->stopping && wake > s->stop_deadline)
			wake = s->stop_deadline;
		if (wake > now) {
			store_timedwait(s, wake);
			continue;
		}
		if (!s->lost)
			wr_take(s);
		pthread_mutex_unlock(&s->mu);

		if (!s->wc)
			wr_connect(s);
		else if (work)
			wr_write(s);
		else
			wr_ping(s);
		if (s->wc)
			s->ping_at = store_now_ms() + (s->rt_head ? STORE_RETAIN_PING_MS : STORE_PING_MS);

		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int store_start(struct store *s, store_projected_fn cb, void *arg)
{
	assert(!s->started);
	s->cb = cb;
	s->cb_arg = arg;
	if (pthread_create(&s->thread, NULL, store_writer, s) != 0)
		return -1;
	s->started = true;
	return 0;
}

int store_stop(struct store *s, int timeout_ms)
{
	pthread_mutex_lock(&s->mu);
	if (!s->started) {
		bool empty = !s->qhead;
		s->stopping = true;
		pthread_mutex_unlock(&s->mu);
		return empty ? 0 : -1;
	}
	if (!s->stopping) {
		s->stopping = true;
		s->stop_deadline = store_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
		pthread_cond_signal(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
	/* Batches still in flight go back to the queue's head, for store_close. */
	if (s->fl_tail) {
		s->fl_tail->next = s->qhead;
		if (!s->qhead)
			s->qtail = s->fl_tail;
		s->qhead = s->fl_head;
		s->fl_head = s->fl_tail = NULL;
	}
	return s->flushed ? 0 : -1;
}

/* ---- readers --------------------------------------------------------------- */

static void store_reader_free(void *p)
{
	struct store_reader *r = p;
	struct store *s = r->s;
	pthread_mutex_lock(&s->rmu);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->readers = r->next;
	if (r->next)
		r->next->prev = r->prev;
	pthread_mutex_unlock(&s->rmu);
	PQfinish(r->c);
	free(r);
}

PGconn *store_conn(struct store *s)
{
	struct store_reader *r = pthread_getspecific(s->reader_key);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->s = s;
		r->c = store_connect(s->conninfo, "lattice-reader");
		if (!r->c || pthread_setspecific(s->reader_key, r) != 0) {
			PQfinish(r->c);
			free(r);
			return NULL;
		}
		pthread_mutex_lock(&s->rmu);
		r->next = s->readers;
		if (s->readers)
			s->readers->prev = r;
		s->readers = r;
		pthread_mutex_unlock(&s->rmu);
	} else if (PQstatus(r->c) != CONNECTION_OK) {
		PQreset(r->c); /* the server restarted, or was never up */
	}
	if (PQstatus(r->c) != CONNECTION_OK)
		return NULL;
	/* A caller that left a transaction open must not hand it to the next request. */
	if (PQtransactionStatus(r->c) != PQTRANS_IDLE)
		PQclear(PQexec(r->c, "ROLLBACK"));
	return r->c;
}
