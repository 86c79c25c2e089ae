/* store — this replica's PostgreSQL database: migrations, the projection writer
 * thread, and per-thread reader connections. See store.h for the contract.
 *
 * Writer thread, one transaction per round:
 *
 *   queue --take--> in flight --SELECT lattice_project(changes..., max)-->
 *         retained (committed, WAL maybe not flushed) --flush LSN passes--> freed
 *
 * The whole transaction is one statement, an implicit transaction (one per
 * segment, all before one Sync, when the round holds a PROJ_RESET): the server
 * function lattice_project() (schema/002_project_fn.sql) runs one statement per
 * (table, kind of change) of the coalesced changes (see "writer: coalescing"),
 * records the round's highest index and checks the deferred foreign keys, all
 * with plans its session prepared once. The projection session runs with
 * synchronous_commit = off: the Raft log on a majority of disks is the durable
 * copy, and applied_index commits atomically with the rows, so a
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

/* The projection's steps: one statement per (table, kind of change), each taking
 * all of a segment's rows of that kind at once (see "writer: coalescing" below).
 * They are the body of lattice_project() (schema/002_project_fn.sql), which runs
 * them in the order of this enum, after lattice_reset() when asked: every delete
 * before every upsert, so an ON DELETE CASCADE can never remove a row written in
 * the same segment. A delete takes its keys as one text[]; the others take one
 * jsonb array of row objects whose keys are the parameter names of proj.h
 * (wr_kinds below). The first PS_RESET are also lattice_project()'s parameters
 * after p_to and p_reset, in this order. */
enum proj_stmt {
	PS_LINKS_DELETE,
	PS_ACTORS_DELETE, /* cascades to placements, links, snapshots */
	PS_PROVIDERS_DELETE,
	PS_NODES_DELETE,
	PS_NODES_UPSERT,
	PS_ACTORS_UPSERT,
	PS_PROVIDERS_UPSERT,
	PS_PLACEMENTS_SET,
	PS_LINKS_UPSERT,
	PS_POLICIES_UPSERT,
	PS_EVENTS_INSERT,
	PS_RESET,
	PS_ADVANCE,  /* applied_index moves forward (as lattice_advance) */
	PS_DEFERRED, /* SET CONSTRAINTS ALL IMMEDIATE: the deferred foreign keys */
	PS_COUNT
};

/* Each step's name in error lines (the comments of 002_project_fn.sql name the
 * steps alike), and how it is recognised in an error's CONTEXT: the start of its
 * statement in lattice_project() (see wr_step). */
static const struct {
	const char *name;
	const char *sql;
} store_proj_steps[PS_COUNT] = {
	[PS_LINKS_DELETE] = {"proj_links_delete", "DELETE FROM links "},
	[PS_ACTORS_DELETE] = {"proj_actors_delete", "DELETE FROM actors "},
	[PS_PROVIDERS_DELETE] = {"proj_providers_delete", "DELETE FROM providers "},
	[PS_NODES_DELETE] = {"proj_nodes_delete", "DELETE FROM nodes "},
	[PS_NODES_UPSERT] = {"proj_nodes_upsert", "INSERT INTO nodes "},
	[PS_ACTORS_UPSERT] = {"proj_actors_upsert", "INSERT INTO actors "},
	[PS_PROVIDERS_UPSERT] = {"proj_providers_upsert", "INSERT INTO providers "},
	[PS_PLACEMENTS_SET] = {"proj_placements_set", "WITH a AS "},
	[PS_LINKS_UPSERT] = {"proj_links_upsert", "INSERT INTO links "},
	[PS_POLICIES_UPSERT] = {"proj_policies_upsert", "INSERT INTO policies "},
	[PS_EVENTS_INSERT] = {"proj_events_insert", "INSERT INTO events "},
	[PS_RESET] = {"proj_reset", "SELECT lattice_reset()"},
	[PS_ADVANCE] = {"lattice_advance", "UPDATE lattice_state "},
	[PS_DEFERRED] = {"the deferred foreign key checks", "SET CONSTRAINTS "},
};

