/* model — the replicated state machine: nodes, actors and their placements,
 * providers, links and policies, held in memory and changed only by applying
 * committed log entries (model_apply). Loop thread only.
 *
 * Apply is deterministic: it reads nothing but the entry and the model (no clock,
 * no randomness, no soft state), re-checks the leader's decisions and either
 * applies the whole entry or rejects it with a result code, changing nothing. */
#ifndef LATTICE_MODEL_H
#define LATTICE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "durhist.h"
#include "hmap.h"
#include "sched.h"
#include "spec.h"

struct entry;
struct proj_batch;

enum node_status { NODE_HEALTHY = 0, NODE_DEGRADED = 1, NODE_UNHEALTHY = 2 };
enum placement_state {
	PL_PENDING = 0,
	PL_STARTING,
	PL_RUNNING,
	PL_MIGRATING,
	PL_STOPPING,
	PL_FAILED,
};

struct model_node {
	struct node_spec spec; /* spec.cpu_used etc. are the registered base load */
	/* Accounted for placement: base + requests of placements on the node. */
	int64_t cpu_used, memory_used_mb, actor_count;
	int64_t cpu_measured, memory_measured_mb; /* reported by heartbeats; -1 unknown */
	int64_t nplacements;                      /* placements on this node */
	enum node_status status;
	bool cordoned, draining;
	int64_t error_count;
	int64_t last_heartbeat_ms; /* 0: never */
	int64_t policy_version; /* applied on the node (its agent says) */
	int64_t policy_target;  /* what it should apply: the index of the last change of its policies */
	char *agent_version; /* NULL: unknown */
	uint64_t generation; /* bumped on every change of the node's own record */
	int64_t created_ms, updated_ms;
	struct sched_node sched;
	struct model_policy **policies; /* covering policies, sorted by id (borrowed) */
	size_t npolicies;
	bool touched; /* in model.touched (its accounted usage changed) */
};

struct model_placement {
	struct model_node *node; /* borrowed */
	enum placement_state state;
	int64_t state_version;
};

/* The latest state snapshot of an actor (agents send them: protocol.md,
 * "Snapshot"); replacements and migration targets start from it. */
struct model_actor_snap {
	int64_t state_version;
	char *data;   /* base64, as the agent sent it */
	char *node;   /* where it was taken */
	int64_t taken_ms; /* entry time of its arrival */
};

/* A migration in progress (model_mig.c): checkpoint on the source, start from
 * that snapshot on the target, then stop the source. */
enum mig_step { MIG_CHECKPOINT = 0, MIG_STARTING, MIG_STOPPING };

struct model_migration {
	char *id; /* "m<index>" */
	int64_t instance;
	struct model_node *from, *to; /* borrowed; `to` holds a reservation */
	int64_t cpu, mem; /* the reservation on `to` (the request when it began) */
	enum mig_step step;
	int64_t started_ms;
};

struct model_actor {
	struct actor_spec spec; /* spec.id always set */
	struct model_placement *placements; /* [spec.replicas], instance = index */
	size_t nplacements;
	uint64_t generation;
	int64_t created_ms, updated_ms;
	struct model_actor_snap *snap; /* NULL: none yet */
	struct model_migration *mig;   /* NULL: not migrating */
};

struct model_provider {
	struct provider_spec spec;
	int64_t created_ms;
};

struct model_link {
	struct link_spec spec;
	int64_t created_ms;
};

/* An earlier version of a policy. GET /v1/policies/{id}/versions serves every
 * version from PostgreSQL; the model keeps them too, so that a replica that
 * joins by snapshot (its projection rebuilt from the model) serves the same. */
struct model_policy_version {
	struct policy_spec spec; /* spec.policy_id is NULL: the policy's own */
	int64_t version;
	int64_t made_ms; /* when this version was made */
};

struct model_policy {
	struct policy_spec spec;
	int64_t version; /* 1 for the first, +1 per PUT */
	int64_t created_ms, updated_ms;
	/* The versions before this one, oldest first (a replica restored from a
	 * format 1 snapshot lacks those made before it). */
	struct model_policy_version *history;
	size_t nhistory;
};

/* The command outbox (model_cmd.c; SPEC "Commands"): commands are written by
 * apply, in the same entry as the change that causes them, so they are
 * replicated and survive any crash; the leader publishes them (outbox.c) and
 * records publications, acks and failures back through the log. */
