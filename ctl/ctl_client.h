/* ctl_client — latticectl's requests to a lattice: one request, tried on the
 * replicas in turn until one gives an answer that counts, and what that answer
 * means as an exit code.
 *
 * Any replica serves reads, and a follower passes writes on to the leader
 * (docs/operations.md "Writes anywhere"), so the servers are tried in the order
 * given, starting with the one that answered last. The next one is tried when
 * a replica cannot be reached (refused, timed out) or answers 503 (no leader,
 * shutting down, database unavailable...). A write goes elsewhere only when
 * that cannot apply it twice: nothing was sent, the 503 says it was refused
 * (no_leader, not_leader, shutting_down, disk_full...), or it is a POST with an
 * Idempotency-Key (latticectl gives every POST one; --idempotency-key sets
 * it). After no_leader/not_leader the replica's GET /v1/cluster names the
 * leader, whose api_url is tried next. A write whose outcome is unknown (no
 * answer after it was sent; 503 unavailable or commit_timeout) stops there:
 * CTL_EXIT_UNKNOWN. */
#ifndef LATTICE_CTL_CLIENT_H
#define LATTICE_CTL_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl_config.h"

/* latticectl's exit codes (docs/latticectl.md, latticectl(1)). */
enum ctl_exit {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAILED = 1,      /* the server refused or failed it (403, 422, 500...); a bad answer */
	CTL_EXIT_USAGE = 2,       /* bad command, flag, argument or file; or 400 (malformed request) */
	CTL_EXIT_NOT_FOUND = 3,   /* 404 */
	CTL_EXIT_CONFLICT = 4,    /* 409: already exists, insufficient resources, conflict */
	CTL_EXIT_UNAVAILABLE = 5, /* no replica reachable, or every one answered 503: nothing was done */
	CTL_EXIT_UNKNOWN = 6,     /* a write sent but not answered, or 503 unavailable/commit_timeout:
				   * it may or may not have been applied */
};

struct ctl_client {
	const struct ctl_config *cfg; /* borrowed */
	char *urls[CTL_SERVERS_MAX + 8]; /* owned: the configured servers, then leaders learned */
	size_t nurls;
	size_t start;            /* where the next request starts: the last that answered */
	const char *idem_key;    /* --idempotency-key, or NULL: one is made per POST */
	bool verbose;            /* requests and answers on stderr */
	long long timeout_ms;    /* per request */
};

struct ctl_resp {
	int status;
	char *body;            /* owned; "" when none */
	size_t body_len;
	json_t *json;          /* owned: the body parsed, or NULL when it is not JSON */
	char code[64];         /* error.code of an error answer, "" otherwise */
	const char *message;   /* error.message (into json), or "" */
	const char *server;    /* the URL that answered (owned by the client) */
	uint64_t index;        /* X-Lattice-Index (0 absent) */
	char location[512];
	char content_type[128];
};

void ctl_client_init(struct ctl_client *c, const struct ctl_config *cfg);
void ctl_client_free(struct ctl_client *c);

/* Sends METHOD path (with its query) and body (NULL: none) as described at
 * the top; extra_wait_ms is added to the timeout (long polls). Returns
 * CTL_EXIT_OK with *r filled when a replica gave an answer that counts (any
 * status: see ctl_exit_for), or CTL_EXIT_UNAVAILABLE / CTL_EXIT_UNKNOWN /
 * CTL_EXIT_USAGE after printing why to stderr (*r then empty). */
int ctl_request(struct ctl_client *c, const char *method, const char *path, const char *body, long long extra_wait_ms,
		struct ctl_resp *r);
void ctl_resp_free(struct ctl_resp *r);

/* One request to url only (health checks each server): CTL_EXIT_OK with *r
 * filled when it answered, else CTL_EXIT_UNAVAILABLE with err saying why. */
int ctl_request_at(struct ctl_client *c, const char *url, const char *method, const char *path, struct ctl_resp *r,
		   char *err, size_t errlen);

/* The exit code an answer means (write: the request was not a GET). */
int ctl_exit_for(int status, const char *code, bool write);
/* Prints "error: <message> (<code>)" for an error answer, or for a body that
 * is not one "error: <server> answered <status>". Returns ctl_exit_for. */
int ctl_fail(const struct ctl_resp *r, bool write);

/* 503 codes after which a write was certainly not applied. */
bool ctl_code_refused(const char *code);

/* A random Idempotency-Key ("ctl-" and 32 hex digits). */
void ctl_new_idem_key(char *out, size_t n);

#endif
