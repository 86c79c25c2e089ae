/* render — model objects in the API's JSON shape, for answering writes without
 * reading the object back from PostgreSQL. The shape is exactly that of the
 * api_* views in schema/ (tests/integration/api.sh compares the two); change
 * both together. Loop thread only (reads the model). Results are new
 * references (or text) owned by the caller; NULL when out of memory. */
#ifndef LATTICE_RENDER_H
#define LATTICE_RENDER_H

#include <jansson.h>
#include <raft.h>
#include <stdint.h>

#include "model.h"

struct jw;

json_t *render_node(const struct model_node *n);
/* The actor as JSON text (malloc'd; the write path's answer, so no tree). */
char *render_actor_text(const struct model_actor *a);
/* Its placements as the API and the placements rows show them:
 * [{"instance","node_id","state","state_version"}...] in instance order. */
void render_placements(struct jw *w, const struct model_actor *a);
json_t *render_provider(const struct model_provider *p);
json_t *render_link(const struct model_link *l);
json_t *render_policy(const struct model_policy *p);
/* GET /v1/cluster's answer, from raft's values as the loop read them. */
struct render_cluster {
	raft_id leader_id;          /* 0: none known */
	const char *leader_address; /* borrowed; with leader_id */
	raft_id self_id;
	int state;           /* raft_state() */
	const char *api_url; /* this replica's REST base URL (borrowed) */
	uint64_t term, commit_index, applied_index, projected_index;
	const struct raft_configuration *conf; /* borrowed */
	/* What is known of each member beyond raft's configuration (borrowed; may
	 * be NULL): matched by id. */
	const struct render_member *members;
	size_t nmembers;
	int self_pg_ok; /* -1 unknown, 0 this replica cannot reach its PostgreSQL, 1 it can */
};

struct render_member {
	raft_id id;
	const char *api_url; /* NULL: not recorded yet */
	int reachable;       /* -1 unknown (not the leader's view), 0, 1 */
	bool indices;        /* applied/projected known */
	uint64_t applied_index, projected_index;
};
/* As JSON text (malloc'd). Raft's ids, terms and indexes are unsigned 64-bit
 * and printed exactly: jansson holds only int64, where 2^64-1 reads -1. */
char *render_cluster(const struct render_cluster *c);
/* "2026-11-22T01:02:03.456Z" (UTC, milliseconds) into buf (>= 32 bytes);
 * returns its length. */
size_t render_time(int64_t ms, char *buf, size_t len);
/* Appends render_time's text, or null for ms <= 0. */
void render_write_time(struct jw *w, int64_t ms);
/* The same written at p (at most RENDER_TIME_MAX bytes); returns the end. */
#define RENDER_TIME_MAX 42
char *render_put_time(char *p, int64_t ms);

#endif
