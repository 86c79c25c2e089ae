/* store_pg — the PostgreSQL plumbing the store's files share: connecting,
 * running one statement and waiting for it, and PostgreSQL's messages as one
 * line. See store_pg.h. */
#include "store_pg.h"

#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORE_CONNECT_TIMEOUT "5" /* s; a default the conninfo may override */

void store_err(char *err, size_t errlen, const char *fmt, ...)
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

void store_log(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char tmp[1024];
	store_err(tmp, sizeof(tmp), "%s", line);
	log_warn("store: %s", tmp);
}

/* NOTICEs ("already exists, skipping") are noise here; WARNINGs are worth a line. */
static void store_notice(void *arg, const PGresult *r)
{
	(void)arg;
	const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
	if (sev && strcmp(sev, "WARNING") == 0)
		store_log("PostgreSQL: %s", PQresultErrorMessage(r));
}

PGconn *store_connect(const char *conninfo, const char *appname, const char *options)
{
	/* conninfo comes after ours: what it says wins. */
	const char *const keys[] = {"connect_timeout", "fallback_application_name", "options", "dbname", NULL};
	const char *const vals[] = {STORE_CONNECT_TIMEOUT, appname, options ? options : "", conninfo, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (c)
		PQsetNoticeReceiver(c, store_notice, NULL);
	return c;
}

PGresult *store_exec(PGconn *c, const struct store_stmt *st, const char *const *params,
		     ExecStatusType want, char *err, size_t errlen)
{
	PGresult *r = PQexecParams(c, st->sql, st->nparams, NULL, params, NULL, NULL, 0);
	if (r && PQresultStatus(r) == want)
		return r;
	store_err(err, errlen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(c));
	PQclear(r);
	return NULL;
}

int store_exec_ok(PGconn *c, const struct store_stmt *st, const char *const *params, char *err,
		  size_t errlen)
{
	PGresult *r = store_exec(c, st, params, PGRES_COMMAND_OK, err, errlen);
	PQclear(r);
	return r ? 0 : -1;
}

int store_exec_tuples(PGconn *c, const struct store_stmt *st, const char *const *params,
		      PGresult **out, char *err, size_t errlen)
{
	*out = store_exec(c, st, params, PGRES_TUPLES_OK, err, errlen);
	return *out ? 0 : -1;
}

uint64_t store_u64(const PGresult *r, int row, int col)
{
	if (PQntuples(r) <= row || PQgetisnull(r, row, col))
		return 0;
	return strtoull(PQgetvalue(r, row, col), NULL, 10);
}
