/* proj — the PostgreSQL projection of applied entries, as row changes.
 *
 * Apply (loop thread) renders each changed row into a proj_change: a kind plus
 * its text parameters, in the order listed below. The PostgreSQL writer thread
 * never sees the model: it coalesces the changes of a transaction per (table,
 * key) — the last change of a key wins — and writes each table's rows of one kind
 * with one statement, passing each change as a JSON object whose keys are the
 * parameter names below (store_coalesce.c). A proj_batch holds the changes of
 * one log entry. */
#ifndef LATTICE_PROJ_H
#define LATTICE_PROJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jw.h"

struct model;
struct proj_chunk;
struct model_node;
struct model_actor;
struct model_provider;
struct model_link;
struct model_policy;
struct model_command;
struct model_failover;

/* Parameters of each kind, in order; the key of a kind is its first parameter
 * (policies: the first two). Timestamps are ms since the epoch; NULL parameters
 * are NULL pointers; maps, lists, placements and event data are JSON text, each
 * exactly one JSON value: the writer splices them into its row objects as they
 * are. */
enum proj_kind {
	/* id, region, labels, cpu_capacity, memory_mb, base_cpu_used,
	 * base_memory_used_mb, base_actor_count, cpu_measured, memory_measured_mb,
	 * status, cordoned (t/f), draining (t/f), error_count, last_heartbeat_ms,
	 * policy_version, policy_target, agent_version, generation, created_ms, updated_ms — the
	 * node's own record: its accounted usage is derived from the placements
	 * (schema/003_node_usage.sql), so placing an actor does not rewrite it */
	PROJ_NODE_UPSERT = 0,
	PROJ_NODE_DELETE, /* id */
	/* id, name, module, cpu_required, memory_required_mb, preferred_region,
	 * constraints, priority, max_latency_ms, replicas, strategy, contracts,
	 * generation, created_ms, updated_ms */
	PROJ_ACTOR_UPSERT,
	PROJ_ACTOR_DELETE, /* id (its placements and links go with it) */
	/* actor_id, placements: [{"instance","node_id","state","state_version"}] —
	 * replaces all of the actor's placements */
	PROJ_PLACEMENTS_SET,
	/* id, contract_id, image, nodes, created_ms */
	PROJ_PROVIDER_UPSERT,
	PROJ_PROVIDER_DELETE, /* id */
	/* id, actor_id, provider_id, contract_id, link_name, values, timeout_ms,
	 * retry_count, retry_delay_ms, created_ms */
	PROJ_LINK_UPSERT,
	PROJ_LINK_DELETE, /* id */
	/* policy_id, version, allowed_contracts, denied_contracts,
	 * max_actor_memory_mb, network_restrictions, selector, created_ms */
	PROJ_POLICY_INSERT,
	/* command_id, command_type, target_node, actor_id, instance, term, generation,
	 * config_version, payload, status, attempts, created_ms, updated_ms,
	 * published_ms, acked_ms, applied_version, error */
	PROJ_COMMAND_UPSERT,
	/* id, failed_node, assignments: [{"actor_id","instance","node_id","state"}],
	 * actor_ids, detected_ms, started_ms, finished_ms, downtime_ms, status, error */
	PROJ_FAILOVER_UPSERT,
	/* actor_id, state_version, data (base64), source_node, checkpoint_ms — the
	 * actor's latest snapshot replaces its earlier ones */
	PROJ_SNAPSHOT_PUT,
	/* seq, raft_index, at_ms, who, kind, object_type, object_id, data */
	PROJ_EVENT_INSERT,
	/* (no parameters) empties every state table, before a rebuild from the model */
	PROJ_RESET,
	PROJ_KIND_COUNT
};

struct proj_change {
	enum proj_kind kind;
	/* PROJ_ACTOR_UPSERT / PROJ_PLACEMENTS_SET of an actor this very entry creates:
	 * the database cannot hold its rows yet, so the writer may INSERT them plainly
	 * (see store_coalesce.c) */
	bool fresh;
	int nparams, cap;
	struct proj_change *next;
	char *params[]; /* cap slots, in the batch's arena; NULL = SQL NULL */
};

struct proj_batch {
	uint64_t index; /* log index these changes came from */
	struct proj_change *head, *tail;
	size_t n;
	int failed; /* an allocation failed while rendering: the batch is unusable */
	struct proj_chunk *chunks; /* the arena holding every change (see proj.c) */
	struct jw scratch;         /* renders JSON parameters before the arena copy */
	struct proj_batch *next; /* used by the writer's queue */
	size_t held;             /* used by the writer: the bytes it counts for it */
};

struct proj_batch *proj_batch_new(uint64_t index);
void proj_batch_free(struct proj_batch *b);
/* Memory the batch holds: the struct, its arena and its scratch buffer. */
size_t proj_batch_bytes(const struct proj_batch *b);
/* Appends a change given whole (the store reading a batch back from its spool):
 * kind, fresh, and nparams parameters of lens[i] bytes at params[i] (borrowed,
 * copied; NULL = SQL NULL). nparams must be the kind's count (else b->failed). */
void proj_raw(struct proj_batch *b, enum proj_kind kind, bool fresh, int nparams, const char *const *params,
	      const size_t *lens);

/* Appenders: render the object's current state. On allocation failure they set
 * b->failed and return; the caller checks b->failed once at the end. */
void proj_node(struct proj_batch *b, const struct model_node *n);
void proj_node_delete(struct proj_batch *b, const char *id);
void proj_actor(struct proj_batch *b, const struct model_actor *a);
void proj_actor_delete(struct proj_batch *b, const char *id);
void proj_placements(struct proj_batch *b, const struct model_actor *a);
/* A new actor: its row and its placements, marked fresh. */
void proj_actor_created(struct proj_batch *b, const struct model_actor *a);
void proj_provider(struct proj_batch *b, const struct model_provider *p);
void proj_provider_delete(struct proj_batch *b, const char *id);
void proj_link(struct proj_batch *b, const struct model_link *l);
void proj_link_delete(struct proj_batch *b, const char *id);
void proj_policy(struct proj_batch *b, const struct model_policy *p);
/* data: JSON text (borrowed, copied). */
void proj_event(struct proj_batch *b, uint64_t seq, int64_t at_ms, const char *who, const char *kind,
		const char *object_type, const char *object_id, const char *data);
void proj_command(struct proj_batch *b, const struct model_command *c);
void proj_failover(struct proj_batch *b, const struct model_failover *f);
void proj_snapshot(struct proj_batch *b, const struct model_actor *a);
void proj_reset(struct proj_batch *b);
/* A rebuild: a PROJ_RESET, then every row of the model (every version the
 * model keeps of each policy). */
void proj_model(struct proj_batch *b, const struct model *m);

#endif
