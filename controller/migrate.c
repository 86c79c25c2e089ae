/* migrate — readies this replica's PostgreSQL database when the store opens it:
 * applies schema/NNN_name.sql in order, each once, recorded in
 * schema_migrations (under an advisory lock, so concurrent latticeds take turns),
 * then claims the database for this data dir's instance id. See migrate.h. */
#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg.h"

enum { MIGRATE_FILE_MAX = 16 << 20 };

/* The statements of migrations and of the claim. */
enum migrate_sql_id {
	MIG_BEGIN,
	MIG_COMMIT,
	MIG_TABLE,
	MIG_LOCK,
	MIG_MAX,
	MIG_DONE,
	MIG_RECORD,
	MIG_STATE_ROW,
	MIG_STATE_READ,
	MIG_STATE_CLAIM,
	MIG_STATE_WIPE,
	MIG_COUNT
};

static const struct store_stmt migrate_sql[MIG_COUNT] = {
	[MIG_BEGIN] = {NULL, 0, "BEGIN"},
	[MIG_COMMIT] = {NULL, 0, "COMMIT"},
	[MIG_TABLE] = {NULL, 0,
		"CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
		" name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"},
	/* One migrating process at a time; the key is "lattice1" in ASCII. */
	[MIG_LOCK] = {NULL, 0, "SELECT pg_advisory_xact_lock(7810353712369739313)"},
	[MIG_MAX] = {NULL, 0, "SELECT coalesce(max(version), 0) FROM schema_migrations"},
	[MIG_DONE] = {NULL, 1, "SELECT 1 FROM schema_migrations WHERE version = $1::integer"},
	[MIG_RECORD] = {NULL, 2,
		"INSERT INTO schema_migrations (version, name) VALUES ($1::integer, $2::text)"},
	[MIG_STATE_ROW] = {NULL, 0, "INSERT INTO lattice_state (id) VALUES (true) ON CONFLICT DO NOTHING"},
	[MIG_STATE_READ] = {NULL, 0,
		"SELECT applied_index, instance_id, group_id, replica_id, current_database() FROM lattice_state"
		" FOR UPDATE"},
	[MIG_STATE_CLAIM] = {NULL, 3,
		"UPDATE lattice_state SET group_id = $1::text, replica_id = $2::bigint, instance_id = $3::text,"
		" updated_at = now()"},
	[MIG_STATE_WIPE] = {NULL, 3, "SELECT lattice_wipe($1::text, $2::bigint, $3::text)"},
};

static int migrate_ok(PGconn *c, enum migrate_sql_id id, const char *const *params, char *err,
		      size_t errlen)
{
	return store_exec_ok(c, &migrate_sql[id], params, err, errlen);
}

static int migrate_tuples(PGconn *c, enum migrate_sql_id id, const char *const *params,
			  PGresult **out, char *err, size_t errlen)
{
	return store_exec_tuples(c, &migrate_sql[id], params, out, err, errlen);
}

/* NNN_name.sql: digits, underscore, anything, ".sql". */
static int migrate_version(const char *name)
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

static int migrate_filter(const struct dirent *d)
{
	return migrate_version(d->d_name) > 0;
}

static int migrate_cmp(const struct dirent **a, const struct dirent **b)
{
	int va = migrate_version((*a)->d_name), vb = migrate_version((*b)->d_name);
	return va < vb ? -1 : va > vb;
}