/* Tables that changes are coalesced by (key: the first parameter; policies: the
 * first two). */
enum wr_table {
	WT_NODES,
	WT_ACTORS,
	WT_PLACEMENTS, /* by actor id */
	WT_PROVIDERS,
	WT_LINKS,
	WT_POLICIES, /* by (policy_id, version) */
	WT_EVENTS,   /* appended, never coalesced */
	WT_NONE,     /* PROJ_RESET */
};

/* A row object's key for each parameter, in proj.h's order; json: the parameter
 * is JSON text and goes into the row as it is, not as a string. */
struct wr_col {
	const char *key;
	bool json;
};

static const struct wr_col wr_node_cols[] = {
	{"id", 0}, {"region", 0}, {"labels", 1}, {"cpu_capacity", 0}, {"memory_mb", 0},
	{"base_cpu_used", 0}, {"base_memory_used_mb", 0}, {"base_actor_count", 0},
	{"cpu_used", 0}, {"memory_used_mb", 0}, {"actor_count", 0}, {"cpu_measured", 0},
	{"memory_measured_mb", 0}, {"status", 0}, {"cordoned", 0}, {"draining", 0},
	{"error_count", 0}, {"last_heartbeat_ms", 0}, {"policy_version", 0},
	{"agent_version", 0}, {"generation", 0}, {"created_ms", 0}, {"updated_ms", 0}};
static const struct wr_col wr_actor_cols[] = {
	{"id", 0}, {"name", 0}, {"module", 0}, {"cpu_required", 0}, {"memory_required_mb", 0},
	{"preferred_region", 0}, {"constraints", 1}, {"priority", 0}, {"max_latency_ms", 0},
	{"replicas", 0}, {"strategy", 0}, {"contracts", 1}, {"generation", 0},
	{"created_ms", 0}, {"updated_ms", 0}};
static const struct wr_col wr_placements_cols[] = {{"actor_id", 0}, {"placements", 1}};
static const struct wr_col wr_provider_cols[] = {
	{"id", 0}, {"contract_id", 0}, {"image", 0}, {"nodes", 1}, {"created_ms", 0}};
static const struct wr_col wr_link_cols[] = {
	{"id", 0}, {"actor_id", 0}, {"provider_id", 0}, {"contract_id", 0}, {"link_name", 0},
	{"values", 1}, {"timeout_ms", 0}, {"retry_count", 0}, {"retry_delay_ms", 0},
	{"created_ms", 0}};
static const struct wr_col wr_policy_cols[] = {
	{"policy_id", 0}, {"version", 0}, {"allowed_contracts", 1}, {"denied_contracts", 1},
	{"max_actor_memory_mb", 0}, {"network_restrictions", 1}, {"selector", 1},
	{"created_ms", 0}};
static const struct wr_col wr_event_cols[] = {
	{"seq", 0}, {"raft_index", 0}, {"at_ms", 0}, {"who", 0}, {"kind", 0},
	{"object_type", 0}, {"object_id", 0}, {"data", 1}};

#define WR_COLS(a) a, (int)(sizeof(a) / sizeof(a[0]))

/* What the writer does with each kind of change. */
static const struct wr_kind {
	enum wr_table table;
	bool del;                  /* a delete: the only parameter is the key */
	const struct wr_col *cols; /* upserts: the row object's keys */
	int nparams;
} wr_kinds[PROJ_KIND_COUNT] = {
	[PROJ_NODE_UPSERT] = {WT_NODES, false, WR_COLS(wr_node_cols)},
	[PROJ_NODE_DELETE] = {WT_NODES, true, NULL, 1},
	[PROJ_ACTOR_UPSERT] = {WT_ACTORS, false, WR_COLS(wr_actor_cols)},
	[PROJ_ACTOR_DELETE] = {WT_ACTORS, true, NULL, 1},
	[PROJ_PLACEMENTS_SET] = {WT_PLACEMENTS, false, WR_COLS(wr_placements_cols)},
	[PROJ_PROVIDER_UPSERT] = {WT_PROVIDERS, false, WR_COLS(wr_provider_cols)},
	[PROJ_PROVIDER_DELETE] = {WT_PROVIDERS, true, NULL, 1},
	[PROJ_LINK_UPSERT] = {WT_LINKS, false, WR_COLS(wr_link_cols)},
	[PROJ_LINK_DELETE] = {WT_LINKS, true, NULL, 1},
	[PROJ_POLICY_INSERT] = {WT_POLICIES, false, WR_COLS(wr_policy_cols)},
	[PROJ_EVENT_INSERT] = {WT_EVENTS, false, WR_COLS(wr_event_cols)},
	[PROJ_RESET] = {WT_NONE, false, NULL, 0},
};