enum cmd_type { CMD_ACTOR_START = 0, CMD_ACTOR_STOP, CMD_ACTOR_MIGRATE, CMD_CONFIG_UPDATE, CMD_SECURITY_POLICY, CMD_TYPES };
/* superseded: a security_policy a newer one for the same node made moot
 * before it was acked (model_cmd.c); finished, like acked and failed. */
enum cmd_status { CMD_PENDING = 0, CMD_PUBLISHED, CMD_ACKED, CMD_FAILED, CMD_SUPERSEDED, CMD_STATUSES };

/* Finished commands (acked, failed) the model keeps, newest; older ones are
 * only in PostgreSQL. Open commands are all kept. */
#define MODEL_CMD_DONE_MAX 10000

struct model_command {
	char *id; /* "c<index>-<n>": the n-th command of the entry at index */
	enum cmd_type type;
	char *node;     /* target node */
	char *actor_id; /* NULL: not about an actor (security_policy) */
	int64_t instance;
	uint64_t term;       /* of the entry that wrote it */
	uint64_t generation; /* the object's, when written (fencing) */
	int64_t config_version;
	/* The message's payload, JSON object text; NULL for an actor_start in its
	 * usual form (no snapshot, config {}), written from module, cpu and
	 * memory when asked (model_cmd_payload): ~200 bytes less for each of
	 * the starts a lattice without agents keeps open. */
	char *payload;
	const char *module; /* such an actor_start's module (NULL otherwise) */
	int64_t cpu_required, memory_required_mb; /* ... and its resources */
	bool payload_own; /* payload is an allocation of its own (else inside c's) */
	enum cmd_status status;
	int64_t attempts;
	int64_t created_ms, updated_ms, published_ms, acked_ms; /* 0: not yet */
	int64_t applied_version;
	char *error; /* NULL: none */
	struct model_command *prev, *next; /* its list: open (oldest first) or done (oldest first) */
};

static inline bool model_cmd_open(const struct model_command *c)
{
	return c->status == CMD_PENDING || c->status == CMD_PUBLISHED;
}

struct model_cmd_list {
	struct model_command *head, *tail;
	size_t n;
};

/* A failover (model_fo.c): every replica of an unhealthy node planned at once
 * by the leader and committed as one entry. */
enum fo_status { FO_IN_PROGRESS = 0, FO_COMPLETED, FO_FAILED, FO_STATUSES };
/* Of one assignment's start; superseded: its target died too before it
 * started, and that node's own failover moved the replica on. */
enum fo_step { FO_WAITING = 0, FO_RUNNING, FO_START_FAILED, FO_SUPERSEDED };

/* Finished failovers the model keeps (in progress: all). */
#define MODEL_FO_DONE_MAX 1000

struct model_fo_assign {
	char *actor_id;
	int64_t instance;
	char *to_node; /* NULL: no healthy target */
	enum fo_step step;
};

struct model_failover {
	char *id; /* "f<index>" */
	char *node;
	struct model_fo_assign *assign; /* moved ones, then the unplaced */
	size_t nassign, nmoved;
	size_t waiting; /* moved ones whose start is not acked yet */
	int64_t detected_ms, started_ms, finished_ms; /* finished: 0 while in progress */
	enum fo_status status;
	char *error; /* NULL: none */
	struct model_failover *prev, *next; /* oldest first */
};

