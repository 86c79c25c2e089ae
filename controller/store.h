/* store — this replica's PostgreSQL database: migrations, the projection writer
 * thread, and connections for readers.
 *
 * The writer thread executes proj_batches in log order, many per transaction
 * (one call of the server function lattice_project(), schema/002_project_fn.sql),
 * and records the highest index in the same transaction, so after
 * any crash the database holds exactly a prefix of the log: entries at or below
 * store_applied_index() are never written twice. While PostgreSQL is unreachable
 * the writer keeps its queue, retries with backoff and reports unhealthy.
 *
 * The queue is bounded: the batches the writer holds in memory (queued, in
 * flight, and committed but not yet flushed by PostgreSQL) stay under
 * store_config.queue_max bytes; beyond it batches go to the spool, a file in the
 * data dir (store_spool.h), and every later one follows them there until the
 * writer has read the spool back, in order, and removed it. The spool is never
 * needed after a restart (raft replays the entries above the database's applied
 * index), so store_open removes any it finds. When the spool cannot grow (the
 * disk guard refuses, or a write fails) or a record cannot be read back, the
 * store halts: it writes what it holds up to that point, takes no more batches
 * and reports unhealthy — nothing is skipped; a restart replays the rest.
 *
 * The writer's session holds the database's projection lock (a session-level
 * advisory lock) from store_open on, and takes it again after every reconnect
 * before writing: two stores never project into one database. */
#ifndef LATTICE_STORE_H
#define LATTICE_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct proj_batch;

/* Called on the writer thread after each committed transaction with the highest
 * index now visible in PostgreSQL. */
typedef void (*store_projected_fn)(void *arg, uint64_t index);

/* May the spool grow by len bytes? Called on the thread that submits batches,
 * under the store's lock; true to go ahead, false with a sentence in why. */
typedef bool (*store_room_fn)(void *arg, size_t len, char *why, size_t whylen);

/* What store_open needs; every string is borrowed for the call (copied). */
struct store_config {
	const char *conninfo;   /* libpq conninfo of this replica's database */
	const char *schema_dir; /* the migrations, NNN_name.sql */
	/* Who projects: the lattice group, this replica's id in it, and its data
	 * dir's instance id (loop_prepare_dir). */
	const char *group_id;
	uint64_t replica_id;
	const char *instance_id;
	/* --pg-reset: a database recorded for another group or replica id may be
	 * wiped and taken over (otherwise store_open refuses it). */
	bool wipe_foreign;
	/* The spool's file (DATA_DIR/projection.spool); NULL: no spool, the queue
	 * is unbounded. */
	const char *spool_path;
	size_t queue_max; /* bytes of batches held in memory before spooling; 0: no bound */
	store_room_fn room; /* NULL: the spool grows while writes succeed */
	void *room_arg;
	/* Readers' statements (store_conn) are cancelled after this long, so a
	 * lock or a runaway query cannot hold a reader forever; 0: no limit. A
	 * statement_timeout in conninfo's options overrides it. */
	unsigned read_timeout_ms;
};

/* Connects, takes the projection lock (refused, with a message naming the
 * holder, while another session holds it), applies schema migrations from
 * cfg->schema_dir (files NNN_name.sql, in order, each once, recorded in
 * schema_migrations), and claims the database
 * for this replica (migrate.h, migrate_claim: a database of another group or
 * replica id is refused unless cfg->wipe_foreign; one written from an earlier
 * data dir of this replica is emptied to be rebuilt from the log). Returns 0 and
 * a new store in *out, or -1 with a message in err. */
int store_open(struct store **out, const struct store_config *cfg, char *err, size_t errlen);
/* Highest log index the database held at open (0 for a new one). */
uint64_t store_applied_index(const struct store *s);
/* true when store_open emptied the database (the model is then projected from
 * scratch); store_claim_note then says why, for the caller to log ("" when
 * nothing worth a line happened). */
bool store_was_reset(const struct store *s);
const char *store_claim_note(const struct store *s);
/* Starts the writer thread. cb may be NULL. Returns 0 or -1. */
int store_start(struct store *s, store_projected_fn cb, void *arg);
/* Queues a batch (ownership transferred): in memory, or in the spool (see the
 * top). Any thread; batches must arrive in log order. Batches with index <= the
 * recorded applied index are dropped, and so is every batch once the store has
 * halted. */
void store_submit(struct store *s, struct proj_batch *b);
/* Queues a chain of batches linked through ->next, in log order, at once (so
 * the writer sees them together and puts them in one transaction). */
void store_submit_chain(struct store *s, struct proj_batch *chain);
/* Highest index committed to PostgreSQL so far (any thread). */
uint64_t store_projected(const struct store *s);
/* Number of batches waiting to be written, in memory or spooled (any thread). */
size_t store_backlog(const struct store *s);
/* false while the writer cannot reach PostgreSQL (any thread). */
bool store_healthy(const struct store *s);
/* Counters and sizes for /metrics (any thread). */
struct store_stats {
	uint64_t transactions, batches, changes, errors, reconnects;
	uint64_t queue_bytes; /* batches held in memory: queued, in flight, awaiting WAL flush */
	uint64_t spool_bytes; /* size of the spool file (0: none) */
	uint64_t spooled;     /* batches written to the spool so far */
};
void store_stats(const struct store *s, struct store_stats *out);
/* Writes everything queued or spooled (waiting up to timeout_ms for
 * PostgreSQL), then stops the writer thread. Returns 0 when all of it was
 * written (and the store had not halted), -1 otherwise. */
int store_stop(struct store *s, int timeout_ms);
/* Frees the store (after store_stop). */
void store_close(struct store *s);

/* A connection for the calling thread, opened on first use and kept until the
 * thread exits (one per libmicrohttpd thread). NULL when PostgreSQL is down; the
 * next call retries. Borrowed. */
PGconn *store_conn(struct store *s);

#endif
