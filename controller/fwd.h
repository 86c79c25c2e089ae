/* fwd — a small HTTP/1.1 client on the loop thread's libuv loop, for talking to
 * other replicas' REST APIs: writes and consistent-read index requests sent on
 * to the leader, a new replica asking to join, the leader polling its members.
 *
 * Only what latticed itself answers is understood: responses with
 * Content-Length (no chunked bodies), at most FWD_BODY_MAX bytes. Connections
 * are kept alive and reused per host:port. Hosts are IPv4 literals or
 * "localhost" (the same rule as Raft addresses: no resolver on the loop).
 *
 * Threads: loop thread only. Lifecycle: fwd_init → fwd_send... → fwd_close
 * (fails what is in flight, closes the connections; the loop must run on until
 * their handles are closed). */
#ifndef LATTICE_FWD_H
#define LATTICE_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define FWD_BODY_MAX (4u * 1024 * 1024)
#define FWD_HEAD_MAX (16u * 1024)

struct fwd_conn;

enum fwd_outcome {
	FWD_OK = 0,        /* a response arrived (any status) */
	FWD_NOT_SENT,      /* nothing reached the server (bad URL, connect failed):
			    * safe to send again */
	FWD_NO_ANSWER,     /* sent, but no complete answer (reset, timeout, garbage):
			    * the server may or may not have acted on it */
};

struct fwd_req {
	/* Input, borrowed until cb. */
	const char *method;
	const char *target;       /* "/path?query", as the client sent it */
	const char *body;         /* NULL: none */
	size_t body_len;
	const char *content_type; /* NULL: none */
	const char *extra_headers; /* NULL, or complete "Name: value\r\n" lines */
	int64_t timeout_ms;       /* whole exchange */
	void (*cb)(struct fwd_req *r); /* called once, on the loop thread, never from fwd_send */
	void *data;

	/* Output, valid in cb. */
	enum fwd_outcome outcome;
	char err[200]; /* why, when outcome != FWD_OK */
	int status;
	uint64_t index;         /* X-Lattice-Index, 0 when absent */
	char location[300];     /* Location, "" none */
	char retry_after[16];   /* Retry-After, "" none */
	char content_type_out[80];
	char *body_out;         /* malloc'd, NUL-terminated (may be ""); the cb may take it (set to NULL) */
	size_t body_out_len;

	/* fwd's own */
	struct fwd *fwd;
	char hostport[64];
	struct fwd_conn *conn;
	uv_timer_t *timer;
	struct fwd_req *next;
};

struct fwd {
	uv_loop_t *loop;          /* borrowed */
	struct fwd_conn *conns;   /* every open connection */
	struct fwd_req *pending;  /* waiting for a connection to their host, in order */
	struct fwd_req *early;    /* failed before any I/O: their cbs run from `kick` */
	uv_idle_t kick;
	bool closing;
	unsigned max_per_host;    /* connections per host:port */
	uint64_t sent, failed;
};

/* Returns 0 or a libuv error code. */
int fwd_init(struct fwd *f, uv_loop_t *loop);
/* Sends r to base_url ("http://HOST:PORT", borrowed). r->cb is called exactly
 * once, later, on the loop thread. */
void fwd_send(struct fwd *f, const char *base_url, struct fwd_req *r);
/* Frees what a finished request still holds (its response body). */
void fwd_req_release(struct fwd_req *r);
/* Fails every request in flight (their cbs run with FWD_NO_ANSWER or
 * FWD_NOT_SENT) and closes every connection. */
void fwd_close(struct fwd *f);
/* Splits "http://HOST:PORT[/...]" into "a.b.c.d:port" (localhost → 127.0.0.1).
 * Returns 0 or -1. */
int fwd_hostport(const char *url, char *out, size_t outlen);

#endif
