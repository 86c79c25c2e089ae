/* entry — Raft log entries: what a state change looks like in the log.
 *
 * Encoded as one JSON object {"v": 1, "op": "...", "at": ms, ...}; "v" is the
 * format version, so a replica refuses entries newer than it understands instead
 * of misreading them. Decisions (placements, generated ids, the time) are made by
 * the leader before proposing and travel inside the entry. */
#ifndef LATTICE_ENTRY_H
#define LATTICE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#include "spec.h"

#define ENTRY_VERSION 1

enum entry_op {
	ENTRY_NODE_PUT = 1,   /* register or update a node (node) */
	ENTRY_NODE_FLAGS,     /* cordon/uncordon (target, flag) */
	ENTRY_NODE_DRAIN,     /* drain: cordon + moves */
	ENTRY_NODE_DELETE,    /* target */
	ENTRY_ACTOR_CREATE,   /* actor + placements + rr_cursor */
	ENTRY_ACTOR_UPDATE,   /* target + patch + placements (new replicas) + rr_cursor;
			       * flag ENTRY_UPDATE_KEEP_UNCHANGED */
	ENTRY_ACTOR_DELETE,   /* target */
	ENTRY_PROVIDER_CREATE,
	ENTRY_PROVIDER_DELETE,
	ENTRY_LINK_CREATE,
	ENTRY_LINK_DELETE,
	ENTRY_POLICY_PUT,     /* create (flag=1) or new version (flag=0) */
	ENTRY_MEMBER_PUT,     /* member_id's REST API URL (api_url) */
	ENTRY_MEMBER_DELETE,  /* member_id left the group: forget its URL */
};

/* ENTRY_ACTOR_UPDATE's flag: a patch that, when applied, changes nothing leaves
 * the actor as it is (no generation bump, no event, no rows). Leaders set it on
 * every update since they stopped proposing patches that change nothing; entries
 * without it (older logs) bump the generation as they did, so replaying an old
 * log gives the same model and the same event numbers. */
#define ENTRY_UPDATE_KEEP_UNCHANGED 1

/* One replica moved by a drain. */
struct entry_move {
	char *actor_id;
	int64_t instance;
	char *to_node;
};

struct entry {
	enum entry_op op;
	int64_t at_ms;   /* leader's clock at proposal */
	char *who;       /* who asked ("api", later the token's name) */
	char *target;    /* object id for flags/delete/update/drain */
	int64_t flag;    /* NODE_FLAGS: 1 cordon, 0 uncordon; POLICY_PUT: 1 create */
	struct node_spec node;
	struct actor_spec actor;
	struct actor_patch patch;
	char **placements; /* node ids for new replicas, in order */
	size_t nplacements;
	char *rr_cursor; /* NULL: unchanged */
	struct entry_move *moves;
	size_t nmoves;
	struct provider_spec provider;
	struct link_spec link;
	struct policy_spec policy;
	uint64_t member_id; /* MEMBER_*: the Raft server id */
	char *api_url;      /* MEMBER_PUT */
};

const char *entry_op_name(enum entry_op op);
/* Encodes e into a new buffer allocated with raft_malloc (so it can be handed to
 * raft_apply);
 * on success the buffer and its length belong to the caller. Returns 0 or -1. */
int entry_encode(const struct entry *e, void **buf, size_t *len);
/* Decodes an entry; on success *out owns its strings (entry_release). */
int entry_decode(const void *buf, size_t len, struct entry *out, char *err, size_t errlen);
void entry_release(struct entry *e);

#endif