/* Reads a whole file into a NUL-terminated buffer the caller frees. */
static char *migrate_read_file(const char *path, char *err, size_t errlen)
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
			char *nb = cap < MIGRATE_FILE_MAX ? realloc(buf, cap * 2) : NULL;
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
static int migrate_one(PGconn *c, const char *dir, const char *name, int version, char *err,
		       size_t errlen)
{
	char path[4096], vbuf[16], msg[512];
	PGresult *r;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(vbuf, sizeof(vbuf), "%d", version);
	const char *params[] = {vbuf, name};

	if (migrate_ok(c, MIG_BEGIN, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	if (migrate_tuples(c, MIG_LOCK, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	PQclear(r);
	if (migrate_tuples(c, MIG_DONE, params, &r, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	int done = PQntuples(r) > 0;
	PQclear(r);
	if (done)
		return migrate_ok(c, MIG_COMMIT, NULL, err, errlen);

	char *sql = migrate_read_file(path, err, errlen);
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
	if (migrate_ok(c, MIG_RECORD, params, msg, sizeof(msg)) != 0 ||
	    migrate_ok(c, MIG_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail_rollback;
	return 0;

fail_rollback:
	PQclear(PQexec(c, "ROLLBACK"));
fail:
	store_err(err, errlen, "schema migration %s failed: %s", path, msg);
	return -1;
}

int migrate_apply(PGconn *c, const char *dir, char *err, size_t errlen)
{
	struct dirent **ents;
	char msg[512];
	int rc = -1;
	int n = scandir(dir, &ents, migrate_filter, migrate_cmp);
	if (n < 0) {
		store_err(err, errlen, "cannot read schema directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (n == 0) {
		store_err(err, errlen, "no migrations (NNN_name.sql) in schema directory %s", dir);
		goto out;
	}
	for (int i = 1; i < n; i++) {
		if (migrate_version(ents[i]->d_name) == migrate_version(ents[i - 1]->d_name)) {
			store_err(err, errlen, "schema directory %s: %s and %s have the same number", dir,
				  ents[i - 1]->d_name, ents[i]->d_name);
			goto out;
		}
	}

	/* The bookkeeping table itself, under the same lock as the migrations. */
	PGresult *r;
	if (migrate_ok(c, MIG_BEGIN, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_tuples(c, MIG_LOCK, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	PQclear(r);
	if (migrate_ok(c, MIG_TABLE, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_tuples(c, MIG_MAX, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	long long have = (long long)store_u64(r, 0, 0);
	PQclear(r);
	if (migrate_ok(c, MIG_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	int newest = migrate_version(ents[n - 1]->d_name);
	if (have > newest) {
		store_err(err, errlen,
			  "database schema is at version %lld but %s only goes to %d: this latticed is "
			  "older than the one that migrated the database",
			  have, dir, newest);
		goto out;
	}

	for (int i = 0; i < n; i++)
		if (migrate_one(c, dir, ents[i]->d_name, migrate_version(ents[i]->d_name), err,
				errlen) != 0)
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

/* The owner lattice_state records, as read. */
struct migrate_row {
	uint64_t applied;
	const char *instance, *group; /* NULL: none recorded */
	uint64_t replica;             /* 0: none recorded */
	const char *db;
};

/* Why the database is not mine: NULL when it is mine or this replica's (my
 * group and replica id), else why, filled with whose it is. */
static const char *migrate_foreign(const struct migrate_row *r, const struct migrate_owner *me, char *why,
				   size_t len)
{
	if (!r->group) { /* claimed before 004, by instance id alone */
		if (strcmp(r->instance, me->instance_id) == 0)
			return NULL;
		snprintf(why, len,
			 "database \"%s\" was claimed by the data dir with instance id %s (before latticed recorded "
			 "lattice groups; it holds the log up to index %" PRIu64 "), not by this one (%s): it may be "
			 "another replica's",
			 r->db, r->instance, r->applied, me->instance_id);
		return why;
	}
	if (strcmp(r->group, me->group_id) != 0) {
		snprintf(why, len,
			 "database \"%s\" belongs to replica %" PRIu64 " of another lattice group (group %s, data dir "
			 "instance %s; it holds that group's log up to index %" PRIu64 "), not to replica %" PRIu64
			 " of group %s",
			 r->db, r->replica, r->group, r->instance ? r->instance : "unknown", r->applied,
			 me->replica_id, me->group_id);
		return why;
	}
	if (r->replica != me->replica_id) {
		snprintf(why, len,
			 "database \"%s\" belongs to replica %" PRIu64 " of this lattice group (group %s, data dir "
			 "instance %s), not to replica %" PRIu64 ": each replica needs a database of its own",
			 r->db, r->replica, r->group, r->instance ? r->instance : "unknown", me->replica_id);
		return why;
	}
	return NULL;
}

int migrate_claim(PGconn *c, const struct migrate_owner *me, bool wipe_foreign, uint64_t *applied_out,
		  bool *was_reset, char *note, size_t notelen, char *err, size_t errlen)
{
	char msg[512], why[1024] = "", rep[24];
	PGresult *r;
	snprintf(rep, sizeof(rep), "%" PRIu64, me->replica_id);
	const char *params[] = {me->group_id, rep, me->instance_id};
	bool wiped = false;

	note[0] = '\0';
	if (migrate_ok(c, MIG_BEGIN, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_ok(c, MIG_STATE_ROW, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_tuples(c, MIG_STATE_READ, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	struct migrate_row row = {
		.applied = store_u64(r, 0, 0),
		.instance = PQgetisnull(r, 0, 1) ? NULL : PQgetvalue(r, 0, 1),
		.group = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2),
		.replica = store_u64(r, 0, 3),
		.db = PQgetvalue(r, 0, 4),
	};
	uint64_t applied = row.applied;
	enum { CLAIM, KEEP, WIPE } what;
	const char *foreign = NULL;
	if (!row.instance && !row.group) {
		what = CLAIM;
	} else if ((foreign = migrate_foreign(&row, me, why, sizeof(why))) != NULL) {
		if (!wipe_foreign) {
			PQclear(r);
			PQclear(PQexec(c, "ROLLBACK"));
			store_err(err, errlen,
				  "%s. Point --pg at this replica's own database, or start once with --pg-reset to "
				  "wipe this one and rebuild it from this replica's log",
				  foreign);
			return -1;
		}
		what = WIPE;
		snprintf(note, notelen, "--pg-reset: %s; wiped it, rebuilding it from this replica's log", foreign);
	} else if (!row.group) {
		what = CLAIM; /* mine, from before 004: record the group and replica id */
	} else if (row.instance && strcmp(row.instance, me->instance_id) == 0) {
		what = KEEP;
	} else {
		/* This replica's database, written from an earlier data dir (wiped, the
		 * replica rebuilt under the same id). Its rows may come from another
		 * history (a group bootstrapped anew under the same names has the same
		 * group id), so they are not kept: the log rebuilds them. */
		what = WIPE;
		snprintf(note, notelen,
			 "database \"%s\" was written by an earlier data dir of this replica (instance %s, up to "
			 "index %" PRIu64 "); emptied it, rebuilding it from this data dir's log",
			 row.db, row.instance ? row.instance : "unknown", row.applied);
	}
	PQclear(r);
	if (what == CLAIM && migrate_ok(c, MIG_STATE_CLAIM, params, msg, sizeof(msg)) != 0)
		goto fail;
	if (what == WIPE) {
		if (migrate_tuples(c, MIG_STATE_WIPE, params, &r, msg, sizeof(msg)) != 0)
			goto fail;
		PQclear(r);
		applied = 0;
		wiped = true;
	}
	if (migrate_ok(c, MIG_COMMIT, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	*applied_out = applied;
	*was_reset = wiped;
	return 0;
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	note[0] = '\0';
	store_err(err, errlen, "reading lattice_state failed: %s", msg);
	return -1;
}