/* Which table each statement writes, and how. */
static const struct {
	enum wr_table table;
	bool del;
} wr_stmts[PS_RESET] = {
	[PS_LINKS_DELETE] = {WT_LINKS, true},         [PS_ACTORS_DELETE] = {WT_ACTORS, true},
	[PS_PROVIDERS_DELETE] = {WT_PROVIDERS, true}, [PS_NODES_DELETE] = {WT_NODES, true},
	[PS_NODES_UPSERT] = {WT_NODES, false},        [PS_ACTORS_UPSERT] = {WT_ACTORS, false},
	[PS_PROVIDERS_UPSERT] = {WT_PROVIDERS, false}, [PS_PLACEMENTS_SET] = {WT_PLACEMENTS, false},
	[PS_LINKS_UPSERT] = {WT_LINKS, false},        [PS_POLICIES_UPSERT] = {WT_POLICIES, false},
	[PS_EVENTS_INSERT] = {WT_EVENTS, false},
};

/* The store's own statements. */
enum store_sql_id {
	SQL_BEGIN,
	SQL_COMMIT,
	SQL_ROLLBACK,
	SQL_PROJECT,
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
	/* One segment of a round (schema/002_project_fn.sql): p_to, p_reset, then
	 * one parameter per step, in enum proj_stmt's order. */
	[SQL_PROJECT] = {"store_project", 2 + PS_RESET,
		"SELECT wal_insert_lsn, wal_flush_lsn FROM lattice_project($1::bigint, $2::boolean,"
		" $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb, $8::jsonb, $9::jsonb,"
		" $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb)"},
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

/* One key's changes within a segment, coalesced (see "writer: coalescing"). */
struct wr_ent {
	enum wr_table table;
	bool deleted;                 /* the key is deleted (before up, if any) */
	const struct proj_change *up; /* the last upsert after the last delete; NULL none */
	uint64_t up_seq, del_seq;     /* positions of that upsert / the last delete; 0 none */
	const char *k0, *k1;          /* the key, borrowed from a change */
	uint64_t hash;
};

/* The changes of one segment (the changes between two PROJ_RESETs), coalesced. */
struct wr_co {
	struct wr_ent *ents; /* in order of each key's first change */
	size_t n, cap;
	uint32_t *slots; /* hash index: entry number + 1; 0 = free */
	size_t nslots;   /* a power of two, or 0 */
	uint64_t seq;    /* changes added so far */
	uint64_t first, last; /* log indexes of the first and last change */
};

/* A growing text buffer; oom once an allocation failed. */
struct wr_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

/* What each lattice_project() call of the round in flight was, for the error
 * line: the segment's entries and its rows per step. */
struct wr_query {
	bool reset;
	size_t rows[PS_RESET];
	uint64_t first, last;
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
	struct wr_co co;                  /* the transaction being built */
	struct wr_buf buf[PS_RESET];      /* one call's parameters, one per step */
	struct wr_query *qs;              /* the round's lattice_project() calls */
	size_t nqs, capqs;
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
	for (int i = 0; i < SQL_COUNT; i++) {
		const struct store_stmt *st = &store_sql[i];
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
	/* Errors name the step of lattice_project() that failed (wr_step), not the
	 * CONTEXT's whole statement. */
	PQsetErrorContextVisibility(c, PQSHOW_CONTEXT_NEVER);
	/* Pipelines are driven by poll() below, so sends never block. */
	if (PQsetnonblocking(c, 1) != 0) {
		store_err(err, errlen, "%s", PQerrorMessage(c));
		return -1;
	}
	return 0;
}

/* ---- open / close ---------------------------------------------------------- */

static void store_reader_free(void *p);
static void co_free(struct wr_co *co);

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
	co_free(&s->co);
	for (int i = 0; i < PS_RESET; i++)
		free(s->buf[i].p);
	free(s->qs);
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
	b->next = NULL;
	store_submit_chain(s, b);
}

void store_submit_chain(struct store *s, struct proj_batch *chain)
{
	struct proj_batch *head = NULL, *tail = NULL;
	size_t n = 0;
	while (chain) {
		struct proj_batch *b = chain;
		chain = b->next;
		b->next = NULL;
		assert(!b->failed); /* the caller checks b->failed before submitting */
#ifndef NDEBUG
		for (const struct proj_change *c = b->head; c; c = c->next)
			assert(c->kind < PROJ_KIND_COUNT && c->nparams == wr_kinds[c->kind].nparams);
#endif
		if (b->index <= atomic_load(&s->projected)) {
			proj_batch_free(b); /* already in the database (replay after a restart) */
			continue;
		}
		if (tail)
			tail->next = b;
		else
			head = b;
		tail = b;
		n++;
	}
	if (head == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	for (struct proj_batch *b = head; b; b = b->next) {
		assert(b->index > s->last_submitted); /* log order */
		s->last_submitted = b->index;
	}
	if (s->qtail)
		s->qtail->next = head;
	else
		s->qhead = head;
	s->qtail = tail;
	atomic_fetch_add(&s->backlog, n);
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
	int q;    /* number of the first failing query, -1 none */
	int step; /* the step of lattice_project() that failed (enum proj_stmt), -1 none */
	char sqlstate[6];
	char msg[512];
};

/* Which step of lattice_project() an error's CONTEXT names, or -1. The context
 * lists the innermost first: "SQL statement "<text>"" (the statement of the step,
 * or "SELECT lattice_reset()" after the lines of lattice_reset's own), then
 * "PL/pgSQL function lattice_project(...) line N at SQL statement" (or "at RAISE":
 * the only RAISE is applied_index refusing to go back). */
static int wr_step(const char *ctx)
{
	static const char fn[] = "PL/pgSQL function lattice_project(", stmt[] = "SQL statement \"";
	const char *at = ctx ? strstr(ctx, fn) : NULL;
	if (!at)
		return -1;
	const char *eol = strchr(at, '\n');
	size_t linelen = eol ? (size_t)(eol - at) : strlen(at);
	static const char raise[] = " at RAISE";
	if (linelen >= sizeof(raise) - 1 &&
	    memcmp(at + linelen - (sizeof(raise) - 1), raise, sizeof(raise) - 1) == 0)
		return PS_ADVANCE;
	const char *sql = NULL;
	for (const char *p = ctx; (p = strstr(p, stmt)) && p < at; p += sizeof(stmt) - 1)
		sql = p + sizeof(stmt) - 1;
	if (!sql)
		return -1;
	while (*sql == ' ' || *sql == '\t' || *sql == '\n')
		sql++;
	for (int st = 0; st < PS_COUNT; st++)
		if (strncmp(sql, store_proj_steps[st].sql, strlen(store_proj_steps[st].sql)) == 0)
			return st;
	return -1;
}

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
	f->step = -1;
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
				f->step = wr_step(PQresultErrorField(r, PG_DIAG_CONTEXT));
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

/* ---- writer: coalescing ---------------------------------------------------- */

/* A transaction carries up to STORE_TX_BATCHES entries; a statement per change
 * would make PostgreSQL pay its per-statement cost (executor start and end, the
 * CHECK constraints' expressions rebuilt) dozens of times per transaction. So the
 * changes of each segment (the in-flight changes between two PROJ_RESETs) are
 * coalesced per (table, key), and each (table, kind) becomes one statement:
 *
 *   - the last change of a key wins: an upsert replaces the key's earlier upsert,
 *     a delete drops it;
 *   - a delete followed by an upsert keeps both, and every delete runs before
 *     every upsert (enum proj_stmt), so ON DELETE CASCADE still removes what the
 *     old row owned, and never a row the segment writes;
 *   - PROJ_ACTOR_DELETE also drops the segment's earlier PROJ_PLACEMENTS_SET of
 *     that actor and its earlier link upserts (whatever of them the database
 *     holds already, the cascade removes; written afterwards they would outlive
 *     their actor);
 *   - events are appended in log order and never coalesced (writing one twice
 *     stays an error);
 *   - PROJ_RESET ends the segment so far (one lattice_project() call); the next
 *     segment's call runs lattice_reset() before its own statements.
 *
 * The rows at the end are those that running every change in log order leaves,
 * and foreign keys are checked only then (DEFERRABLE INITIALLY DEFERRED, checked
 * by the round's last call), so the order of the statements within a segment
 * trips none. */

static uint64_t co_hash_str(uint64_t h, const char *k)
{
	if (!k)
		return (h ^ 0x100) * 1099511628211ULL; /* NULL: no byte value collides */
	for (const unsigned char *p = (const unsigned char *)k; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (h ^ 0x101) * 1099511628211ULL; /* end of this key part */
}

static uint64_t co_hash(enum wr_table t, const char *k0, const char *k1)
{
	uint64_t h = (14695981039346656037ULL ^ (uint64_t)t) * 1099511628211ULL;
	return co_hash_str(co_hash_str(h, k0), k1);
}

static bool co_keq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* The entry of a key, or NULL; *slot: where it is or would go (nslots > 0). */
static struct wr_ent *co_find(const struct wr_co *co, enum wr_table t, const char *k0,
			      const char *k1, uint64_t h, size_t *slot)
{
	size_t mask = co->nslots - 1;
	for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
		*slot = i;
		if (!co->slots[i])
			return NULL;
		struct wr_ent *e = &co->ents[co->slots[i] - 1];
		if (e->hash == h && e->table == t && co_keq(e->k0, k0) && co_keq(e->k1, k1))
			return e;
	}
}

static const struct wr_ent *co_lookup(const struct wr_co *co, enum wr_table t, const char *k)
{
	size_t slot;
	return co->nslots ? co_find(co, t, k, NULL, co_hash(t, k, NULL), &slot) : NULL;
}

/* A new entry at the end of co->ents (zeroed), or NULL when out of memory. */
static struct wr_ent *co_append(struct wr_co *co)
{
	if (co->n == co->cap) {
		size_t cap = co->cap ? co->cap * 2 : 256;
		struct wr_ent *n = realloc(co->ents, cap * sizeof(*n));
		if (!n)
			return NULL;
		co->ents = n;
		co->cap = cap;
	}
	struct wr_ent *e = &co->ents[co->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* Keeps the hash index at most half full, for one more key. */
static int co_reserve_slot(struct wr_co *co)
{
	if ((co->n + 1) * 2 <= co->nslots)
		return 0;
	size_t nslots = co->nslots ? co->nslots * 2 : 1024;
	if (nslots > UINT32_MAX)
		return -1;
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -1;
	free(co->slots);
	co->slots = slots;
	co->nslots = nslots;
	for (size_t i = 0; i < co->n; i++) {
		if (co->ents[i].table == WT_EVENTS)
			continue;
		size_t slot;
		(void)co_find(co, co->ents[i].table, co->ents[i].k0, co->ents[i].k1, co->ents[i].hash,
			      &slot);
		co->slots[slot] = (uint32_t)(i + 1);
	}
	return 0;
}

/* Adds one change (borrowed: the batch outlives the segment). 0, or -1 when out
 * of memory. */
static int co_add(struct wr_co *co, uint64_t index, const struct proj_change *ch)
{
	const struct wr_kind *k = &wr_kinds[ch->kind];
	uint64_t seq = ++co->seq;
	struct wr_ent *e;
	if (!co->first)
		co->first = index;
	co->last = index;

	if (k->table == WT_EVENTS) {
		if (!(e = co_append(co)))
			return -1;
		*e = (struct wr_ent){.table = WT_EVENTS, .up = ch, .up_seq = seq};
		return 0;
	}
	const char *k0 = ch->nparams > 0 ? ch->params[0] : NULL;
	const char *k1 = k->table == WT_POLICIES && ch->nparams > 1 ? ch->params[1] : NULL;
	uint64_t h = co_hash(k->table, k0, k1);
	size_t slot;
	if (co_reserve_slot(co) != 0)
		return -1;
	e = co_find(co, k->table, k0, k1, h, &slot);
	if (!e) {
		if (!(e = co_append(co)))
			return -1;
		*e = (struct wr_ent){.table = k->table, .k0 = k0, .k1 = k1, .hash = h};
		co->slots[slot] = (uint32_t)co->n;
	}
	if (k->del) {
		e->deleted = true;
		e->up = NULL;
		e->up_seq = 0;
		e->del_seq = seq;
	} else {
		e->up = ch;
		e->up_seq = seq;
	}
	return 0;
}

/* true when an upsert of placements or of a link lost its actor to a later
 * PROJ_ACTOR_DELETE of the segment. */
static bool co_orphaned(const struct wr_co *co, const struct wr_ent *e)
{
	const char *actor;
	if (e->table == WT_PLACEMENTS)
		actor = e->up->params[0];
	else if (e->table == WT_LINKS)
		actor = e->up->params[1];
	else
		return false;
	const struct wr_ent *a = co_lookup(co, WT_ACTORS, actor);
	return a && a->del_seq > e->up_seq;
}

/* Starts a new segment. Keeps the memory unless a big one (a rebuild) grew it. */
static void co_clear(struct wr_co *co)
{
	co->n = 0;
	co->seq = co->first = co->last = 0;
	if (co->cap > 65536) {
		free(co->ents);
		co->ents = NULL;
		co->cap = 0;
	}
	if (co->nslots > 4096) {
		free(co->slots);
		co->slots = NULL;
		co->nslots = 0;
	} else if (co->nslots) {
		memset(co->slots, 0, co->nslots * sizeof(*co->slots));
	}
}

static void co_free(struct wr_co *co)
{
	free(co->ents);
	free(co->slots);
	memset(co, 0, sizeof(*co));
}

static void wb_put(struct wr_buf *b, const char *p, size_t n)
{
	if (b->oom)
		return;
	if (b->cap - b->len < n + 1) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len < n + 1)
			cap *= 2;
		char *np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void wb_c(struct wr_buf *b, char c)
{
	wb_put(b, &c, 1);
}

/* s as a JSON string. */
static void wb_json_str(struct wr_buf *b, const char *s)
{
	const char *run = s;
	wb_c(b, '"');
	for (const char *p = s;; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch && ch != '"' && ch != '\\' && ch >= 0x20)
			continue;
		wb_put(b, run, (size_t)(p - run));
		if (!ch)
			break;
		char esc[8];
		if (ch == '"' || ch == '\\')
			snprintf(esc, sizeof(esc), "\\%c", ch);
		else
			snprintf(esc, sizeof(esc), "\\u%04x", ch);
		wb_put(b, esc, strlen(esc));
		run = p + 1;
	}
	wb_c(b, '"');
}

/* s as an element of a PostgreSQL array literal (NULL: SQL NULL). */
static void wb_array_str(struct wr_buf *b, const char *s)
{
	if (!s) {
		wb_put(b, "NULL", 4);
		return;
	}
	wb_c(b, '"');
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			wb_c(b, '\\');
		wb_c(b, *p);
	}
	wb_c(b, '"');
}

/* A change as a row object: {"key": value, ...}; NULL parameters are left out
 * (jsonb_to_recordset reads a missing key as NULL). */
static void wb_row(struct wr_buf *b, const struct proj_change *ch)
{
	const struct wr_kind *k = &wr_kinds[ch->kind];
	bool first = true;
	wb_c(b, '{');
	for (int i = 0; i < ch->nparams && i < k->nparams; i++) {
		const char *v = ch->params[i];
		if (!v)
			continue;
		if (!first)
			wb_c(b, ',');
		first = false;
		wb_c(b, '"');
		wb_put(b, k->cols[i].key, strlen(k->cols[i].key));
		wb_put(b, "\":", 2);
		if (k->cols[i].json)
			wb_put(b, v, strlen(v)); /* proj.c rendered it: one JSON value */
		else
			wb_json_str(b, v);
	}
	wb_c(b, '}');
}

/* ---- writer: sending a round ---------------------------------------------- */

/* Sends the coalesced segment as one call of lattice_project(): after
 * lattice_reset() when reset, one parameter per (table, kind), NULL when the
 * segment has no such rows; to: the round's highest index, on its last call
 * only. Notes what the call was, then starts the next segment. 0, or -1 with
 * msg. */
static int wr_send_call(struct store *s, bool reset, const char *to, uint64_t first, uint64_t last,
			char *msg, size_t len)
{
	struct wr_co *co = &s->co;
	const char *params[2 + PS_RESET] = {to, reset ? "t" : "f"};
	struct wr_query q = {.reset = reset, .first = first, .last = last};

	if (s->nqs == s->capqs) {
		size_t cap = s->capqs ? s->capqs * 2 : 32;
		struct wr_query *nq = realloc(s->qs, cap * sizeof(*nq));
		if (!nq) {
			store_err(msg, len, "out of memory");
			return -1;
		}
		s->qs = nq;
		s->capqs = cap;
	}
	for (int st = 0; st < PS_RESET; st++) {
		enum wr_table t = wr_stmts[st].table;
		bool del = wr_stmts[st].del;
		struct wr_buf *b = &s->buf[st];
		size_t rows = 0;
		b->len = 0;
		b->oom = false;
		wb_c(b, del ? '{' : '[');
		for (size_t i = 0; i < co->n; i++) {
			const struct wr_ent *e = &co->ents[i];
			if (e->table != t || (del ? !e->deleted : !e->up || co_orphaned(co, e)))
				continue;
			if (rows++)
				wb_c(b, ',');
			if (del)
				wb_array_str(b, e->k0);
			else
				wb_row(b, e->up);
		}
		wb_c(b, del ? '}' : ']');
		if (b->oom) {
			store_err(msg, len, "out of memory");
			return -1;
		}
		q.rows[st] = rows;
		params[2 + st] = rows ? b->p : NULL;
	}
	if (!PQsendQueryPrepared(s->wc, store_sql[SQL_PROJECT].name, store_sql[SQL_PROJECT].nparams,
				 params, NULL, NULL, 0)) {
		store_err(msg, len, "%s", PQerrorMessage(s->wc));
		return -1;
	}
	s->qs[s->nqs++] = q;
	co_clear(co);
	return 0;
}

/* Sends the round: the in-flight changes, coalesced, as one lattice_project()
 * call per segment (one, unless the round holds a PROJ_RESET), the last one
 * recording max; then sync. The calls before the sync are one implicit
 * transaction: no BEGIN, no COMMIT. Returns the number of calls, or -1 with msg
 * (the connection is then unusable: nothing was committed). */
static int wr_send(struct store *s, uint64_t max, char *msg, size_t len)
{
	PGconn *c = s->wc;
	char maxbuf[24];
	int rc = -1;
	bool reset = false;      /* the segment being built begins with a PROJ_RESET */
	uint64_t seg_first = 0;  /* its first entry; 0: none yet */

	snprintf(maxbuf, sizeof(maxbuf), "%" PRIu64, max);
	s->nqs = 0;
	co_clear(&s->co);
	if (!PQenterPipelineMode(c))
		goto conn;
	for (struct proj_batch *b = s->fl_head; b; b = b->next) {
		for (const struct proj_change *ch = b->head; ch; ch = ch->next) {
			if (ch->kind == PROJ_RESET) {
				/* The segment so far (if any) is a call of its own: the reset
				 * begins the next one. */
				if ((reset || s->co.n) &&
				    wr_send_call(s, reset, NULL, seg_first, b->index, msg, len) != 0)
					goto out;
				reset = true;
				seg_first = b->index;
				continue;
			}
			if (!seg_first)
				seg_first = b->index;
			if (co_add(&s->co, b->index, ch) != 0) {
				store_err(msg, len, "out of memory");
				goto out;
			}
		}
	}
	if (wr_send_call(s, reset, maxbuf, seg_first ? seg_first : s->fl_head->index, max, msg,
			 len) != 0)
		goto out;
	if (!PQpipelineSync(c))
		goto conn;
	rc = (int)s->nqs;
	goto out;
conn:
	store_err(msg, len, "%s", PQerrorMessage(c));
out:
	co_clear(&s->co); /* it borrowed from the batches */
	for (int i = 0; i < PS_RESET; i++) {
		if (s->buf[i].cap > (1 << 20)) { /* a rebuild's; libpq has copied it */
			free(s->buf[i].p);
			s->buf[i] = (struct wr_buf){0};
		}
	}
	return rc;
}

/* Describes what failed in the last round (f from wr_collect), for the error
 * line: the step of lattice_project() and its rows, and which segment when the
 * round had several. */
static void wr_describe(const struct store *s, const struct wr_fail *f, char *buf, size_t len)
{
	const struct wr_query *wq = f->q >= 0 && (size_t)f->q < s->nqs ? &s->qs[f->q] : NULL;
	int n;
	if (!wq) {
		/* after the last call's results: the implicit COMMIT */
		snprintf(buf, len, "%s", f->q >= 0 && (size_t)f->q == s->nqs ? "COMMIT" : "lattice_project");
		return;
	}
	if (f->step < 0)
		n = snprintf(buf, len, "lattice_project");
	else if (f->step < PS_RESET)
		n = snprintf(buf, len, "%s (%zu %s)", store_proj_steps[f->step].name, wq->rows[f->step],
			     wq->rows[f->step] == 1 ? "row" : "rows");
	else
		n = snprintf(buf, len, "%s", store_proj_steps[f->step].name);
	/* a round with resets: which segment */
	if (n >= 0 && (size_t)n < len && s->nqs > 1)
		snprintf(buf + n, len - (size_t)n, " of entries %" PRIu64 "..%" PRIu64 "%s", wq->first,
			 wq->last, wq->reset ? " (after a reset)" : "");
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

/* Frees retained transactions whose WAL PostgreSQL has flushed. insert_lsn must
 * have been read after every retained transaction committed. */
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

/* One transaction of everything in flight: one round trip, one statement per
 * segment (wr_send). */
static void wr_write(struct store *s)
{
	PGconn *c = s->wc;
	uint64_t max = s->fl_tail->index, from = s->db_applied;
	size_t nb = s->fl_n, nc = s->fl_changes;
	struct wr_fail f = {.q = -1};
	PGresult *wal = NULL;

	int nq = wr_send(s, max, f.msg, sizeof(f.msg));
	int rc = nq < 0 ? WR_CONN : wr_collect(s, nq, nq - 1, &wal, STORE_IO_TIMEOUT_MS, &f);
	if (rc != WR_CONN && !PQexitPipelineMode(c)) {
		store_err(f.msg, sizeof(f.msg), "%s", PQerrorMessage(c));
		rc = WR_CONN;
	}
	if (rc == WR_CONN) {
		PQclear(wal);
		wr_conn_lost(s, f.msg); /* wr_resync sorts out whether the commit made it */
		return;
	}
	if (rc == WR_SQL) {
		char what[160];
		wr_describe(s, &f, what, sizeof(what));
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

	/* lattice_project() read the WAL insert position inside this transaction:
	 * past the commit records of the earlier ones (so it bounds those), not past
	 * this one's. So release first, then retain this one with its bound unknown;
	 * the next round or the idle probe (wr_ping) supplies it. */
	uint64_t insert_lsn = wal ? store_u64(wal, 0, 0) : 0, flush_lsn = wal ? store_u64(wal, 0, 1) : 0;
	PQclear(wal);
	if (insert_lsn)
		wr_release(s, insert_lsn, flush_lsn);
	wr_retain(s, wr_detach(s, nb), from, 0);
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
