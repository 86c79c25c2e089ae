/* model_fo — failovers inside the model (SPEC "Failover"): the leader plans
 * every replica of an unhealthy node at once (failover.c) and commits the plan
 * as one entry; apply re-checks each move, moves the placements, writes an
 * actor_start on each target and an actor_stop for the dead node (fencing, in
 * case it comes back), and records the failover, which finishes when every
 * start is acked. Replicas with no healthy target stay where they were, failed,
 * and the failover says "failover failed: no healthy target". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_int.h"
#include "proj.h"

static void res_id_set(struct apply_result *res, const char *id)
{
	snprintf(res->id, sizeof(res->id), "%s", id ? id : "");
}

static const char *const fo_status_names[FO_STATUSES] = {"in_progress", "completed", "failed"};
static const char *const fo_step_names[] = {"starting", "running", "failed", "superseded"};

const char *model_fo_status_name(enum fo_status s)
{
	return (unsigned)s < FO_STATUSES ? fo_status_names[s] : "unknown";
}

const char *model_fo_step_name(enum fo_step s)
{
	return (unsigned)s <= FO_SUPERSEDED ? fo_step_names[s] : "unknown";
}

void model_fo_init(struct model *m)
{
	hmap_init(&m->failovers);
	m->fo_head = m->fo_tail = NULL;
	m->nfo_done = 0;
	memset(m->fo_finished, 0, sizeof(m->fo_finished));
	durhist_init(&m->fo_duration, DURHIST_SLOW);
}

void model_fo_free(struct model_failover *f)
{
	for (size_t i = 0; i < f->nassign; i++) {
		free(f->assign[i].actor_id);
		free(f->assign[i].to_node);
	}
	free(f->assign);
	free(f->id);
	free(f->node);
	free(f->error);
	free(f);
}

void model_fo_release(struct model *m)
{
	struct model_failover *f = m->fo_head;
	while (f) {
		struct model_failover *next = f->next;
		model_fo_free(f);
		f = next;
	}
	hmap_release(&m->failovers);
	model_fo_init(m);
}

/* Forgets the oldest finished failovers beyond MODEL_FO_DONE_MAX. */
static void trim(struct model *m)
{
	for (struct model_failover *f = m->fo_head; f && m->nfo_done > MODEL_FO_DONE_MAX;) {
		struct model_failover *next = f->next;
		if (f->status != FO_IN_PROGRESS) {
			if (f->prev)
				f->prev->next = f->next;
			else
				m->fo_head = f->next;
			if (f->next)
				f->next->prev = f->prev;
			else
				m->fo_tail = f->prev;
			hmap_del(&m->failovers, f->id);
			model_fo_free(f);
			m->nfo_done--;
		}
		f = next;
	}
}

int model_fo_restore(struct model *m, struct model_failover *f)
{
	if (hmap_get(&m->failovers, f->id) != NULL)
		return -1;
	if (hmap_put(&m->failovers, f->id, f) != 0)
		model_oom(m, "the failover map");
	f->next = NULL;
	f->prev = m->fo_tail;
	if (m->fo_tail)
		m->fo_tail->next = f;
	else
		m->fo_head = f;
	m->fo_tail = f;
	if (f->status != FO_IN_PROGRESS)
		m->nfo_done++;
	return 0;
}

static void finish(struct model *m, const struct entry *e, struct model_failover *f, struct proj_batch *out)
{
	bool failed = f->error != NULL;
	for (size_t i = 0; i < f->nmoved && !failed; i++)
		failed = f->assign[i].step == FO_START_FAILED;
	f->status = failed ? FO_FAILED : FO_COMPLETED;
	f->finished_ms = e->at_ms;
	if (failed && f->error == NULL)
		f->error = model_need(m, strdup("failover failed: a replacement did not start"), "a failover");
	m->nfo_done++;
	if (m->applying_at_ms >= m->count_since_ms) {
		m->fo_finished[f->status]++;
		durhist_add(&m->fo_duration, (f->finished_ms - f->detected_ms) * 1000);
	}
	model_event(m, out, e, failed ? "failover.failed" : "failover.completed", "failover", f->id,
		    model_need(m,
			       json_pack("{s:s,s:I,s:I,s:s?}", "node_id", f->node, "moved", (json_int_t)f->nmoved,
					 "downtime_ms", (json_int_t)(f->finished_ms - f->detected_ms), "error", f->error),
			       "an event"));
	trim(m);
}

void model_fo_start_done(struct model *m, const struct entry *e, const struct model_command *c, bool ok,
			 struct proj_batch *out)
{
	/* Failovers in progress are few; the newest that moved this replica there. */
	for (struct model_failover *f = m->fo_tail; f; f = f->prev) {
		if (f->status != FO_IN_PROGRESS)
			continue;
		for (size_t i = 0; i < f->nmoved; i++) {
			struct model_fo_assign *a = &f->assign[i];
			if (a->step != FO_WAITING || a->instance != c->instance || strcmp(a->actor_id, c->actor_id) != 0 ||
			    strcmp(a->to_node, c->node) != 0)
				continue;
			a->step = ok ? FO_RUNNING : FO_START_FAILED;
			if (--f->waiting == 0)
				finish(m, e, f, out);
			if (out)
				proj_failover(out, f);
			return;
		}
	}
}

/* A replica that an earlier failover sent to node n, which died before the
 * replica started there, is moved on by n's failover: the earlier one stops
 * waiting for it (it would wait for a dead node's ack forever). */
