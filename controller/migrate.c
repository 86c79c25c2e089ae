/* migrate — readies this replica's PostgreSQL database when the store opens it:
 * applies schema/NNN_name.sql in order, each once, recorded in
 * schema_migrations (under an advisory lock, so concurrent latticeds take turns),
 * then claims the database for this data dir's instance id. See migrate.h. */
#include "migrate.h"

#include <dirent.h>
#include <errno.h>
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
	[MIG_STATE_READ] = {NULL, 0, "SELECT applied_index, instance_id FROM lattice_state FOR UPDATE"},
	[MIG_STATE_CLAIM] = {NULL, 1, "UPDATE lattice_state SET instance_id = $1::text, updated_at = now()"},
	[MIG_STATE_WIPE] = {NULL, 1, "SELECT lattice_wipe($1::text)"},
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

int migrate_claim(PGconn *c, const char *instance_id, uint64_t *applied_out, bool *was_reset,
		  char *err, size_t errlen)
{
	char msg[512];
	PGresult *r;
	const char *params[] = {instance_id};
	bool wiped = false;

	if (migrate_ok(c, MIG_BEGIN, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_ok(c, MIG_STATE_ROW, NULL, msg, sizeof(msg)) != 0 ||
	    migrate_tuples(c, MIG_STATE_READ, NULL, &r, msg, sizeof(msg)) != 0)
		goto fail;
	uint64_t applied = store_u64(r, 0, 0);
	bool unclaimed = PQgetisnull(r, 0, 1);
	bool ours = !unclaimed && strcmp(PQgetvalue(r, 0, 1), instance_id) == 0;
	PQclear(r);
	if (unclaimed) {
		if (migrate_ok(c, MIG_STATE_CLAIM, params, msg, sizeof(msg)) != 0)
			goto fail;
	} else if (!ours) {
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
	store_err(err, errlen, "reading lattice_state failed: %s", msg);
	return -1;
}