struct model {
	struct hmap nodes;     /* id -> struct model_node */
	struct hmap actors;    /* id -> struct model_actor */
	struct hmap providers; /* id -> struct model_provider */
	struct hmap links;     /* id -> struct model_link */
	struct hmap policies;  /* policy_id -> struct model_policy */
	struct sched_index sched;
	char rr_cursor[SPEC_ID_MAX + 1]; /* round-robin: last node chosen ("" none) */
	uint64_t event_seq;              /* last event number */
	/* The latest "at" of an applied entry (the same on every replica: it comes
	 * from the entries). Proposers never go below it: model_entry_time. */
	int64_t last_at_ms;
	uint64_t applying; /* index of the entry being applied (messages only); 0: none */
	/* Replicas' REST API URLs by Raft id, so any replica can reach the leader's
	 * API (membership itself is Raft's configuration). Sorted by id. */
	struct model_member *members;
	size_t nmembers;
	struct hmap idem; /* key -> struct model_idem */
	struct model_idem *idem_oldest, *idem_newest;
	struct hmap commands;              /* id -> struct model_command (open and kept finished) */
	struct model_cmd_list cmd_open;    /* pending and published, oldest first */
	struct model_cmd_list cmd_done;    /* acked, failed, superseded, oldest first (at most MODEL_CMD_DONE_MAX) */
	struct hmap cmd_policy;            /* node id -> its open security_policy commands (model_cmd.c) */
	/* Commands finished by entries written at or after count_since_ms, by
	 * status (metrics: the replay of older entries at a start is not news). */
	uint64_t cmd_finished[CMD_STATUSES];
	struct durhist cmd_rtt;      /* published -> acked, of those commands */
	uint64_t fo_finished[FO_STATUSES]; /* failovers finished by those entries, by status */
	struct durhist fo_duration;  /* node found dead -> failover finished, of those */
	int64_t count_since_ms;
	/* Nodes whose accounted usage changed since the loop last took them
	 * (model_take_touched; the read view renders them again). Not state:
	 * no entry, snapshot or digest sees it. touched_all: the list overflowed. */
	struct model_node **touched;
	size_t ntouched, captouched;
	bool touched_all;
	int64_t applying_at_ms; /* the time of the entry being applied */
	unsigned cmd_next;                 /* n of the next command id in the entry being applied */
	struct hmap failovers;             /* id -> struct model_failover */
	struct model_failover *fo_head, *fo_tail; /* oldest first */
	size_t nfo_done;
};

struct model_member {
	uint64_t id;
	char *api_url;
};

/* Result of applying one entry. code 0 = applied. */
enum apply_code {
	APPLY_OK = 0,
	APPLY_NOT_FOUND,
	APPLY_EXISTS,
	APPLY_CONFLICT,
	APPLY_STALE, /* the leader's plan no longer fits the model: plan again */
	APPLY_INSUFFICIENT,
	APPLY_DENIED,
	APPLY_INVALID,
	APPLY_DUPLICATE,   /* its idempotency key was applied before: res->id, first_index say what */
	APPLY_KEY_REUSED,  /* its idempotency key came with another request */
	/* No code for running out of memory: apply stops the process instead
	 * (model.c, "crash-only"), so every replica applies an entry the same way. */
};

struct apply_result {
	enum apply_code code;
	char message[256];
	char id[SPEC_ID_MAX + 1]; /* id of the object the entry touched */
	uint64_t first_index;     /* APPLY_DUPLICATE: the index of the entry that carried the key first */
};

/* Idempotency keys applied lately: a retry of a POST with the same key finds
 * the first answer instead of writing again. Kept for MODEL_IDEM_WINDOW_MS of
 * entry time and at most MODEL_IDEM_MAX keys (the oldest go first): the same
 * on every replica, since both count in entries. */
#define MODEL_IDEM_WINDOW_MS (3600 * 1000)
#define MODEL_IDEM_MAX 100000
struct model_idem {
	char *key;
	uint64_t fp;
	char id[SPEC_ID_MAX + 1];
	uint64_t index;
	int64_t at_ms;
	struct model_idem *next; /* newer */
};

void model_init(struct model *m);
/* The record of idempotency key `key` (borrowed), or NULL. */
const struct model_idem *model_idem_get(const struct model *m, const char *key);
/* Records a key (the entry at index applied as id); drops the records the
 * window and the cap no longer keep. Aborts on out of memory (apply). */
void model_idem_put(struct model *m, const char *key, uint64_t fp, const char *id, uint64_t index, int64_t at_ms);
/* The REST API URL recorded for Raft server id, or NULL (borrowed). */
const char *model_member_url(const struct model *m, uint64_t id);
/* Records (url != NULL) or forgets (url == NULL) a member's URL (copied).
 * Returns 0 or -1 (out of memory; nothing changed). */
int model_member_set(struct model *m, uint64_t id, const char *url);
/* Frees every object. */
void model_release(struct model *m);

/* Applies e at log index `index`. When out is non-NULL, appends the rows the entry
 * changed (and its event) to out for the PostgreSQL projection. Returns the result
 * in *res; the model is unchanged unless res->code == APPLY_OK. On APPLY_OK the
 * model may have taken ownership of specs inside e (moved out and zeroed), so e
 * is only fit for entry_release afterwards. An allocation that fails inside
 * apply logs the index and aborts the process (the restart replays the entry):
 * refusing or half-applying it would leave this replica different from the
 * others. out's own allocation failures set out->failed (the caller stops). */
