/* store — this replica's PostgreSQL database: opening and closing it, and the
 * projection writer thread with its queue. See store.h for the contract. Its
 * helpers: migrate.c readies the database at open, store_coalesce.c merges a
 * round's changes, store_read.c keeps the readers' connections, store_pg.c the
 * plumbing they share.
 *
 * Writer thread, one transaction per round:
 *
 *   queue --take--> in flight --SELECT lattice_project(changes..., max)-->
 *         retained (committed, WAL maybe not flushed) --flush LSN passes--> freed
 *
 * The whole transaction is one statement, an implicit transaction (one per
 * segment, all before one Sync, when the round holds a PROJ_RESET): the server
 * function lattice_project() (schema/003_node_usage.sql) runs one statement per
 * (table, kind of change) of the coalesced changes (see store_coalesce.c),
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
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "migrate.h"
#include "proj.h"
#include "store_coalesce.h"
#include "store_int.h"
#include "store_pg.h"
#include "store_spool.h"

enum {
	STORE_TX_BATCHES = 1000,      /* per transaction, so one round trip stays bounded */
	STORE_TX_CHANGES = 10000,
	STORE_BACKOFF_MIN_MS = 100,
	STORE_BACKOFF_MAX_MS = 2000,
	STORE_PING_MS = 1000,         /* idle probe: notice a dead server without traffic */
	STORE_RETAIN_PING_MS = 100,   /* probe sooner while holding unflushed batches */
	STORE_IO_TIMEOUT_MS = 30000,  /* no byte in or out this long: the server is gone */
	STORE_PING_TIMEOUT_MS = 5000,
};

/* ---- SQL ------------------------------------------------------------------- */

/* Each step's name in error lines (the comments of 003_node_usage.sql name the
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
	[PS_ACTORS_UPSERT] = {"proj_actors_upsert", "INSERT INTO actors ("},
	[PS_ACTORS_INSERT] = {"proj_actors_insert", "INSERT INTO actors AS fresh "},
	[PS_PROVIDERS_UPSERT] = {"proj_providers_upsert", "INSERT INTO providers "},
	[PS_PLACEMENTS_SET] = {"proj_placements_set", "WITH a AS "},
	[PS_PLACEMENTS_INSERT] = {"proj_placements_insert", "INSERT INTO placements AS fresh "},
	[PS_LINKS_UPSERT] = {"proj_links_upsert", "INSERT INTO links "},
	[PS_POLICIES_UPSERT] = {"proj_policies_upsert", "INSERT INTO policies "},
	[PS_COMMANDS_UPSERT] = {"proj_commands_upsert", "INSERT INTO commands "},
	[PS_FAILOVERS_UPSERT] = {"proj_failovers_upsert", "INSERT INTO failovers "},
	[PS_SNAPSHOTS_PUT] = {"proj_snapshots_put", "WITH s AS "},
	[PS_EVENTS_INSERT] = {"proj_events_insert", "INSERT INTO events "},
	[PS_RESET] = {"proj_reset", "SELECT lattice_reset()"},
	[PS_ADVANCE] = {"lattice_advance", "UPDATE lattice_state "},
	[PS_DEFERRED] = {"the deferred foreign key checks", "SET CONSTRAINTS "},
};

/* The store's own statements. */
enum store_sql_id {
	SQL_ROLLBACK,
	SQL_PROJECT,
	SQL_WAL,
	SQL_APPLIED,
	SQL_SYNC_OFF,
	SQL_LOCK,
	SQL_HOLDER,
	SQL_OWNER,
	SQL_COUNT
};

/* The projection lock: a session-level advisory lock the writer's session holds
 * for as long as it projects, so two latticed processes never project into one
 * database. PostgreSQL scopes advisory locks to the current database, so one
 * constant key (ASCII "latticeW") is a lock per database. As a pg_locks row:
 * classid and objid are its high and low 32 bits, objsubid 1 (the bigint form). */
#define STORE_LOCK_KEY "7809651272170300759"
#define STORE_LOCK_CLASSID "1818326132"
#define STORE_LOCK_OBJID "1768121687"
#define STORE_LOCK_WAIT "5s"

