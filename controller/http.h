/* http — the libmicrohttpd daemon: connection contexts, body buffering with a
 * hard size limit, suspend/resume for answers that come from the loop thread,
 * and writing responses. What each route does is api.c's business.
 *
 * It also defends the API against clients that hold connections: a limit per
 * client address and in all, and deadlines by which a request's headers and
 * body must have arrived (libmicrohttpd 0.9.75 only has an idle timeout, which
 * a byte a second keeps alive). A reaper thread closes connections past their
 * deadline. */
#ifndef LATTICE_HTTP_H
#define LATTICE_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_BODY_MAX (1024 * 1024)
/* Limits http.c answers itself, in JSON, before libmicrohttpd's own (which are
 * HTML) can trigger: they sit well inside the per-connection memory. */
#define HTTP_URI_MAX 8192         /* request target (path + query): 414 uri_too_long */
#define HTTP_HEAD_MAX (16 * 1024) /* request line + headers: 431 headers_too_large */
#define HTTP_QUERY_ARGS_MAX 64    /* query parameters: 400 invalid_query */

struct http;
struct http_req;
struct http_conn;

#define HTTP_STREAM_END (-1) /* http_stream.read: the answer is complete */

/* An answer sent as it is produced (server-sent events). read runs on the
 * connection's thread whenever the socket can take more: it copies 1..max
 * bytes into buf and returns how many, or HTTP_STREAM_END, or 0 when it has
 * nothing yet. After a 0 http.c parks (suspends) the connection until
 * http_resume(req) is called: before returning 0, read must record that the
 * stream is parked, so whoever adds data later knows to resume it (a resume
 * that comes before the park cancels it, and read is simply called again).
 * done runs exactly once, after the last read, when the answer is over or the
 * connection closed for any reason; req is gone by then. */
struct http_stream {
	ssize_t (*read)(void *cls, char *buf, size_t max);
	void (*done)(void *cls);
	void *cls;
	/* The socket's send buffer (SO_SNDBUF), 0: the system's. Linux grows an
	 * unset one to megabytes for a client that does not read: kernel memory
	 * a slow client should not get. */
	int sndbuf;
};

/* A response; body is owned by it (NULL: no body). */
struct http_resp {
	int status;
	json_t *body;       /* JSON body, or */
	char *text;         /* plain text body (malloc'd, NUL-terminated), e.g. /metrics */
	const char *content_type;
	char location[300]; /* Location header, "" none */
	char allow[64];     /* Allow header for 405, "" none */
	char retry_after[16]; /* Retry-After header (seconds), "" none */
	uint64_t index;     /* X-Lattice-Index */
	struct http_stream stream; /* stream.read set: a streamed answer (no body/text) */
	const char *cache_control; /* Cache-Control header, NULL none */
	size_t text_len;           /* text's length when it may hold NULs; 0: strlen */
	const char *headers[8];    /* more headers: name, value, ... (static strings), NULL ends */
};

enum http_next { HTTP_RESPOND = 0, HTTP_SUSPEND = 1 };

/* Called once the whole body has arrived (and again after each resume). Fill
 * resp and return HTTP_RESPOND, or return HTTP_SUSPEND after arranging for
 * http_resume(req) to be called. */
typedef enum http_next (*http_handler_fn)(void *arg, struct http_req *req, struct http_resp *resp);

struct http_req {
	struct MHD_Connection *conn;
	const char *method;
	const char *url;  /* decoded by libmicrohttpd ("%2F" is already '/'); for messages */
	char *path;       /* the path as sent, still percent-encoded, without the query:
			   * route on this, so an encoded '/' stays inside its segment.
			   * Owned by req; NULL when the request was refused early. */
	char *body; /* NUL-terminated copy of the body */
	size_t body_len;
	bool too_large;
	bool responded;
	struct http *http;
	void *state; /* the handler's own per-request state (freed by state_free) */
	void (*state_free)(void *state);
	int64_t started_us; /* monotonic clock, when the request's headers arrived */
	/* http.c's own */
	bool started;          /* the handler saw the headers */
	bool received;         /* the whole request has arrived */
	int refuse;            /* set by the request-line check: answered at once */
	struct http_conn *hc;  /* the connection's deadline record (may be NULL) */
};

struct http_config {
	const char *host; /* IPv4 address to bind */
	int port;         /* 0: any free port */
	unsigned threads;
	http_handler_fn handler;
	void *arg;
	/* The X-Lattice-Index of answers http.c gives itself (413). May be NULL. */
	uint64_t (*index)(void *arg);
	/* Called after each response: method, url, status, seconds. May be NULL. */
	void (*observe)(void *arg, const struct http_req *req, int status, double seconds);
	/* Connection limits (see docs/operations.md, "Connection limits"). */
	unsigned connection_limit;   /* connections in all, split among the threads */
	unsigned per_address_limit;  /* connections from one client address; 0: none */
	unsigned idle_timeout_s;     /* close a connection idle this long */
	unsigned header_timeout_ms;  /* request line + headers must arrive within this
				      * from the connection's start or its previous
				      * answer; 0: no deadline */
	unsigned body_timeout_ms;    /* the body must arrive within this after the
				      * headers; 0: no deadline */
	size_t connection_memory;    /* libmicrohttpd's memory pool per connection */
};

/* Starts the daemon. Returns 0 and *out, or -1 with a message in err. */
int http_start(struct http **out, const struct http_config *cfg, char *err, size_t errlen);
/* Port actually bound. */
int http_port(const struct http *h);
/* Stop accepting new connections (in-flight requests finish). */
void http_quiesce(struct http *h);
/* Stops the threads and frees h. No request may be suspended. */
void http_stop(struct http *h);

/* Handler thread: suspend the request before handing work to another thread
 * (which then calls http_resume), and return HTTP_SUSPEND. */
void http_suspend(struct http_req *req);
/* Any thread: continue a suspended request (its handler is called again). */
void http_resume(struct http_req *req);
/* The request's socket (-1 unknown): for a streamed answer to look whether
 * its client is still there while the connection is parked (http_stream). */
int http_fd(struct http_req *req);
/* The value of a hex digit, or -1 (percent-decoding, here and in api.c). */
int http_hexval(char c);
/* A query-string argument, or NULL. */
const char *http_query(struct http_req *req, const char *key);
/* A request header, or NULL. */
const char *http_header(struct http_req *req, const char *key);

/* Fills resp with the standard error shape {"error":{"code","message"}}. */
__attribute__((format(printf, 4, 5))) void http_error(struct http_resp *resp, int status, const char *code,
						      const char *fmt, ...);

#endif
