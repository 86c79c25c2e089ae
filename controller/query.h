/* query — read queries for the REST API, against this replica's PostgreSQL
 * projection (schema/ api_* views). Each result is already in the API's JSON shape
 * (see api/openapi.yaml); timestamps are RFC 3339 UTC with milliseconds.
 *
 * Any thread, with that thread's connection (store_conn). Functions return a
 * query_rc; out-parameters are written only on QUERY_OK and then owned by the
 * caller; err gets a one-line message otherwise. */
#ifndef LATTICE_QUERY_H
#define LATTICE_QUERY_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum query_rc {
	QUERY_OK = 0,
	QUERY_NOT_FOUND,
	QUERY_UNAVAILABLE, /* no connection, or it broke: answer 503, try again */
	QUERY_ERROR,       /* anything else (a bug, a schema mismatch): answer 500 */
	QUERY_GONE,        /* what was asked for is no longer held here (events_compacted) */
	QUERY_TIMEOUT,     /* PostgreSQL cancelled it (statement_timeout, a lock held too long): 503 */
};

enum query_obj { QUERY_NODES, QUERY_ACTORS, QUERY_PROVIDERS, QUERY_LINKS, QUERY_POLICIES, QUERY_COMMANDS,
		 QUERY_FAILOVERS };

#define QUERY_LIMIT_DEFAULT 100
#define QUERY_LIMIT_MAX 1000

/* List filters; NULL (or 0) = not filtered. Borrowed. Fields that do not apply to
 * the object listed are ignored. */
struct query_filter {
	const char *after; /* keyset cursor: ids strictly after this one */
	int64_t limit;     /* 1..QUERY_LIMIT_MAX; <= 0 means QUERY_LIMIT_DEFAULT, more is capped */
	/* nodes */
	const char *region, *status;
	const char *label_key, *label_value; /* label=k=v; key alone: has the label */
	/* actors: placed on this node */
	const char *node_id;
	/* links */
	const char *actor_id, *provider_id;
	const char *contract_id; /* links and providers */
};

/* One object by id (a policy: its current version). c may be NULL (->
 * QUERY_UNAVAILABLE). */
int query_get(PGconn *c, enum query_obj o, const char *id, json_t **out, char *err, size_t errlen);

/* A page of objects in id order (policies: current versions). *items is an array;
 * *next is the cursor for the following page (malloc'd, caller frees), NULL on
 * the last page. */
int query_list(PGconn *c, enum query_obj o, const struct query_filter *f, json_t **items,
	       char **next, char *err, size_t errlen);

/* Every version of one policy, oldest first; QUERY_NOT_FOUND when it has none. */
int query_policy_versions(PGconn *c, const char *policy_id, json_t **items, char *err,
			  size_t errlen);

/* Events numbered above since, in order, at most limit (same rules as
 * query_filter.limit). *last_seq is the seq of the last one returned, or since when
 * there are none (the cursor for the next call).
 *
 * Never a silent gap: seq numbers every event without gaps (the model), but a
 * database rebuilt from a Raft snapshot lacks the events folded into it. When
 * the first event held above since is not since + 1, the answer is QUERY_GONE
 * with that event's seq in *first_seq — unless from_oldest (since not given:
 * start from the oldest held, whatever it is). A page stops before a gap, so the
 * next call, from its last seq, gets QUERY_GONE. */
int query_events(PGconn *c, uint64_t since, bool from_oldest, int64_t limit, json_t **items, uint64_t *last_seq,
		 uint64_t *first_seq, char *err, size_t errlen);

/* Counts for dashboards (GET /v1/summary, api/openapi.yaml Summary): nodes by
 * status and by region with their capacity and use, actors and instances,
 * commands and failovers by status. */
int query_summary(PGconn *c, json_t **out, char *err, size_t errlen);

/* The seq of the newest event this database holds; 0 when it holds none. */
int query_events_head(PGconn *c, uint64_t *out, char *err, size_t errlen);

/* The highest log index this database holds (lattice_state.applied_index). */
int query_applied_index(PGconn *c, uint64_t *out, char *err, size_t errlen);

#endif