static const struct store_stmt store_sql[SQL_COUNT] = {
	[SQL_ROLLBACK] = {NULL, 0, "ROLLBACK"},
	/* One segment of a round (schema/005_commands.sql): p_to, p_reset, then
	 * one parameter per step, in enum proj_stmt's order. */
	[SQL_PROJECT] = {"store_project", 2 + PS_RESET,
		"SELECT wal_insert_lsn, wal_flush_lsn FROM lattice_project($1::bigint, $2::boolean,"
		" $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb, $8::jsonb, $9::jsonb,"
		" $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb, $14::jsonb, $15::jsonb, $16::jsonb, $17::jsonb, $18::jsonb)"},
	/* WAL insert position (at or past every commit so far) and flush position. */
	[SQL_WAL] = {"store_wal", 0,
		"SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint,"
		" (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::bigint"},
	/* What the database holds, and whose it is now (a writer that reconnects
	 * checks it was not taken over meanwhile). */
	[SQL_APPLIED] = {"store_applied", 0,
		"SELECT applied_index, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint,"
		" group_id, replica_id, instance_id FROM lattice_state"},
	/* Why off: see the top of this file. */
	[SQL_SYNC_OFF] = {NULL, 0, "SET synchronous_commit = off"},
	[SQL_LOCK] = {"store_lock", 0, "SELECT pg_try_advisory_lock(" STORE_LOCK_KEY ")"},
	/* Who holds the lock (for the message when it is taken): the database's name
	 * and, when the holder is still there, its session. */
	[SQL_HOLDER] = {"store_holder", 0,
		"SELECT current_database(), h.pid, h.addr, h.app, h.since FROM (SELECT 1) one LEFT JOIN ("
		" SELECT a.pid, coalesce(host(a.client_addr), 'the local socket') AS addr,"
		" coalesce(a.application_name, '') AS app,"
		" to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS since"
		" FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
		" WHERE l.locktype = 'advisory' AND l.granted"
		" AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
		" AND l.classid = " STORE_LOCK_CLASSID " AND l.objid = " STORE_LOCK_OBJID " AND l.objsubid = 1"
		" LIMIT 1) h ON true"},
	/* Whose lattice_state says it is (for that message; fails harmlessly on a
	 * database not migrated yet). */
	[SQL_OWNER] = {NULL, 0, "SELECT replica_id, group_id, instance_id FROM lattice_state"},
};

/* ---- state ----------------------------------------------------------------- */

/* A committed transaction whose WAL PostgreSQL may not have flushed yet. */
struct store_txn {
	uint64_t from; /* applied index before it */
	uint64_t lsn;  /* WAL position at or past its commit record; 0 = not known yet */
	struct proj_batch *head, *tail;
	struct store_txn *next;
};

/* What each lattice_project() call of the round in flight was, for the error
 * line: the segment's entries and its rows per step. */
struct wr_query {
	bool reset;
	size_t rows[PS_RESET];
	uint64_t first, last;
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

static const char *store_sqlstate(const PGresult *r)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return st ? st : "";
}

/* Session settings and prepared statements of a writer connection. */
static int store_writer_setup(PGconn *c, char *err, size_t errlen)
{
	if (store_exec_ok(c, &store_sql[SQL_SYNC_OFF], NULL, err, errlen) != 0)
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

/* ---- the projection lock ---------------------------------------------------- */

/* Describes who holds the projection lock of c's database into buf: the
 * holder's session (from the result of SQL_HOLDER, r) and whose lattice_state
 * says the database is (from SQL_OWNER's result, o; NULL when unreadable). */
static void store_holder_text(const PGresult *r, const PGresult *o, char *buf, size_t len)
{
	const char *db = r && PQntuples(r) ? PQgetvalue(r, 0, 0) : "?";
	int n = snprintf(buf, len, "another latticed is projecting into database \"%s\"", db);
	if (n < 0 || (size_t)n >= len)
		return;
	if (r && PQntuples(r) && !PQgetisnull(r, 0, 1))
		n += snprintf(buf + n, len - (size_t)n,
			      " (its session: PostgreSQL backend pid %s from %s, application_name '%s', since %s)",
			      PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4));
	if (n >= 0 && (size_t)n < len && o && PQntuples(o) && !PQgetisnull(o, 0, 1))
		snprintf(buf + n, len - (size_t)n,
			 "; lattice_state records it for replica %s of group %s (data dir instance %s)",
			 PQgetvalue(o, 0, 0), PQgetvalue(o, 0, 1), PQgetisnull(o, 0, 2) ? "?" : PQgetvalue(o, 0, 2));
}

