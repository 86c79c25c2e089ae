/* entry — Raft log entries: what a state change looks like in the log.
 *
 * Encoded as one JSON object {"v": 1, "op": "...", "at": ms, ...}; "v" is the
 * format version, so a replica stops at entries newer than it understands instead
 * of misreading them. Decisions (placements, generated ids, the time) are made by
 * the leader before proposing and travel inside the entry.
 *
 * Entries are a storage format, not API input: this module has its own codec for
 * them and for the specs they carry (docs/entries.md). The decoders check what
 * apply needs to be safe — types, presence, no overflow, no NUL in strings — and
 * none of the API's rules (id syntax, lengths, API maxima, duplicates), so an
 * entry an older build wrote still replays after the API tightens a rule. */
#ifndef LATTICE_ENTRY_H
#define LATTICE_ENTRY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

struct jw;

/* Version 2 adds "idem" (an idempotency key); entries without one are still
 * written as version 1, so only they stop a replica too old to honour the key. */
/* Version 3 adds "term" (the proposing leader's Raft term): every entry a
 * leader of this build proposes carries it, and apply writes the commands an
 * entry causes (the outbox, model_cmd.c) only for entries that do, so an entry
 * an older build wrote replays as it did then. */
/* Version 4 changes what apply does, not the fields: a newer security_policy
 * command for a node supersedes that node's older ones (model_cmd.c), so an
 * entry older than it replays without that. */
#define ENTRY_VERSION 4

/* The largest quantity (millicores, MiB, counts, replicas, milliseconds) an entry
 * may carry: far above every API maximum, so tightening those never makes a log
 * unreadable, and small enough that apply's sums cannot overflow int64 (that
 * would take 2^23 placements of the largest request on one node). */
#define ENTRY_QTY_MAX (INT64_C(1) << 40)

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
	ENTRY_NODE_REPORT,    /* reports: what the leader learned from agents' heartbeats */
	ENTRY_COMMAND_UPDATE, /* updates: commands published, acked, failed */
	ENTRY_FAILOVER,       /* target (the unhealthy node) + moves + unplaced + detected_ms */
	ENTRY_SNAPSHOT_PUT,   /* target (actor) + snap: an agent's state snapshot */
	ENTRY_ACTOR_MIGRATE,  /* target (actor) + moves[0]: {instance, to_node} */
	ENTRY_RECONCILE,      /* target (node) + starts + stops: what its heartbeats showed amiss */
};

/* An actor's state snapshot as an agent sent it (ENTRY_SNAPSHOT_PUT). */
struct entry_snap {
	char *node;
	int64_t state_version;
	char *data; /* base64 */
	char *migration_id; /* NULL: a periodic one */
};

/* One command's progress, as the leader saw it (ENTRY_COMMAND_UPDATE). */
struct entry_cmd_update {
	char *command_id;
	int64_t status; /* enum cmd_status: published, acked or failed */
	int64_t attempts; /* publications so far */
	char *error;      /* failed: why (NULL none) */
	int64_t applied_version;
};

/* ENTRY_ACTOR_UPDATE's flag: a patch that, when applied, changes nothing leaves
 * the actor as it is (no generation bump, no event, no rows). Leaders set it on
 * every update since they stopped proposing patches that change nothing; entries
 * without it (older logs) bump the generation as they did, so replaying an old
 * log gives the same model and the same event numbers. */
#define ENTRY_UPDATE_KEEP_UNCHANGED 1

/* Why an entry does not decode. What a replica does about each is decided by
 * the code, never by the message (fsm.c; docs/entries.md). */
enum entry_err {
	ENTRY_OK = 0,
	/* Not an entry of a version this build reads: not JSON, wrong types,
	 * missing parts. Every replica decodes the same bytes the same way, so
	 * every one skips it. */
	ENTRY_E_MALFORMED,
	ENTRY_E_VERSION, /* "v" is newer than ENTRY_VERSION: a newer build wrote it */
	ENTRY_E_OP,      /* an op this build does not know: a newer build wrote it */
	ENTRY_E_NOMEM,
};

