/* model_mig — actor state snapshots and live migration inside the model (SPEC
 * "Migration"; docs/protocol.md "Snapshot" and actor_migrate).
 *
 * A migration of replica i of an actor from node S to node T:
 *   1. ENTRY_ACTOR_MIGRATE: T's capacity is reserved, the placement is
 *      `migrating`, actor_migrate goes to S (checkpoint now);
 *   2. S publishes its snapshot (ENTRY_SNAPSHOT_PUT keeps it) and acks: an
 *      actor_start goes to T, started from the latest snapshot;
 *   3. T acks the start: the placement moves to T (`running`), S's share is
 *      released, actor_stop (migrated) goes to S;
 *   4. S acks the stop: done.
 * The actor runs on S until T runs it (never on zero nodes if T can start),
 * and on T alone once S acked its stop (never on two after). A failed step
 * gives T's reservation back and leaves the actor running on S. Any change of
 * the actor's placements (update, delete, drain, failover) cancels it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model_int.h"
#include "proj.h"

static const char *const step_names[] = {"checkpointing", "starting", "stopping"};

const char *model_mig_step_name(enum mig_step s)
{
	return (unsigned)s <= MIG_STOPPING ? step_names[s] : "unknown";
}

void model_actor_snap_free(struct model_actor_snap *s)
{
	if (s == NULL)
		return;
	free(s->data);
	free(s->node);
	free(s);
}

void model_mig_free(struct model_migration *g)
{
	if (g == NULL)
		return;
	free(g->id);
	free(g);
}

static void res_msg(struct apply_result *res, enum apply_code code, const char *fmt, const char *a, const char *b)
{
	res->code = code;
	snprintf(res->message, sizeof(res->message), fmt, a, b);
}

static bool node_holds(const struct model_actor *a, const char *node)
{
	for (size_t i = 0; i < a->nplacements; i++)
		if (strcmp(a->placements[i].node->spec.id, node) == 0)
			return true;
	return a->mig && strcmp(a->mig->from->spec.id, node) == 0;
}

void model_snap_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res)
{
	struct model_actor *a = model_actor_get(m, e->target ? e->target : "");
	snprintf(res->id, sizeof(res->id), "%s", e->target ? e->target : "");
	if (a == NULL)
		return res_msg(res, APPLY_NOT_FOUND, "actor '%s' not found%s", e->target ? e->target : "", "");
	if (!node_holds(a, e->snap.node))
		return res_msg(res, APPLY_CONFLICT, "a snapshot of actor '%s' from node '%s', which does not run it",
			       a->spec.id, e->snap.node);
	if (a->snap && e->snap.state_version <= a->snap->state_version)
		return res_msg(res, APPLY_CONFLICT, "a snapshot of actor '%s' not newer than the one held%s", a->spec.id,
			       "");
	struct model_actor_snap *s = model_need(m, calloc(1, sizeof(*s)), "a snapshot");
	s->state_version = e->snap.state_version;
	s->data = e->snap.data; /* moved */
	e->snap.data = NULL;
	s->node = model_need(m, strdup(e->snap.node), "a snapshot");
	s->taken_ms = e->at_ms;
	model_actor_snap_free(a->snap);
	a->snap = s;
	bool moved = false;
	for (size_t i = 0; i < a->nplacements; i++)
		if (strcmp(a->placements[i].node->spec.id, s->node) == 0 && a->placements[i].state_version != s->state_version) {
			a->placements[i].state_version = s->state_version;
			moved = true;
		}
	if (out) {
		proj_snapshot(out, a);
		if (moved)
			proj_placements(out, a);
	}
}

