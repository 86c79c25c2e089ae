/* migrate — readies this replica's PostgreSQL database when the store opens it
 * (store_open): brings the schema up to date and claims the database for this
 * data dir. Both run on the caller's connection and block. */
#ifndef LATTICE_MIGRATE_H
#define LATTICE_MIGRATE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Applies the migrations in schema_dir (files NNN_name.sql) in order, each once,
 * each in its own transaction under an advisory lock, recording each in
 * schema_migrations. Refuses a directory without migrations or with two of one
 * number, and a database migrated past the newest of them. Returns 0, or -1 with
 * a message in err. */
int migrate_apply(PGconn *c, const char *schema_dir, char *err, size_t errlen);

/* Reads lattice_state (creating its row if needed) and claims the database for
 * instance_id: unclaimed, it is recorded as ours; recorded for another instance
 * id, it is emptied (lattice_wipe) and then ours. Returns 0 with the applied
 * index it holds in *applied (0 after emptying) and whether it was emptied in
 * *was_reset, or -1 with a message in err. */
int migrate_claim(PGconn *c, const char *instance_id, uint64_t *applied, bool *was_reset,
		  char *err, size_t errlen);

#endif
