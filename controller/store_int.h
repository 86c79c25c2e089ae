/* store_int — what the store's own files (store.c, store_read.c) share: the
 * store's state. Private to the store: nothing else includes it. */
#ifndef LATTICE_STORE_INT_H
#define LATTICE_STORE_INT_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "store_coalesce.h"
#include "store_spool.h"

struct store_txn;    /* store.c */
struct wr_query;     /* store.c */
struct store_reader; /* store_read.c */

struct store {
	char *conninfo;
	char read_options[64]; /* libpq "options" of reader connections ("": none) */
	char *group_id, *instance_id; /* whose the database is: this replica */
	uint64_t replica_id;
	uint64_t open_applied;
	bool was_reset;
	char claim_note[1536];

	pthread_mutex_t mu; /* guards the queue, the spool's appends and the stop request */
	pthread_cond_t cv;  /* work queued or stop requested */
	struct proj_batch *qhead, *qtail;
	/* The bound and the spool (store.h). sp.end and spooling are guarded by mu;
	 * sp.rd and reading belong to the writer thread (it removes the file under
	 * mu once sp.rd reaches sp.end). While spooling, every batch goes to the
	 * spool, after those already there. */
	size_t queue_max;
	store_room_fn room;
	void *room_arg;
	struct spool sp;
	bool spooling;
	atomic_size_t mem_bytes;         /* held in memory: queued, in flight, retained */
	atomic_uint_fast64_t spool_bytes, n_spooled;
	atomic_bool halted;              /* takes no more batches (store.h); set under mu */
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
	/* Bumped whenever the writer finds the server gone or back: reader
	 * connections opened in an older epoch are reset before their next use
	 * instead of failing one read each after a PostgreSQL restart. */
	atomic_uint_fast64_t epoch;

	/* Writer thread only (and store_open before the thread exists). */
	PGconn *wc;                       /* NULL while disconnected */
	uint64_t db_applied;              /* applied_index as last committed or read */
	struct proj_batch *fl_head, *fl_tail; /* in flight: taken, not yet committed */
	size_t fl_n, fl_changes;
	struct store_txn *rt_head, *rt_tail; /* retained */
	struct wr_co co;                  /* the transaction being built */
	struct jw buf[PS_RESET];          /* one call's parameters, one per step */
	struct wr_query *qs;              /* the round's lattice_project() calls */
	size_t nqs, capqs;
	bool down;                        /* connection lost, not yet back */
	bool sql_failing;                 /* last transaction hit an SQL error */
	bool lost;                        /* PostgreSQL lost entries we no longer hold */
	bool lock_refused;                /* reconnected, but another session holds the lock */
	bool disowned;                    /* the database was taken over: never write again */
	int backoff_ms;
	int64_t retry_at, ping_at;

	pthread_key_t reader_key;
	pthread_mutex_t rmu; /* guards readers */
	struct store_reader *readers;
};

/* ---- store_read.c ---------------------------------------------------------- */

/* The destructor of s->reader_key: closes an exiting thread's reader connection. */
void store_reader_free(void *p);
/* Closes the reader connections of threads still alive (store_close). */
void store_readers_close(struct store *s);

#endif