void model_mig_cancel(struct model *m, const struct entry *e, struct model_actor *a, const char *why,
		      struct proj_batch *out)
{
	struct model_migration *g = a->mig;
	if (g == NULL)
		return;
	/* The target's start may still reach it (it waits in the target's consumer
	 * while the node is away, and a JetStream redelivery can come minutes
	 * later): a stop queued behind it, newer in fencing order, keeps the target
	 * from running a copy nobody placed there. */
	if (g->step == MIG_STARTING)
		model_cmd_stop(m, e, a->spec.id, a->generation, g->instance, g->to->spec.id, "migration_cancelled", out);
	if (g->step != MIG_STOPPING) {
		model_node_account(m, g->to, g->cpu, g->mem, -1);
		if ((size_t)g->instance < a->nplacements && a->placements[g->instance].state == PL_MIGRATING)
			a->placements[g->instance].state = PL_RUNNING;
	}
	model_event(m, out, e, "actor.migration_failed", "actor", a->spec.id,
		    model_need(m,
			       json_pack("{s:s,s:I,s:s,s:s,s:s}", "migration_id", g->id, "instance", (json_int_t)g->instance,
					 "from", g->from->spec.id, "to", g->to->spec.id, "error", why),
			       "an event"));
	a->mig = NULL;
	model_mig_free(g);
	if (out)
		proj_placements(out, a);
}

void model_mig_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res)
{
	struct model_actor *a = model_actor_get(m, e->target ? e->target : "");
	snprintf(res->id, sizeof(res->id), "%s", e->target ? e->target : "");
	if (a == NULL)
		return res_msg(res, APPLY_NOT_FOUND, "actor '%s' not found%s", e->target ? e->target : "", "");
	if (e->nmoves != 1)
		return res_msg(res, APPLY_INVALID, "migration of actor '%s' without a move%s", a->spec.id, "");
	if (a->mig)
		return res_msg(res, APPLY_CONFLICT, "actor '%s' is already migrating (%s)", a->spec.id, a->mig->id);
	int64_t inst = e->moves[0].instance;
	if (inst < 0 || (size_t)inst >= a->nplacements)
		return res_msg(res, APPLY_STALE, "actor '%s' has no such instance%s", a->spec.id, "");
	struct model_placement *p = &a->placements[inst];
	struct model_node *to = model_node_get(m, e->moves[0].to_node ? e->moves[0].to_node : "");
	char why[200] = "";
	if (p->state != PL_RUNNING)
		return res_msg(res, APPLY_CONFLICT, "actor '%s' is %s there: only a running actor migrates", a->spec.id,
			       model_placement_state_name(p->state));
	if (to == NULL || to == p->node || !model_move_ok(m, a, to, why, sizeof(why)))
		return res_msg(res, APPLY_STALE, "migration plan of actor '%s' is out of date: %s", a->spec.id,
			       why[0] ? why : "the target is gone");
	model_node_account(m, to, a->spec.cpu_required, a->spec.memory_required_mb, +1); /* reserved */
	struct model_migration *g = model_need(m, calloc(1, sizeof(*g)), "a migration");
	char id[48];
	snprintf(id, sizeof(id), "m%llu", (unsigned long long)m->applying);
	g->id = model_need(m, strdup(id), "a migration");
	g->instance = inst;
	g->cpu = a->spec.cpu_required;
	g->mem = a->spec.memory_required_mb;
	g->from = p->node;
	g->to = to;
	g->step = MIG_CHECKPOINT;
	g->started_ms = e->at_ms;
	a->mig = g;
	p->state = PL_MIGRATING;
	a->generation++;
	a->updated_ms = e->at_ms;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "actor_id");
	jw_str(&w, a->spec.id);
	jw_key(&w, "instance");
	jw_int(&w, inst);
	jw_key(&w, "migration_id");
	jw_str(&w, g->id);
	jw_key(&w, "target_node");
	jw_str(&w, to->spec.id);
	jw_obj_end(&w);
	model_cmd_add(m, e, CMD_ACTOR_MIGRATE, g->from->spec.id, a->spec.id, inst, a->generation, 0,
		      model_need(m, jw_take_fit(&w, NULL), "a command's payload"), out);
	model_event(m, out, e, "actor.migrating", "actor", a->spec.id,
		    model_need(m,
			       json_pack("{s:s,s:I,s:s,s:s,s:s}", "migration_id", g->id, "instance", (json_int_t)inst,
					 "from", g->from->spec.id, "to", to->spec.id, "step", model_mig_step_name(g->step)),
			       "an event"));
	if (out) {
		proj_actor(out, a);
		proj_placements(out, a);
	}
}

