/* store_pg — the PostgreSQL plumbing the store's files share (store.c,
 * store_read.c, migrate.c): connecting, running one statement and waiting for it,
 * and PostgreSQL's messages as one line. Private to the store. */
#ifndef LATTICE_STORE_PG_H
#define LATTICE_STORE_PG_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

/* One statement of the store. */
struct store_stmt {
	const char *name; /* prepared statement name (writer) */
	int nparams;
	const char *sql;
};

/* Formats into err, folding PostgreSQL's multi-line messages onto one line. */
__attribute__((format(printf, 3, 4))) void store_err(char *err, size_t errlen, const char *fmt, ...);
/* One line on stderr: the operator's view of a writer that is stuck or recovering. */
__attribute__((format(printf, 1, 2))) void store_log(const char *fmt, ...);
/* Connects (blocking), with a connect timeout, an application_name and libpq
 * options (NULL: none) that the conninfo may override. Never NULL unless out
 * of memory; check PQstatus. */
PGconn *store_connect(const char *conninfo, const char *appname, const char *options);
/* Runs one statement, unprepared (blocking); returns the result when its status
 * is want, else NULL with a message in err. */
PGresult *store_exec(PGconn *c, const struct store_stmt *st, const char *const *params,
		     ExecStatusType want, char *err, size_t errlen);
/* store_exec of a statement that returns no rows: 0, or -1 with err. */
int store_exec_ok(PGconn *c, const struct store_stmt *st, const char *const *params, char *err,
		  size_t errlen);
/* store_exec of a statement that returns rows, which go to *out: 0, or -1 with err. */
int store_exec_tuples(PGconn *c, const struct store_stmt *st, const char *const *params,
		      PGresult **out, char *err, size_t errlen);
/* The value at (row, col) as an unsigned integer; 0 when absent or NULL. */
uint64_t store_u64(const PGresult *r, int row, int col);

#endif
