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

/* Who opens a database (strings borrowed). */
struct migrate_owner {
	const char *group_id;    /* the lattice group */
	uint64_t replica_id;     /* this replica's Raft id in it */
	const char *instance_id; /* this replica's data dir */
};

/* Reads lattice_state (creating its row if needed) and claims the database for
 * me. The rules (docs/operations.md, "Whose database"):
 *  - unclaimed: recorded as mine;
 *  - mine: kept (a row from before groups were recorded, of my instance id, gets
 *    my group and replica id);
 *  - my group and replica id, another instance id (an earlier data dir of this
 *    replica, since wiped): emptied (lattice_wipe), to be rebuilt from the log;
 *  - another group or another replica id (or a row from before groups were
 *    recorded, of another instance id): refused with a message saying whose it
 *    is, unless wipe_foreign (--pg-reset), then emptied and mine.
 * Returns 0 with the applied index it holds in *applied (0 after emptying),
 * whether it was emptied in *was_reset and, when anything worth a log line
 * happened, a sentence in note ("" otherwise); or -1 with a message in err (the
 * database untouched). */
int migrate_claim(PGconn *c, const struct migrate_owner *me, bool wipe_foreign, uint64_t *applied,
		  bool *was_reset, char *note, size_t notelen, char *err, size_t errlen);

#endif