/* At open, before anything else touches the database: takes the projection
 * lock on the writer's session, waiting up to STORE_LOCK_WAIT for it: the
 * session of a latticed that has just exited (a restart) lets go of it only as
 * its backend finishes exiting. 0, or -1 with a message in err. */
static int store_lock_open(struct store *s, char *err, size_t errlen)
{
	static const struct store_stmt wait = {NULL, 0, "SET lock_timeout = '" STORE_LOCK_WAIT "'"},
					lock = {NULL, 0, "SELECT pg_advisory_lock(" STORE_LOCK_KEY ")"},
					nowait = {NULL, 0, "RESET lock_timeout"};
	char msg[512];
	if (store_exec_ok(s->wc, &wait, NULL, msg, sizeof(msg)) != 0) {
		store_err(err, errlen, "taking the projection lock: %s", msg);
		return -1;
	}
	PGresult *r = PQexecParams(s->wc, lock.sql, 0, NULL, NULL, NULL, NULL, 0);
	bool got = PQresultStatus(r) == PGRES_TUPLES_OK;
	bool held = !got && strcmp(store_sqlstate(r), "55P03") == 0; /* lock_not_available */
	if (!got && !held)
		store_err(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(s->wc));
	PQclear(r);
	if (!got && !held) {
		store_err(err, errlen, "taking the projection lock: %s", msg);
		return -1;
	}
	if (store_exec_ok(s->wc, &nowait, NULL, msg, sizeof(msg)) != 0) {
		store_err(err, errlen, "taking the projection lock: %s", msg);
		return -1;
	}
	if (got)
		return 0;
	PGresult *h = store_exec(s->wc, &store_sql[SQL_HOLDER], NULL, PGRES_TUPLES_OK, msg, sizeof(msg));
	PGresult *o = store_exec(s->wc, &store_sql[SQL_OWNER], NULL, PGRES_TUPLES_OK, msg, sizeof(msg));
	char who[1024];
	store_holder_text(h, o, who, sizeof(who));
	PQclear(h);
	PQclear(o);
	store_err(err, errlen,
		  "%s: two latticed processes cannot project into one database. Give each replica a database of "
		  "its own (--pg), or stop the other latticed first",
		  who);
	return -1;
}

/* ---- open / close ---------------------------------------------------------- */

int store_open(struct store **out, const struct store_config *cfg, char *err, size_t errlen)
{
	assert(cfg->conninfo && cfg->schema_dir && cfg->instance_id && *cfg->instance_id && cfg->group_id &&
	       *cfg->group_id && cfg->replica_id >= 1);
	struct store *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;
	if (!s)
		goto nomem;
	s->conninfo = strdup(cfg->conninfo);
	if (cfg->read_timeout_ms)
		snprintf(s->read_options, sizeof(s->read_options), "-c statement_timeout=%u", cfg->read_timeout_ms);
	if (!s->conninfo) {
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
		free(s);
		return -1;
	}
	atomic_init(&s->healthy, true);
	s->sp.fd = -1;
	s->queue_max = cfg->queue_max;
	s->room = cfg->room;
	s->room_arg = cfg->room_arg;

	s->wc = store_connect(cfg->conninfo, "lattice-writer", NULL);
	if (!s->wc)
		goto nomem_close;
	if (PQstatus(s->wc) != CONNECTION_OK) {
		store_err(err, errlen, "cannot connect to PostgreSQL: %s", PQerrorMessage(s->wc));
		goto fail;
	}
	s->group_id = strdup(cfg->group_id);
	s->instance_id = strdup(cfg->instance_id);
	s->replica_id = cfg->replica_id;
	if (!s->group_id || !s->instance_id)
		goto nomem_close;
	/* First the lock: a second latticed must not migrate, let alone wipe, a
	 * database another one projects into. */
	if (store_lock_open(s, err, errlen) != 0)
		goto fail;
	/* A spool of an earlier process: raft replays what it held. */
	if (cfg->spool_path && spool_init(&s->sp, cfg->spool_path, err, errlen) != 0)
		goto fail;
	const struct migrate_owner me = {cfg->group_id, cfg->replica_id, cfg->instance_id};
	if (migrate_apply(s->wc, cfg->schema_dir, err, errlen) != 0 ||
	    migrate_claim(s->wc, &me, cfg->wipe_foreign, &s->open_applied, &s->was_reset, s->claim_note,
			  sizeof(s->claim_note), err, errlen) != 0)
		goto fail;
	s->db_applied = s->open_applied;
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

const char *store_claim_note(const struct store *s)
{
	return s->claim_note;
}

/* Frees a list of batches the store held, and counts their memory out. */
static void store_free_batches(struct store *s, struct proj_batch *b)
{
	size_t held = 0;
	while (b) {
		struct proj_batch *next = b->next;
		held += b->held;
		proj_batch_free(b);
		b = next;
	}
	atomic_fetch_sub(&s->mem_bytes, held);
}

void store_close(struct store *s)
{
	if (!s)
		return;
	if (s->started)
		(void)store_stop(s, 0);
	store_free_batches(s, s->qhead);
	store_free_batches(s, s->fl_head);
	while (s->rt_head) {
		struct store_txn *t = s->rt_head;
		s->rt_head = t->next;
		store_free_batches(s, t->head);
		free(t);
	}
	spool_release(&s->sp);
	co_free(&s->co);
	for (int i = 0; i < PS_RESET; i++)
		jw_free(&s->buf[i]);
	free(s->qs);
	PQfinish(s->wc);
	store_readers_close(s);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->rmu);
	pthread_cond_destroy(&s->cv);
	free(s->conninfo);
	free(s->group_id);
	free(s->instance_id);
	free(s);
}

