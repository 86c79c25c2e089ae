/* sse — GET /v1/events as server-sent events (docs/api.md "Live events").
 *
 * One pump thread reads new events from this replica's PostgreSQL once for
 * every stream that is at the same place (a stream resuming from further back
 * gets reads of its own until it has caught up) and appends them, formatted,
 * to each stream's buffer; libmicrohttpd's threads send from the buffers. A
 * buffer never passes its bound: when the next event does not fit, the stream
 * waits until its client has taken half (then reads on from where it stopped:
 * a client catching up, or taking a burst, is never dropped); a client that
 * takes nothing for the keep-alive interval gets a final "overflow" event and
 * the stream ends. A slow client costs at most the bound, never the server's
 * memory. Every stream gets a keep-alive comment when
 * it has been quiet for a while, so proxies keep it open and a gone client is
 * noticed. The number of streams is bounded.
 *
 * Threads: sse_open on the HTTP threads; sse_notify on any thread (the store's
 * writer calls it after each projection transaction); sse_stop and sse_free on
 * the main thread. */
#ifndef LATTICE_SSE_H
#define LATTICE_SSE_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

struct sse;
struct store;

#define SSE_BUFFER_MAX_DEFAULT (256u * 1024) /* bytes one stream may hold unsent */
#define SSE_KEEPALIVE_MS_DEFAULT 15000
#define SSE_RETRY_MS 2000 /* the reconnect delay we suggest to EventSource clients */

struct sse_config {
	unsigned max_streams; /* open streams at once; more are refused (503) */
	size_t buffer_max;    /* 0: SSE_BUFFER_MAX_DEFAULT */
	int keepalive_ms;     /* 0: SSE_KEEPALIVE_MS_DEFAULT */
};

struct sse_stats {
	uint64_t streams;      /* open now */
	uint64_t opened;       /* since start */
	uint64_t refused;      /* refused: at the limit */
	uint64_t overflowed;   /* closed because the client fell behind */
	uint64_t events_sent;  /* events put into a stream's buffer */
	uint64_t reads;        /* reads of new events from PostgreSQL, for all streams */
};

/* Starts the pump thread. projected is the index the database already holds
 * (sse_notify moves it on). Returns 0, or -1 with err. *out is owned by the
 * caller: sse_stop, then (once no HTTP thread can call in) sse_free. */
int sse_start(struct sse **out, struct store *store, uint64_t projected, const struct sse_config *cfg, char *err,
	      size_t errlen);

/* The database now holds every entry up to index: new events may be there. */
void sse_notify(struct sse *h, uint64_t index);

/* HTTP thread: opens a stream that sends the events after seq after (from_oldest:
 * the oldest held after it, whatever its number, for a stream that starts at the
 * newest event; otherwise a gap is reported as "compacted"), and fills resp with
 * the 200 streamed answer. Returns 0, or -1 with resp filled with a 503 (at the
 * limit, or stopping). */
int sse_open(struct sse *h, struct http_req *req, uint64_t after, int from_oldest, struct http_resp *resp);

/* Ends every stream (their buffered events are still sent), refuses new ones
 * and stops the pump. Call before http_stop: libmicrohttpd must not be stopped
 * with a parked connection. */
void sse_stop(struct sse *h);
/* After http_stop (no stream is left) and after the store's writer thread has
 * ended (it calls sse_notify). NULL is fine. */
void sse_free(struct sse *h);

void sse_get_stats(struct sse *h, struct sse_stats *out);

#endif