/* One replica moved by a drain. */
struct entry_move {
	char *actor_id;
	int64_t instance;
	char *to_node;
};

/* One node's state as the leader sees it from its heartbeats (or their
 * absence): the soft state that reaches the model, only through the log. */
struct entry_report {
	char *node_id;
	int64_t status; /* enum node_status */
	int64_t error_count;
	int64_t cpu_measured, memory_measured_mb; /* -1: unknown */
	int64_t policy_version;
	int64_t last_heartbeat_ms; /* wall clock of the leader when it last heard the node; 0 never */
	char *agent_version;       /* NULL: unknown */
};

struct entry {
	enum entry_op op;
	int64_t at_ms;   /* leader's clock at proposal (never behind the last applied: model_entry_time) */
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
	char *idem_key;     /* the client's Idempotency-Key (NULL none): version 2 */
	uint64_t idem_fp;   /* fingerprint of the request that carried it */
	uint64_t member_id; /* MEMBER_*: the Raft server id */
	char *api_url;      /* MEMBER_PUT */
	struct entry_report *reports; /* NODE_REPORT */
	size_t nreports;
	struct entry_cmd_update *updates; /* COMMAND_UPDATE */
	size_t nupdates;
	uint64_t term; /* the proposing leader's term (version 3); 0: an older entry */
	int version;   /* "v": as decoded; 0 (unset) encodes as the oldest that holds the fields */
	struct entry_move *unplaced; /* FAILOVER: replicas with no home (to_node NULL) */
	size_t nunplaced;
	int64_t detected_ms; /* FAILOVER: when the node was found unhealthy */
	struct entry_snap snap; /* SNAPSHOT_PUT */
	struct entry_move *starts, *stops; /* RECONCILE: replicas to start / stop there (to_node NULL) */
	size_t nstarts, nstops;
};

const char *entry_op_name(enum entry_op op);
/* The text of an entry_err code ("unknown" for anything else). */
const char *entry_strerror(int code);

/* Encodes e into a new buffer allocated with raft_malloc (so it can be handed to
 * raft_apply); on success the buffer and its length belong to the caller.
 * Returns 0, or -1 when out of memory or when e lacks a string the format needs
 * (a node's id or region, an actor's module, ...); *buf is untouched then. */
int entry_encode(const struct entry *e, void **buf, size_t *len);
/* Decodes len bytes of buf (borrowed; need not be NUL-terminated). Returns 0 with
 * *out owning its strings (entry_release), or an entry_err code with a message
 * in err; *out is untouched on failure. An allocation that fails inside the JSON
 * parser aborts the process after a log line: the parser cannot be trusted to
 * report it (docs/entries.md), and a replica must not skip a committed entry
 * because it ran out of memory. */
int entry_decode(const void *buf, size_t len, struct entry *out, char *err, size_t errlen);
void entry_release(struct entry *e);

/* The specs as the log holds them (also fit for other stored copies, such as
 * snapshots). Writers append one JSON object to w; a string the format needs
 * that is NULL marks w unusable (w->oom). Readers take a borrowed value and, on
 * success, fill *out (which must own nothing) and return 0; otherwise they
 * return an entry_err code with a message in err, and *out owns nothing. */
void entry_node_write(struct jw *w, const struct node_spec *s);
int entry_node_read(const json_t *j, struct node_spec *out, char *err, size_t errlen);
void entry_actor_write(struct jw *w, const struct actor_spec *s);
int entry_actor_read(const json_t *j, struct actor_spec *out, char *err, size_t errlen);
void entry_patch_write(struct jw *w, const struct actor_patch *p);
int entry_patch_read(const json_t *j, struct actor_patch *out, char *err, size_t errlen);
void entry_provider_write(struct jw *w, const struct provider_spec *s);
int entry_provider_read(const json_t *j, struct provider_spec *out, char *err, size_t errlen);
void entry_link_write(struct jw *w, const struct link_spec *s);
int entry_link_read(const json_t *j, struct link_spec *out, char *err, size_t errlen);
void entry_policy_write(struct jw *w, const struct policy_spec *s);
int entry_policy_read(const json_t *j, struct policy_spec *out, char *err, size_t errlen);

#endif
