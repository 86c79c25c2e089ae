/* httpc — a small blocking HTTP/1.1 client for the chaos run's workload and
 * observer (docs/chaos.md "The workload"): one request per connection
 * (Connection: close), plain sockets, no dependency.
 *
 * Every call has ONE deadline for the whole exchange (connect, send,
 * receive), so a replica that is partitioned away, stopped (SIGSTOP) or
 * trickling bytes never holds a caller longer than timeout_ms. (A host name,
 * not a literal address, is looked up first with getaddrinfo, which the
 * deadline does not bound: the chaos run uses literals.)
 *
 * An answer (any status, with a complete body: Content-Length, chunked, or up
 * to the close) is told apart from no answer (refused, reset, timeout, a
 * malformed or cut answer): the workload records the first as it came and the
 * second as "info" (the request may or may not have been acted on).
 *
 * Threads: no globals; any number of threads may call httpc_do at once. SIGPIPE
 * is never raised (MSG_NOSIGNAL). */
#ifndef LATTICE_HTTPC_H
#define LATTICE_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTPC_BODY_MAX (16u * 1024 * 1024) /* a longer answer is HTTPC_BAD_ANSWER */
#define HTTPC_HEAD_MAX (64u * 1024)

/* httpc_do's results other than a status (all negative). */
enum httpc_error {
	HTTPC_TIMEOUT = -1,    /* the deadline passed (connecting, sending or waiting) */
	HTTPC_REFUSED = -2,    /* connect failed (refused, unreachable): nothing was sent */
	HTTPC_RESET = -3,      /* the connection broke (reset, closed) before a whole answer */
	HTTPC_BAD_ANSWER = -4, /* not HTTP/1.x, a bad header or chunk, too large */
	HTTPC_BAD_REQUEST = -5 /* bad base_url, method or path; out of memory: nothing was sent */
};

struct httpc_resp {
	int status;          /* 100..599; 0 when there was no answer */
	char *body;          /* owned (httpc_resp_free), NUL-terminated, "" when none; NULL without an answer */
	size_t body_len;
	bool has_index;      /* X-Lattice-Index was there */
	uint64_t index;
	char location[512];  /* "" when absent */
	char retry_after[32];
	char content_type[128];
};

/* Sends METHOD path to base_url ("http://HOST:PORT", HOST an IPv4/IPv6 literal
 * in brackets or a name) with body (NULL: none; otherwise sent as
 * application/json with its Content-Length; a write method without a body
 * sends Content-Length: 0). All strings are borrowed for the call. Fills *r
 * (whose previous contents are not freed: start from a zeroed one or call
 * httpc_resp_free first).
 *
 * Returns the HTTP status (>= 100) when an answer came, or an enum
 * httpc_error with err saying what happened. */
int httpc_do(const char *base_url, const char *method, const char *path, const char *body, int timeout_ms,
	     struct httpc_resp *r, char *err, size_t errlen);

/* httpc_do with extra request headers, for latticectl (Authorization,
 * Idempotency-Key, its own User-Agent). headers: NULL (exactly httpc_do's
 * request), or a NULL-terminated array of "Name: value" lines without CRLF; a
 * line with a control character or no "Name:" is HTTPC_BAD_REQUEST and nothing
 * is sent. A User-Agent among them replaces httpc's own. sent (may be NULL) is
 * set to whether any byte of the request may have reached the server: false
 * after HTTPC_REFUSED, a connect that timed out, or bad input, so sending the
 * request elsewhere cannot apply it twice. */
int httpc_do_ex(const char *base_url, const char *method, const char *path, const char *body,
		const char *const *headers, int timeout_ms, struct httpc_resp *r, bool *sent, char *err,
		size_t errlen);

/* Frees r->body and zeroes r. NULL is fine. */
void httpc_resp_free(struct httpc_resp *r);

/* A short name of an enum httpc_error ("timeout", "refused", "reset",
 * "bad_answer", "bad_request"); NULL for other values. */
const char *httpc_error_name(int rc);

#endif
