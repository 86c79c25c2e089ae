/* store_read — the readers' PostgreSQL connections: one per calling thread
 * (store_conn), opened on first use, reset when the server went away, closed when
 * its thread exits or the store closes. */
#include "store.h"

#include <pthread.h>
#include <stdlib.h>

#include "store_int.h"
#include "store_pg.h"

/* The calling thread's reader connection (value of s->reader_key). */
struct store_reader {
	struct store *s;
	PGconn *c;
	uint64_t epoch; /* s->epoch when c was (re)connected */
	struct store_reader *prev, *next;
};

void store_reader_free(void *p)
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

void store_readers_close(struct store *s)
{
	/* Threads that exited already freed theirs. */
	pthread_setspecific(s->reader_key, NULL);
	pthread_key_delete(s->reader_key);
	while (s->readers) {
		struct store_reader *r = s->readers;
		s->readers = r->next;
		PQfinish(r->c);
		free(r);
	}
}

PGconn *store_conn(struct store *s)
{
	struct store_reader *r = pthread_getspecific(s->reader_key);
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return NULL;
		r->s = s;
		r->epoch = atomic_load(&s->epoch);
		r->c = store_connect(s->conninfo, "lattice-reader", s->read_options[0] ? s->read_options : NULL);
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
	} else {
		uint64_t epoch = atomic_load(&s->epoch);
		/* The server restarted (the writer saw it go or come back), or was
		 * never up: a connection from before would fail its next query. */
		if (PQstatus(r->c) != CONNECTION_OK || r->epoch != epoch) {
			PQreset(r->c);
			if (PQstatus(r->c) == CONNECTION_OK)
				r->epoch = epoch;
		}
	}
	if (PQstatus(r->c) != CONNECTION_OK)
		return NULL;
	/* A caller that left a transaction open must not hand it to the next request. */
	if (PQtransactionStatus(r->c) != PQTRANS_IDLE)
		PQclear(PQexec(r->c, "ROLLBACK"));
	return r->c;
}
