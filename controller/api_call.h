/* api_call — what the REST API's handler files share (api.c: routing, reads,
 * local answers; api_write.c: writes): the route table's row, the
 * per-request state and the helpers that turn ops into answers. Not for use
 * outside api*.c. */
#ifndef LATTICE_API_CALL_H
#define LATTICE_API_CALL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "ops.h"
#include "query.h"
#include "spec.h"
#include "workq.h"

#define API_FORWARDED_HEADER "X-Lattice-Forwarded" /* sent by a replica passing a request on */
#define API_IDEM_HEADER "Idempotency-Key"
#define API_IDEM_KEY_MAX 255
#define API_LIMIT_DEFAULT 100
#define API_LIMIT_MAX 1000

struct api_call;
/* A PostgreSQL read: runs on a read thread (api_pg_defer) and leaves its
 * answer in the call (pg_resp, or the events' fields). */
typedef void (*api_pg_fn)(struct api *a, struct api_call *call);
typedef enum http_next (*route_fn)(struct api *a, struct http_req *req, struct api_call *call,
				   struct http_resp *resp);

struct route {
	const char *method;
	const char *pattern; /* segments; "{id}" matches one id */
	route_fn fn;
	int arg;              /* op kind or query object */
	const char *params;   /* accepted query parameters, comma-separated */
};

/* Per-request state, kept across suspend/resume. */
struct api_call {
	const struct route *route;
	char id[SPEC_ID_MAX + 1]; /* the {id} of the URL */
	struct op op;
	bool submitted;
	atomic_bool done;
	struct http_req *req;
	bool long_polled; /* /v1/events: already waited for new events */

	/* A PostgreSQL read handed to the read threads (api_pg_defer): the
	 * request stays suspended until pg has run; the handler is then entered
	 * again with pg_done set. Nothing here is touched by both sides at once. */
	struct workq_job job;
	struct api *api;
	api_pg_fn pg;
	bool pg_done;
	struct http_resp pg_resp; /* the answer pg built; moved into resp */
	struct query_filter f;    /* lists: its strings point into the request's */
	char label_key[128];
	/* What pg found, for handlers that go on with it (query_rc, its JSON,
	 * the message) */
	int pg_rc;
	json_t *pg_json;
	char pg_err[256];
	/* GET /v1/events: what was asked (parsed on the HTTP thread) and found */
	uint64_t ev_since, ev_limit, ev_wait, ev_last, ev_first, ev_idx;
	bool ev_stream, ev_head; /* ev_head: no since given (start at the oldest, or newest for a stream) */
};

/* What this replica's PostgreSQL shows (rowless entries counted): the index
 * a read at least reflects. */
uint64_t api_projected(struct api *a);
/* status and body (taken) with the projected index. */
void api_resp_json(struct api *a, struct http_resp *resp, int status, json_t *body);
/* The leader's answer to a request this replica sent on, as it came. */
enum http_next api_relay(struct http_resp *resp, struct op *op);
/* An op's error as the answer. */
void api_op_error(struct http_resp *resp, const struct op *op);
/* A body's validation error as the answer (400; 503 when out of memory). */
void api_err_spec(struct http_resp *resp, const struct spec_err *e);
/* Hands the op to the loop and suspends the request until it is done. */
enum http_next api_submit(struct api *a, struct http_req *req, struct api_call *call, int64_t timeout_ms);
/* The answer of an op that computed a JSON result on the loop. */
enum http_next api_answer_result(struct api *a, struct api_call *call, struct http_resp *resp);
/* Runs pg on a read thread with the request suspended, then enters the route's
 * handler again (call->pg_done). */
enum http_next api_pg_defer(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp,
			    api_pg_fn pg);
/* A decimal without sign, at most max. Returns 0 or -1. */
int api_parse_u64(const char *s, uint64_t max, uint64_t *out);

/* api_write.c: POST/PATCH/PUT/DELETE of objects; cluster membership, transfer
 * and the read index. */
enum http_next api_write(struct api *a, struct http_req *req, struct api_call *call, struct http_resp *resp);
enum http_next api_cluster_write(struct api *a, struct http_req *req, struct api_call *call,
				 struct http_resp *resp);

#endif