static void step_event(struct model *m, const struct entry *e, const struct model_actor *a, struct proj_batch *out)
{
	const struct model_migration *g = a->mig;
	model_event(m, out, e, "actor.migrating", "actor", a->spec.id,
		    model_need(m,
			       json_pack("{s:s,s:I,s:s,s:s,s:s}", "migration_id", g->id, "instance", (json_int_t)g->instance,
					 "from", g->from->spec.id, "to", g->to->spec.id, "step", model_mig_step_name(g->step)),
			       "an event"));
}

bool model_mig_command_done(struct model *m, const struct entry *e, struct model_command *c,
			    struct entry_cmd_update *u, struct proj_batch *out)
{
	(void)u;
	struct model_actor *a = c->actor_id ? model_actor_get(m, c->actor_id) : NULL;
	struct model_migration *g = a ? a->mig : NULL;
	if (g == NULL || c->instance != g->instance)
		return false;
	bool acked = c->status == CMD_ACKED, failed = c->status == CMD_FAILED;
	struct model_placement *p = &a->placements[g->instance];
	if (c->type == CMD_ACTOR_MIGRATE && c->node && strcmp(c->node, g->from->spec.id) == 0 && g->step == MIG_CHECKPOINT) {
		if (failed) {
			model_mig_cancel(m, e, a, c->error ? c->error : "the source did not checkpoint", out);
		} else if (acked) {
			g->step = MIG_STARTING;
			struct model_command *start = model_cmd_start_on(m, e, a, (size_t)g->instance, g->to, out);
			/* Started from the checkpoint the source just took (the outbox
			 * waits for its snapshot to be recorded): protocol.md's order is
			 * snapshot, then ack, but they travel on two streams. */
			if (start && c->applied_version > 0)
				model_cmd_want_snapshot(m, start, c->applied_version, out);
			step_event(m, e, a, out);
		}
		return true;
	}
	if (c->type == CMD_ACTOR_START && strcmp(c->node, g->to->spec.id) == 0 && g->step == MIG_STARTING) {
		if (failed) {
			model_mig_cancel(m, e, a, c->error ? c->error : "the target did not start", out);
		} else if (acked) {
			/* The target runs it: the placement moves (its reservation becomes
			 * the placement's share), the source's share goes. */
			model_node_account(m, g->to, g->cpu, g->mem, -1);
			model_node_account(m, g->to, a->spec.cpu_required, a->spec.memory_required_mb, +1);
			model_node_account(m, g->from, a->spec.cpu_required, a->spec.memory_required_mb, -1);
			p->node = g->to;
			p->state = PL_RUNNING;
			p->state_version = c->applied_version;
			a->generation++;
			a->updated_ms = e->at_ms;
			g->step = MIG_STOPPING;
			model_cmd_stop(m, e, a->spec.id, a->generation, g->instance, g->from->spec.id, "migrated", out);
			step_event(m, e, a, out);
			if (out) {
				proj_actor(out, a);
				proj_placements(out, a);
			}
		}
		return true;
	}
	if (c->type == CMD_ACTOR_STOP && strcmp(c->node, g->from->spec.id) == 0 && g->step == MIG_STOPPING) {
		if (acked || failed) {
			model_event(m, out, e, failed ? "actor.migration_failed" : "actor.migrated", "actor", a->spec.id,
				    model_need(m,
					       json_pack("{s:s,s:I,s:s,s:s,s:s?}", "migration_id", g->id, "instance",
							 (json_int_t)g->instance, "from", g->from->spec.id, "to",
							 g->to->spec.id, "error",
							 failed ? "the source did not confirm its stop" : NULL),
					       "an event"));
			a->mig = NULL;
			model_mig_free(g);
		}
		return true;
	}
	return false;
}