/* ---- queue ----------------------------------------------------------------- */

void store_submit(struct store *s, struct proj_batch *b)
{
	b->next = NULL;
	store_submit_chain(s, b);
}

/* Takes no more batches: the spool could not grow, or could not be read back.
 * Called under mu. */
static void store_halt(struct store *s, const char *what)
{
	if (!atomic_load(&s->halted))
		store_log("%s. The projection stops there: what this process holds before that point is written "
			  "once PostgreSQL can take it, nothing after it (nothing is skipped); restart latticed, with "
			  "room in the data dir, to replay the rest from the Raft log",
			  what);
	atomic_store(&s->halted, true);
	atomic_store(&s->healthy, false);
	atomic_fetch_add(&s->n_errors, 1);
}

/* Appends b to the spool (b stays the caller's). Called under mu. 0, or -1
 * after halting. */
static int store_spool(struct store *s, struct proj_batch *b)
{
	char msg[512], what[1024];
	size_t len = spool_encode(&s->sp, b, msg, sizeof(msg));
	if (len == 0) {
		snprintf(what, sizeof(what), "cannot spool the batch of entry %" PRIu64 ": %s", b->index, msg);
		store_halt(s, what);
		return -1;
	}
	if (s->room && !s->room(s->room_arg, len, msg, sizeof(msg))) {
		snprintf(what, sizeof(what),
			 "the projection spool %s (%" PRIu64 " bytes) cannot take the batch of entry %" PRIu64
			 " (%zu bytes): %s",
			 s->sp.path, s->sp.end, b->index, len, msg);
		store_halt(s, what);
		return -1;
	}
	if (spool_append(&s->sp, msg, sizeof(msg)) != 0) {
		snprintf(what, sizeof(what), "cannot spool the batch of entry %" PRIu64 ": %s", b->index, msg);
		store_halt(s, what);
		return -1;
	}
	if (!s->spooling)
		store_log("the projection queue is over %zu bytes in memory (PostgreSQL is %s): spooling batches "
			  "from entry %" PRIu64 " on to %s",
			  s->queue_max, atomic_load(&s->healthy) ? "slow" : "unreachable", b->index, s->sp.path);
	s->spooling = true;
	atomic_store(&s->spool_bytes, s->sp.end);
	atomic_fetch_add(&s->n_spooled, 1);
	return 0;
}

