/* model_int — what model.c and model_snap.c share and nothing else uses. */
#ifndef LATTICE_MODEL_INT_H
#define LATTICE_MODEL_INT_H

#include <jansson.h>

#include "entry.h"
#include "model.h"

struct proj_batch;

/* Free one object and everything it owns (not its map entry). */
void model_node_free(struct model_node *n);
void model_actor_free(struct model_actor *a);
void model_provider_free(struct model_provider *p);
void model_link_free(struct model_link *l);
void model_policy_free(struct model_policy *p);

/* Apply's out of memory: logs the entry's index and aborts (crash-only). */
__attribute__((noreturn)) void model_oom(const struct model *m, const char *what);
/* p, or model_oom(what) when it is NULL. */
void *model_need(const struct model *m, void *p, const char *what);
/* Numbers and projects one event (data stolen; NULL: {}). */
void model_event(struct model *m, struct proj_batch *out, const struct entry *e, const char *kind,
		 const char *type, const char *id, json_t *data);

/* ---- the command outbox (model_cmd.c) ---- */
void model_cmd_init(struct model *m);
void model_cmd_release(struct model *m);
/* A command in one allocation with its id, node, actor id and payload (or
 * module), copied from t's (borrowed; error is strdup'd): the outbox keeps a
 * command per replica to start, and four small allocations each cost more
 * than the text. An actor_start whose payload text is its usual form is kept
 * without it (model.h). NULL when out of memory. Free with model_cmd_free. */
struct model_command *model_cmd_pack(const struct model_command *t);
void model_cmd_free(struct model_command *c);
/* Writes a command caused by entry e (only when e carries a term: older entries
 * wrote none), projected into out. payload is JSON object text (taken).
 * Returns the command (borrowed), or NULL when e writes none. */
struct model_command *model_cmd_add(struct model *m, const struct entry *e, enum cmd_type type,
				    const char *node, const char *actor_id, int64_t instance,
				    uint64_t generation, int64_t config_version, char *payload,
				    struct proj_batch *out);
/* actor_start for replica `instance` of a on its node; actor_stop of replica
 * `instance` of actor_id on node (reason: protocol.md's words). */
void model_cmd_start(struct model *m, const struct entry *e, const struct model_actor *a, size_t instance,
		     struct proj_batch *out);
void model_cmd_stop(struct model *m, const struct entry *e, const char *actor_id, uint64_t generation,
		    int64_t instance, const char *node, const char *reason, struct proj_batch *out);
struct model_command *model_cmd_start_on(struct model *m, const struct entry *e, const struct model_actor *a,
					 size_t instance, const struct model_node *node, struct proj_batch *out);
/* An actor_start that must start from at least snapshot `version`: its
 * payload says so ({"snapshot": {"state_version": version}}), and the outbox
 * publishes it once that snapshot is recorded (outbox.c). */
void model_cmd_want_snapshot(struct model *m, struct model_command *c, int64_t version, struct proj_batch *out);
/* Marks c finished (acked or failed, set by the caller) and projects it. */
void model_cmd_finish(struct model *m, struct model_command *c, struct proj_batch *out);
/* ENTRY_RECONCILE. */
void model_cmd_apply_reconcile(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res);
/* ENTRY_COMMAND_UPDATE. */
void model_cmd_apply_update(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res);
/* Restores one command from a snapshot (ownership of c and its strings taken);
 * 0, or -1 when its id is already there. */
int model_cmd_restore(struct model *m, struct model_command *c);

/* ---- failovers (model_fo.c) ---- */
void model_fo_init(struct model *m);
void model_fo_release(struct model *m);
/* ENTRY_FAILOVER. */
void model_fo_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res);
/* An actor_start command finished (acked: ok, or failed): the failover that
 * moved that replica there learns it. */
void model_fo_start_done(struct model *m, const struct entry *e, const struct model_command *c, bool ok,
			 struct proj_batch *out);
/* Restores one failover from a snapshot (taken); 0, or -1 when its id is there. */
int model_fo_restore(struct model *m, struct model_failover *f);
void model_fo_free(struct model_failover *f);
/* ---- snapshots and migrations (model_mig.c) ---- */
void model_snap_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res);
void model_mig_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res);
/* If c is a step of a migration, applies update u to it (the command finished
 * or published) and returns true. */
bool model_mig_command_done(struct model *m, const struct entry *e, struct model_command *c,
			    struct entry_cmd_update *u, struct proj_batch *out);
/* Ends a's migration, if any, giving back the target's reservation (the
 * actor's placements are about to change under it). */
void model_mig_cancel(struct model *m, const struct entry *e, struct model_actor *a, const char *why,
		      struct proj_batch *out);
void model_actor_snap_free(struct model_actor_snap *s);
void model_mig_free(struct model_migration *g);

/* model.c's re-check of a move (a drain's, a failover's, a migration's). */
bool model_move_ok(struct model *m, struct model_actor *a, struct model_node *to, char *why, size_t whylen);

/* Planned moves of replicas off a node (a drain's, a failover's): model.c owns
 * their re-check, so both apply a plan by the same rules. */
enum model_move_fail {
	MODEL_MOVE_GONE,  /* actor, replica or target gone, target is the node itself, or
			   * the replica is no longer on it (an earlier move took it) */
	MODEL_MOVE_UNFIT, /* the target cannot take it: why says so */
};
/* Does mv still match the model: its actor and replica on n, its target another
 * node? Sets *a and *to when it does. */
bool model_move_matches(struct model *m, const struct entry_move *mv, const struct model_node *n,
			struct model_actor **a, struct model_node **to);
/* Moves the replicas of moves[0..nmoves) off n in order, each re-checked
 * against the model the moves before it left (deterministic: the same on every
 * replica). Returns nmoves when all moved. Otherwise undoes the ones before
 * (in reverse) and returns the index of the one refused, with *fail and why
 * ("" when GONE) set. Placements and accounting only: states, commands and rows
 * are the caller's. */
size_t model_moves_apply(struct model *m, const struct entry_move *moves, size_t nmoves, struct model_node *n,
			 enum model_move_fail *fail, char *why, size_t whylen);

#endif