static void supersede(struct model *m, const struct entry *e, const char *actor_id, int64_t instance,
		      const struct model_node *n, struct proj_batch *out)
{
	for (struct model_failover *f = m->fo_tail; f; f = f->prev) {
		if (f->status != FO_IN_PROGRESS)
			continue;
		for (size_t i = 0; i < f->nmoved; i++) {
			struct model_fo_assign *a = &f->assign[i];
			if (a->step != FO_WAITING || a->instance != instance || strcmp(a->actor_id, actor_id) != 0 ||
			    strcmp(a->to_node, n->spec.id) != 0)
				continue;
			a->step = FO_SUPERSEDED;
			if (--f->waiting == 0)
				finish(m, e, f, out);
			if (out)
				proj_failover(out, f);
			return;
		}
	}
}

void model_fo_apply(struct model *m, struct entry *e, struct proj_batch *out, struct apply_result *res)
{
	struct model_node *n = model_node_get(m, e->target ? e->target : "");
	res_id_set(res, e->target);
	if (n == NULL) {
		res->code = APPLY_NOT_FOUND;
		snprintf(res->message, sizeof(res->message), "node '%s' not found", e->target ? e->target : "");
		return;
	}
	if (n->status != NODE_UNHEALTHY) {
		res->code = APPLY_CONFLICT;
		snprintf(res->message, sizeof(res->message), "node '%s' is %s again: no failover", n->spec.id,
			 model_node_status_name(n->status));
		return;
	}
	/* Every move re-checked first, so the entry applies whole or not at all
	 * (moves are of distinct replicas on n; each to a node that fits, the
	 * capacity of the moves before it counted). */
	enum model_move_fail fail;
	char why[200];
	if (model_moves_apply(m, e->moves, e->nmoves, n, &fail, why, sizeof(why)) < e->nmoves) {
		res->code = APPLY_STALE;
		snprintf(res->message, sizeof(res->message), "failover plan of node '%s' is out of date%s%s", n->spec.id,
			 why[0] ? ": " : "", why);
		return;
	}
	char id[48];
	snprintf(id, sizeof(id), "f%llu", (unsigned long long)m->applying);
	struct model_failover *f = model_need(m, calloc(1, sizeof(*f)), "a failover");
	f->id = model_need(m, strdup(id), "a failover");
	f->node = model_need(m, strdup(n->spec.id), "a failover");
	f->nassign = e->nmoves + e->nunplaced;
	f->assign = model_need(m, calloc(f->nassign ? f->nassign : 1, sizeof(*f->assign)), "a failover");
	f->detected_ms = e->detected_ms > 0 && e->detected_ms <= e->at_ms ? e->detected_ms : e->at_ms;
	f->started_ms = e->at_ms;
	f->status = FO_IN_PROGRESS;
	for (size_t i = 0; i < e->nmoves; i++) {
		struct entry_move *mv = &e->moves[i];
		struct model_actor *a = model_actor_get(m, mv->actor_id);
		struct model_placement *p = &a->placements[mv->instance];
		model_mig_cancel(m, e, a, "its node failed", out);
		supersede(m, e, a->spec.id, mv->instance, n, out);
		p->state = PL_PENDING;
		a->generation++;
		a->updated_ms = e->at_ms;
		model_cmd_start(m, e, a, (size_t)mv->instance, out);
		model_cmd_stop(m, e, a->spec.id, a->generation, mv->instance, n->spec.id, "failover_fencing", out);
		if (out) { /* the row too: generation and updated_at changed */
			proj_actor(out, a);
			proj_placements(out, a);
		}
		struct model_fo_assign *as = &f->assign[f->nmoved++];
		as->actor_id = model_need(m, strdup(a->spec.id), "a failover");
		as->instance = mv->instance;
		as->to_node = model_need(m, strdup(mv->to_node), "a failover");
		as->step = FO_WAITING;
	}
	f->waiting = f->nmoved;
	size_t unplaced = 0;
	for (size_t i = 0; i < e->nunplaced; i++) {
		struct model_actor *a = model_actor_get(m, e->unplaced[i].actor_id);
		int64_t inst = e->unplaced[i].instance;
		if (a == NULL || inst < 0 || (size_t)inst >= a->nplacements || a->placements[inst].node != n)
			continue; /* gone or moved since: nothing to record */
		if (a->placements[inst].state != PL_FAILED) {
			a->placements[inst].state = PL_FAILED;
			if (out)
				proj_placements(out, a);
		}
		struct model_fo_assign *as = &f->assign[f->nmoved + unplaced++];
		as->actor_id = model_need(m, strdup(a->spec.id), "a failover");
		as->instance = inst;
		as->step = FO_START_FAILED;
	}
	f->nassign = f->nmoved + unplaced;
	if (unplaced > 0)
		f->error = model_need(m, strdup("failover failed: no healthy target"), "a failover");
	if (model_fo_restore(m, f) != 0)
		model_oom(m, "a failover id made twice");
	model_event(m, out, e, "failover.started", "failover", f->id,
		    model_need(m,
			       json_pack("{s:s,s:I,s:I}", "node_id", n->spec.id, "moved", (json_int_t)f->nmoved,
					 "unplaced", (json_int_t)unplaced),
			       "an event"));
	if (f->waiting == 0)
		finish(m, e, f, out);
	if (out)
		proj_failover(out, f);
	res_id_set(res, f->id);
}