void store_submit_chain(struct store *s, struct proj_batch *chain)
{
	struct proj_batch *head = NULL, *tail = NULL, *done = NULL;
	size_t n = 0;
	while (chain) {
		struct proj_batch *b = chain;
		chain = b->next;
		b->next = NULL;
		assert(!b->failed); /* the caller checks b->failed before submitting */
#ifndef NDEBUG
		for (const struct proj_change *c = b->head; c; c = c->next)
			assert(c->kind < PROJ_KIND_COUNT && c->nparams == co_kind_nparams(c->kind));
#endif
		if (b->index <= atomic_load(&s->projected)) {
			proj_batch_free(b); /* already in the database (replay after a restart) */
			continue;
		}
		b->held = proj_batch_bytes(b);
		if (tail)
			tail->next = b;
		else
			head = b;
		tail = b;
	}
	if (head == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	while (head) {
		struct proj_batch *b = head;
		head = b->next;
		b->next = NULL;
		assert(b->index > s->last_submitted); /* log order */
		s->last_submitted = b->index;
		/* Halted: dropped (a restart replays it). Spooling, or over the bound:
		 * to the spool, after everything there. */
		if (atomic_load(&s->halted) ||
		    (s->sp.path && (s->spooling || (s->queue_max && atomic_load(&s->mem_bytes) + b->held >
									  s->queue_max)))) {
			if (!atomic_load(&s->halted) && store_spool(s, b) == 0)
				n++;
			b->next = done;
			done = b;
			continue;
		}
		atomic_fetch_add(&s->mem_bytes, b->held);
		if (s->qtail)
			s->qtail->next = b;
		else
			s->qhead = b;
		s->qtail = b;
		n++;
	}
	atomic_fetch_add(&s->backlog, n);
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	while (done) { /* spooled or dropped: freed outside the lock */
		struct proj_batch *next = done->next;
		proj_batch_free(done);
		done = next;
	}
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
	out->queue_bytes = atomic_load(&s->mem_bytes);
	out->spool_bytes = atomic_load(&s->spool_bytes);
	out->spooled = atomic_load(&s->n_spooled);
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

/* How a segment's changes are merged per (table, key) and rendered as
 * lattice_project()'s parameters: store_coalesce.c. */

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
		struct jw *b = &s->buf[st];
		size_t rows = co_render(co, (enum proj_stmt)st, b);
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
		if (s->buf[i].cap > (1 << 20)) /* a rebuild's; libpq has copied it */
			jw_free(&s->buf[i]);
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

/* Healthy: the writer can write and nothing holds it back. */
static bool wr_healthy(const struct store *s)
{
	return !s->sql_failing && !s->lost && !s->disowned && !atomic_load(&s->halted);
}

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
	atomic_fetch_add(&s->epoch, 1);
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
		store_free_batches(s, list);
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
		store_free_batches(s, t->head);
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
	/* Still ours? Another latticed may have taken the database over (--pg-reset)
	 * while this one was away: its rows are not this log's. */
	if (PQgetisnull(r, 0, 2) || PQgetisnull(r, 0, 4) || strcmp(PQgetvalue(r, 0, 2), s->group_id) != 0 ||
	    store_u64(r, 0, 3) != s->replica_id || strcmp(PQgetvalue(r, 0, 4), s->instance_id) != 0) {
		store_log("the database is now recorded for replica %s of group %s (data dir instance %s), not this "
			  "replica: another latticed took it over while this one was disconnected. Not writing to "
			  "it any more; restart latticed with a database of its own (--pg)",
			  PQgetisnull(r, 0, 3) ? "?" : PQgetvalue(r, 0, 3),
			  PQgetisnull(r, 0, 2) ? "?" : PQgetvalue(r, 0, 2),
			  PQgetisnull(r, 0, 4) ? "?" : PQgetvalue(r, 0, 4));
		PQclear(r);
		atomic_fetch_add(&s->n_errors, 1);
		s->disowned = true;
		return WR_OK;
	}
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
				atomic_fetch_sub(&s->mem_bytes, b->held);
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

/* After reconnecting: takes the projection lock again before anything is
 * written. WR_OK when held; WR_SQL when another session holds it (f->msg says
 * whose); WR_CONN. */
static int wr_lock(struct store *s, struct wr_fail *f)
{
	PGresult *r = NULL, *h = NULL;
	int rc = wr_simple(s, SQL_LOCK, &r, f);
	if (rc == WR_OK && (!r || PQntuples(r) != 1)) {
		store_err(f->msg, sizeof(f->msg), "pg_try_advisory_lock returned no row");
		rc = WR_SQL;
	}
	if (rc != WR_OK || strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		PQclear(r);
		return rc;
	}
	PQclear(r);
	rc = wr_simple(s, SQL_HOLDER, &h, f);
	if (rc == WR_CONN)
		return rc;
	store_holder_text(h, NULL, f->msg, sizeof(f->msg));
	PQclear(h);
	return WR_SQL;
}

static void wr_connect(struct store *s)
{
	char msg[512];
	struct wr_fail f = {.q = -1};
	if (s->disowned) { /* never again: wait for the stop */
		wr_backoff(s);
		return;
	}
	s->wc = store_connect(s->conninfo, "lattice-writer", NULL);
	if (!s->wc || PQstatus(s->wc) != CONNECTION_OK) {
		wr_conn_lost(s, s->wc ? PQerrorMessage(s->wc) : "out of memory");
		return;
	}
	if (store_writer_setup(s->wc, msg, sizeof(msg)) != 0) {
		wr_conn_lost(s, msg);
		return;
	}
	int rc = wr_lock(s, &f);
	if (rc == WR_SQL) {
		/* Someone else projects into the database now: write nothing, and
		 * try again later (it may be a latticed that is about to find the
		 * database is not its own and exit). */
		if (!s->lock_refused)
			store_log("reconnected to PostgreSQL, but cannot take the projection lock again: %s. Not "
				  "writing while it is held; retrying",
				  f.msg);
		s->lock_refused = true;
		atomic_fetch_add(&s->n_errors, 1);
		s->down = true;
		wr_close(s);
		wr_backoff(s);
		return;
	}
	if (rc == WR_OK)
		rc = wr_resync(s, &f);
	if (rc != WR_OK) {
		wr_conn_lost(s, f.msg);
		return;
	}
	if (s->disowned) {
		wr_close(s); /* and with it the lock, for the database's owner */
		wr_backoff(s);
		return;
	}
	if (s->lock_refused)
		store_log("took the projection lock again");
	s->lock_refused = false;
	if (s->down) {
		atomic_fetch_add(&s->epoch, 1);
		atomic_fetch_add(&s->n_reconnects, 1);
		store_log("reconnected to PostgreSQL; applied_index %" PRIu64, s->db_applied);
	}
	s->down = false;
	s->backoff_ms = 0;
	atomic_store(&s->healthy, wr_healthy(s));
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
	atomic_store(&s->healthy, wr_healthy(s));
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

/* Reads spooled batches back in flight, up to one transaction's worth and
 * within the memory bound (at least one batch), from the records below limit
 * (sp.end when the writer looked, under mu). Removes the spool once everything
 * in it was read. */
static void wr_take_spool(struct store *s, uint64_t limit)
{
	char msg[512];
	bool failed = false;
	while (s->sp.rd < limit && s->fl_n < STORE_TX_BATCHES && s->fl_changes < STORE_TX_CHANGES &&
	       (!s->queue_max || !s->fl_head || atomic_load(&s->mem_bytes) < s->queue_max)) {
		struct proj_batch *b = NULL;
		if (spool_read(&s->sp, limit, &b, msg, sizeof(msg)) != 0) {
			failed = true;
			break;
		}
		b->held = proj_batch_bytes(b);
		atomic_fetch_add(&s->mem_bytes, b->held);
		if (s->fl_tail)
			s->fl_tail->next = b;
		else
			s->fl_head = b;
		s->fl_tail = b;
		s->fl_n++;
		s->fl_changes += b->n;
	}
	pthread_mutex_lock(&s->mu);
	if (failed) {
		/* Never skip a record: what was read before it is written, nothing
		 * after it; the rest comes back from the Raft log at the next start. */
		store_halt(s, msg);
		atomic_store(&s->backlog, s->fl_n); /* the spooled ones are dropped */
	}
	if (failed || s->sp.rd == s->sp.end) {
		spool_remove(&s->sp);
		s->spooling = false;
		atomic_store(&s->spool_bytes, 0);
	}
	pthread_mutex_unlock(&s->mu);
}

static void *store_writer(void *arg)
{
	struct store *s = arg;
	s->ping_at = store_now_ms() + STORE_PING_MS;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		int64_t now = store_now_ms();
		bool work = (s->fl_head || s->qhead || s->spooling) && !s->lost;
		if (s->stopping && !s->fl_head && !s->qhead && !s->spooling) {
			s->flushed = !atomic_load(&s->halted);
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
		/* The spool holds what came after the memory queue: read it back
		 * once that is in flight, and only with PostgreSQL there to take it. */
		bool unspool = !s->lost && s->wc && !s->qhead && s->spooling && s->fl_n < STORE_TX_BATCHES &&
			       s->fl_changes < STORE_TX_CHANGES;
		uint64_t spool_end = s->sp.end;
		pthread_mutex_unlock(&s->mu);

		if (unspool)
			wr_take_spool(s, spool_end);
		if (!s->wc)
			wr_connect(s);
		else if (work && s->fl_head)
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
		bool empty = !s->qhead && !s->spooling && !atomic_load(&s->halted);
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