void model_apply(struct model *m, struct entry *e, uint64_t index, struct proj_batch *out,
		 struct apply_result *res);

/* The time for an entry proposed now: the wall clock, or the latest applied
 * entry's time when the clock is behind it (a new leader whose clock is behind
 * the old one's, a clock stepped back), so entry times never go backwards across
 * leaders. Apply takes the entry's time as it is (it must stay deterministic):
 * the proposer decides. */
int64_t model_entry_time(const struct model *m, int64_t wallclock_ms);

/* Lookups (borrowed; NULL when absent). */
struct model_node *model_node_get(const struct model *m, const char *id);
struct model_actor *model_actor_get(const struct model *m, const char *id);

/* Contracts an actor needs: its spec's plus those of its links, sorted, unique.
 * Caller frees with strlist_free. Returns 0 or -1. */
int model_actor_contracts(const struct model *m, const struct model_actor *a, struct strlist *out);

/* Adds (sign +1) or removes (-1) one replica's requests to the node's accounting
 * and re-files it in the scheduler index (out of memory there aborts: an index
 * missing a node would go on planning without it). */
void model_node_account(struct model *m, struct model_node *n, int64_t cpu, int64_t mem, int sign);
/* The nodes model_node_account changed since the last call (borrowed; valid
 * until the model changes), and whether more changed than it could keep
 * (then every node counts as changed). Clears the list. */
size_t model_take_touched(struct model *m, struct model_node ***out, bool *all);

/* Room on n for one more request, by capacity alone (unknown capacity: yes). The
 * leader's plan and apply's re-check of a resource change both use it. */
bool model_node_has_room(const struct model_node *n, int64_t cpu, int64_t mem);

const char *model_node_status_name(enum node_status s);
const char *model_cmd_type_name(enum cmd_type t);
const char *model_fo_status_name(enum fo_status s);
const char *model_mig_step_name(enum mig_step s);
const char *model_fo_step_name(enum fo_step s);
const char *model_cmd_status_name(enum cmd_status s);
/* Lookup (borrowed; NULL when absent or no longer kept). */
struct model_command *model_command_get(const struct model *m, const char *id);
/* c's payload, JSON object text: malloc'd (the caller frees it); NULL when out
 * of memory. */
char *model_cmd_payload(const struct model_command *c);
struct jw;
/* c's payload written into w as a value. */
void model_cmd_write_payload(struct jw *w, const struct model_command *c);
/* The open security_policy commands for node, oldest (lowest generation)
 * first; *n their count. Borrowed, valid until the next apply. */
struct model_command *const *model_cmd_policy_open(const struct model *m, const char *node, size_t *n);
const char *model_placement_state_name(enum placement_state s);

/* ---- snapshots (model_snap.c; the format: docs/snapshots.md) ---------------- */

/* The snapshot format this build writes; it reads every version up to it (a
 * snapshot without "v" is version 1). */
#define MODEL_SNAP_VERSION 3

enum model_snap_code {
	MODEL_SNAP_OK = 0,
	MODEL_SNAP_MALFORMED, /* not a snapshot this build can restore; err names the object */
	MODEL_SNAP_NEWER,     /* a newer format version: this replica must be upgraded */
	MODEL_SNAP_NOMEM,
};

/* The snapshot as text, {"v": MODEL_SNAP_VERSION, "index": index, ...}, written
 * object by object so no whole-model JSON tree is ever built (that tree is
 * several times the model's size). The buffer comes from raft_malloc/raft_realloc
 * and belongs to the caller; NULL when out of memory. */
char *model_snapshot_dump(const struct model *m, uint64_t index, size_t *len);
/* The same document as a tree, without "index" (tests compare and edit it).
 * Caller owns it; NULL when out of memory. */
json_t *model_snapshot(const struct model *m);
/* Restores m, which must be empty (as model_init leaves it), from the snapshot
 * text buf[0..len) (borrowed). Returns MODEL_SNAP_OK and the snapshot's index in
 * *index (when index is not NULL), or another code with a message in err; then
 * m is empty again and *index untouched. */
int model_restore_text(struct model *m, const void *buf, size_t len, uint64_t *index, char *err,
		       size_t errlen);
/* The same from a parsed document (borrowed). */
int model_restore(struct model *m, const json_t *snap, char *err, size_t errlen);

#endif
