#include "ops.h"

#include "failover.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "cluster.h"
#include "jw.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "render.h"
#include "sched.h"
#include "store.h"
#include "violations.h"


void op_init(struct op *op, enum op_kind kind)
{
	memset(op, 0, sizeof(*op));
	op->kind = kind;
}

void op_release(struct op *op)
{
	entry_release(&op->entry);
	json_decref(op->result);
	op->result = NULL;
	json_decref(op->object);
	op->object = NULL;
	free(op->object_text);
	op->object_text = NULL;
}

void op_fail(struct op *op, int http_status, const char *code, const char *fmt, ...)
{
	va_list ap;
	op->http_status = http_status;
	snprintf(op->code, sizeof(op->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(op->message, sizeof(op->message), fmt, ap);
	va_end(ap);
}

/* Server-chosen ids: a prefix and 16 random hex digits. Loop thread only: the
 * random bytes come from a pool refilled 32 ids at a time (a getrandom call per
 * id was a syscall per created actor). */
static char *new_id(const char *prefix)
{
	static unsigned char pool[256];
	static size_t used = sizeof(pool);
	static const char hex[] = "0123456789abcdef";
	if (used + 8 > sizeof(pool)) {
		if (getrandom(pool, sizeof(pool), 0) != (ssize_t)sizeof(pool))
			return NULL;
		used = 0;
	}
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s-", prefix);
	if (n < 0 || (size_t)n + 17 > sizeof(buf))
		return NULL;
	for (int i = 0; i < 8; i++) {
		buf[n++] = hex[pool[used] >> 4];
		buf[n++] = hex[pool[used] & 15];
		used++;
	}
	buf[n] = '\0';
	return strdup(buf);
}

static void fail_apply(struct op *op, const struct apply_result *res)
{
	switch (res->code) {
	case APPLY_OK: break;
	case APPLY_NOT_FOUND: op_fail(op, 404, "not_found", "%s", res->message); break;
	case APPLY_EXISTS: op_fail(op, 409, "already_exists", "%s", res->message); break;
	case APPLY_CONFLICT:
	case APPLY_STALE: op_fail(op, 409, "conflict", "%s", res->message); break;
	case APPLY_INSUFFICIENT: op_fail(op, 409, "insufficient_resources", "%s", res->message); break;
	case APPLY_DENIED: op_fail(op, 403, "capability_denied", "%s", res->message); break;
	case APPLY_INVALID: op_fail(op, 422, "invalid_request", "%s", res->message); break;
	case APPLY_KEY_REUSED: op_fail(op, 422, "idempotency_key_reused", "%s", res->message); break;
	case APPLY_DUPLICATE: break; /* answered as the first request was (leader.c) */
	}
}

static void clear_plan(struct entry *e)
{
	for (size_t i = 0; i < e->nplacements; i++)
		free(e->placements[i]);
	free(e->placements);
	e->placements = NULL;
	e->nplacements = 0;
	free(e->rr_cursor);
	e->rr_cursor = NULL;
	for (size_t i = 0; i < e->nmoves; i++) {
		free(e->moves[i].actor_id);
		free(e->moves[i].to_node);
	}
	free(e->moves);
	e->moves = NULL;
	e->nmoves = 0;
	for (size_t i = 0; i < e->nunplaced; i++)
		free(e->unplaced[i].actor_id);
	free(e->unplaced);
	e->unplaced = NULL;
	e->nunplaced = 0;
}

/* Copies a plan's choices into the entry. */
static int plan_to_entry(struct entry *e, const struct sched_choice *c, size_t n, const char *cursor)
{
	if (n > 0 && (e->placements = calloc(n, sizeof(char *))) == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((e->placements[i] = strdup(c[i].node->spec.id)) == NULL)
			return -1;
		e->nplacements++;
	}
	if (cursor[0] && (e->rr_cursor = strdup(cursor)) == NULL)
		return -1;
	return 0;
}

/* sched_place for a write's plan, timed and counted for /metrics
 * (lattice_placements_total, lattice_placement_duration_seconds). */
static int place(struct loop *l, const struct sched_request *req, struct sched_choice *out, char *cursor)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = sched_place(&l->model, req, out, cursor);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	durhist_add(&l->stats.place, (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	if (rc == SCHED_OK)
		l->stats.placed += req->count > 0 ? (uint64_t)req->count : 1;
	else if (rc == SCHED_INSUFFICIENT)
		l->stats.place_refused++;
	return rc;
}

static int plan_actor_create(struct loop *l, struct op *op)
{
	struct actor_spec *s = &op->entry.actor;
	if (s->id == NULL && (s->id = new_id("act")) == NULL)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	if (s->name == NULL && (s->name = strdup(s->id)) == NULL)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	snprintf(op->id, sizeof(op->id), "%s", s->id);
	if (model_actor_get(&l->model, s->id) != NULL)
		return op_fail(op, 409, "already_exists", "actor '%s' already exists", s->id), -1;
	struct sched_request req;
	sched_request_for(s, &s->contracts, &req);
	req.count = s->replicas;
	struct sched_choice *c = calloc((size_t)s->replicas, sizeof(*c));
	char cursor[SPEC_ID_MAX + 1] = "";
	if (c == NULL)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	int rc = place(l, &req, c, cursor);
	if (rc == SCHED_INSUFFICIENT) {
		free(c);
		return op_fail(op, 409, "insufficient_resources", "actor scale failed: insufficient resources"), -1;
	}
	if (rc != SCHED_OK || plan_to_entry(&op->entry, c, (size_t)s->replicas, cursor) != 0) {
		free(c);
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	}
	free(c);
	return 0;
}

/* Returns 0 with the plan in op->entry, 1 when the patch changes nothing, or -1
 * with op failed. */
static int plan_actor_patch(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct model_actor *a = model_actor_get(m, op->target);
	snprintf(op->id, sizeof(op->id), "%s", op->target);
	if (a == NULL)
		return op_fail(op, 404, "not_found", "actor '%s' not found", op->target), -1;
	const struct actor_patch *p = &op->entry.patch;
	int64_t ocpu = a->spec.cpu_required, omem = a->spec.memory_required_mb;
	int64_t ncpu = p->has_cpu_required ? p->cpu_required : ocpu;
	int64_t nmem = p->has_memory_required_mb ? p->memory_required_mb : omem;
	size_t nrep = p->has_replicas ? (size_t)p->replicas : a->nplacements;
	size_t keep = nrep < a->nplacements ? nrep : a->nplacements, add = nrep - keep;
	if (ncpu == ocpu && nmem == omem && nrep == a->nplacements)
		return 1; /* nothing to change */
	/* Simulate what apply will do — release, then re-add kept replicas with the
	 * new request — plan the new ones on that state, and undo the simulation. */
	for (size_t i = 0; i < a->nplacements; i++)
		model_node_account(m, a->placements[i].node, ocpu, omem, -1);
	size_t k = 0;
	int rc = 0;
	for (; k < keep; k++) {
		struct model_node *n = a->placements[k].node;
		if ((ncpu != ocpu || nmem != omem) && !model_node_has_room(n, ncpu, nmem)) {
			op_fail(op, 409, "insufficient_resources",
				"actor scale failed: insufficient resources (node '%s' has no room for %lld "
				"millicores and %lld MiB)",
				n->spec.id, (long long)ncpu, (long long)nmem);
			rc = -1;
			break;
		}
		model_node_account(m, n, ncpu, nmem, +1);
	}
	if (rc == 0 && add > 0) {
		struct strlist contracts;
		struct model_node **holding = calloc(keep ? keep : 1, sizeof(*holding));
		struct sched_choice *c = calloc(add, sizeof(*c));
		char cursor[SPEC_ID_MAX + 1] = "";
		if (holding == NULL || c == NULL || model_actor_contracts(m, a, &contracts) != 0) {
			op_fail(op, 503, "out_of_memory", "out of memory");
			rc = -1;
		} else {
			for (size_t i = 0; i < keep; i++)
				holding[i] = a->placements[i].node;
			struct actor_spec tmp = a->spec;
			tmp.cpu_required = ncpu;
			tmp.memory_required_mb = nmem;
			struct sched_request req;
			sched_request_for(&tmp, &contracts, &req);
			req.count = (int64_t)add;
			req.holding = holding;
			req.nholding = keep;
			int src = place(l, &req, c, cursor);
			if (src == SCHED_INSUFFICIENT) {
				op_fail(op, 409, "insufficient_resources", "actor scale failed: insufficient resources");
				rc = -1;
			} else if (src != SCHED_OK || plan_to_entry(&op->entry, c, add, cursor) != 0) {
				op_fail(op, 503, "out_of_memory", "out of memory");
				rc = -1;
			}
			strlist_free(&contracts);
		}
		free(holding);
		free(c);
	}
	while (k-- > 0)
		model_node_account(m, a->placements[k].node, ncpu, nmem, -1);
	for (size_t i = 0; i < a->nplacements; i++)
		model_node_account(m, a->placements[i].node, ocpu, omem, +1);
	return rc;
}

/* Plans where each replica on the node goes; those with nowhere to go stay. */
static int plan_drain(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct model_node *n = model_node_get(m, op->target);
	snprintf(op->id, sizeof(op->id), "%s", op->target);
	if (n == NULL)
		return op_fail(op, 404, "not_found", "node '%s' not found", op->target), -1;
	bool was_cordoned = n->cordoned, was_draining = n->draining;
	n->cordoned = n->draining = true;
	sched_index_update(&m->sched, n);
	json_t *moved = json_array(), *stuck = json_array();
	struct entry *e = &op->entry;
	size_t cap = (size_t)n->nplacements;
	e->moves = calloc(cap ? cap : 1, sizeof(*e->moves));
	struct model_node **taken = calloc(cap ? cap : 1, sizeof(*taken));
	int64_t *tcpu = calloc(cap ? cap : 1, sizeof(*tcpu)), *tmem = calloc(cap ? cap : 1, sizeof(*tmem));
	int rc = 0;
	if (e->moves == NULL || taken == NULL || tcpu == NULL || tmem == NULL || moved == NULL || stuck == NULL) {
		op_fail(op, 503, "out_of_memory", "out of memory");
		rc = -1;
	}
	/* Actors in id order so the plan does not depend on hash order. */
	size_t na = 0, pos = 0;
	struct model_actor **actors = rc == 0 ? calloc(m->actors.n ? m->actors.n : 1, sizeof(*actors)) : NULL;
	struct model_actor *a;
	while (actors && (a = hmap_next(&m->actors, &pos)) != NULL)
		for (size_t i = 0; i < a->nplacements; i++)
			if (a->placements[i].node == n) {
				actors[na++] = a;
				break;
			}
	for (size_t i = 1; i < na; i++)
		for (size_t j = i; j > 0 && strcmp(actors[j - 1]->spec.id, actors[j]->spec.id) > 0; j--) {
			struct model_actor *t = actors[j];
			actors[j] = actors[j - 1];
			actors[j - 1] = t;
		}
	size_t ntaken = 0;
	struct model_node **moved_to = NULL;
	for (size_t ai = 0; rc == 0 && ai < na; ai++) {
		a = actors[ai];
		struct strlist contracts;
		if (model_actor_contracts(m, a, &contracts) != 0) {
			op_fail(op, 503, "out_of_memory", "out of memory");
			rc = -1;
			break;
		}
		/* Where this drain already sent replicas of a (they hold one now). */
		free(moved_to);
		moved_to = calloc(a->nplacements ? a->nplacements : 1, sizeof(*moved_to));
		if (moved_to == NULL) {
			strlist_free(&contracts);
			op_fail(op, 503, "out_of_memory", "out of memory");
			rc = -1;
			break;
		}
		size_t nmoved = 0;
		for (size_t i = 0; i < a->nplacements; i++) {
			if (a->placements[i].node != n)
				continue;
			struct model_node *holding[2 * a->nplacements];
			size_t nh = 0;
			for (size_t h = 0; h < a->nplacements; h++)
				if (a->placements[h].node != n)
					holding[nh++] = a->placements[h].node;
			for (size_t h = 0; h < nmoved; h++)
				holding[nh++] = moved_to[h];
			struct sched_request req;
			sched_request_for(&a->spec, &contracts, &req);
			req.holding = holding;
			req.nholding = nh;
			struct sched_choice c;
			char cursor[SPEC_ID_MAX + 1] = "";
			if (place(l, &req, &c, cursor) != SCHED_OK) {
				json_array_append_new(stuck, json_pack("{s:s,s:I}", "actor_id", a->spec.id, "instance",
								       (json_int_t)i));
				continue;
			}
			struct entry_move *mv = &e->moves[e->nmoves++];
			mv->actor_id = strdup(a->spec.id);
			mv->instance = (int64_t)i;
			mv->to_node = strdup(c.node->spec.id);
			json_array_append_new(moved, json_pack("{s:s,s:I,s:s}", "actor_id", a->spec.id, "instance",
							       (json_int_t)i, "to_node", c.node->spec.id));
			/* Later moves see the capacity this one takes. */
			model_node_account(m, c.node, a->spec.cpu_required, a->spec.memory_required_mb, +1);
			taken[ntaken] = c.node;
			tcpu[ntaken] = a->spec.cpu_required;
			tmem[ntaken++] = a->spec.memory_required_mb;
			moved_to[nmoved++] = c.node;
		}
		strlist_free(&contracts);
	}
	free(moved_to);
	while (ntaken-- > 0)
		model_node_account(m, taken[ntaken], tcpu[ntaken], tmem[ntaken], -1);
	n->cordoned = was_cordoned;
	n->draining = was_draining;
	sched_index_update(&m->sched, n);
	free(actors);
	free(taken);
	free(tcpu);
	free(tmem);
	if (rc == 0) {
		json_decref(op->result);
		op->result = json_pack("{s:o,s:o}", "moved", moved, "unmoved", stuck);
	} else {
		json_decref(moved);
		json_decref(stuck);
	}
	return rc;
}

/* Where replica op->migrate_instance of actor op->target goes: the node asked
 * for (it must be a candidate) or the scheduler's choice among the nodes that
 * hold no replica of it. */
static int plan_migrate(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct entry *e = &op->entry;
	snprintf(op->id, sizeof(op->id), "%s", op->target);
	struct model_actor *a = model_actor_get(m, op->target);
	if (a == NULL)
		return op_fail(op, 404, "not_found", "actor '%s' not found", op->target), -1;
	int64_t inst = op->migrate_instance;
	if (inst < 0 || (size_t)inst >= a->nplacements)
		return op_fail(op, 400, "invalid_field", "actor '%s' has %zu replicas: instance must be 0 to %zu",
			       a->spec.id, a->nplacements, a->nplacements ? a->nplacements - 1 : 0),
		       -1;
	if (a->mig)
		return op_fail(op, 409, "conflict", "actor '%s' is already migrating (%s, from %s to %s)", a->spec.id,
			       a->mig->id, a->mig->from->spec.id, a->mig->to->spec.id),
		       -1;
	struct model_placement *p = &a->placements[inst];
	if (p->state != PL_RUNNING)
		return op_fail(op, 409, "conflict",
			       "actor '%s' instance %lld is %s on %s: only a running actor migrates", a->spec.id,
			       (long long)inst, model_placement_state_name(p->state), p->node->spec.id),
		       -1;
	struct strlist contracts;
	if (model_actor_contracts(m, a, &contracts) != 0)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	struct sched_request req;
	sched_request_for(&a->spec, &contracts, &req);
	struct model_node *holding[a->nplacements + 1];
	for (size_t i = 0; i < a->nplacements; i++)
		holding[i] = a->placements[i].node;
	req.holding = holding;
	req.nholding = a->nplacements;
	struct model_node *to = NULL;
	char why[SCHED_REASON_MAX] = "";
	int rc = 0;
	if (op->migrate_to[0]) {
		to = model_node_get(m, op->migrate_to);
		if (to == NULL) {
			op_fail(op, 404, "not_found", "node '%s' not found", op->migrate_to);
			rc = -1;
		} else if (to == p->node) {
			op_fail(op, 409, "conflict", "actor '%s' instance %lld already runs on %s", a->spec.id,
				(long long)inst, to->spec.id);
			rc = -1;
		} else if (!sched_check(m, &req, to, why, sizeof(why))) {
			op_fail(op, 409, "insufficient_resources", "actor migrate failed: node '%s' cannot take it: %s",
				to->spec.id, why);
			rc = -1;
		}
	} else {
		/* Anywhere but the nodes that hold it (the source first of all). */
		bool cordoned = p->node->cordoned;
		p->node->cordoned = true;
		sched_index_update(&m->sched, p->node);
		struct sched_choice c;
		char cursor[SPEC_ID_MAX + 1] = "";
		if (place(l, &req, &c, cursor) == SCHED_OK)
			to = c.node;
		p->node->cordoned = cordoned;
		sched_index_update(&m->sched, p->node);
		if (to == NULL) {
			op_fail(op, 409, "insufficient_resources",
				"actor migrate failed: insufficient resources (no other node can take actor '%s')",
				a->spec.id);
			rc = -1;
		}
	}
	strlist_free(&contracts);
	if (rc != 0)
		return -1;
	if ((e->moves = calloc(1, sizeof(*e->moves))) == NULL || (e->moves[0].actor_id = strdup(a->spec.id)) == NULL ||
	    (e->moves[0].to_node = strdup(to->spec.id)) == NULL) {
		op_fail(op, 503, "out_of_memory", "out of memory");
		return -1;
	}
	e->moves[0].instance = inst;
	e->nmoves = 1;
	return 0;
}

/* A policy's drift as api_policies (schema/005) shows it: the nodes it covers,
 * and those whose applied version is behind, in id order. */
static json_t *policy_drift(const struct model *m, const struct model_policy *p)
{
	size_t covered = 0, nb = 0, pos = 0;
	const struct model_node **behind = calloc(m->nodes.n + 1, sizeof(*behind));
	const struct model_node *n;
	while (behind && (n = hmap_next(&m->nodes, &pos)) != NULL) {
		bool covers = false;
		for (size_t i = 0; i < n->npolicies && !covers; i++)
			covers = n->policies[i] == p;
		if (!covers)
			continue;
		covered++;
		if (n->policy_version < n->policy_target)
			behind[nb++] = n;
	}
	for (size_t i = 1; i < nb; i++)
		for (size_t j = i; j > 0 && strcmp(behind[j - 1]->spec.id, behind[j]->spec.id) > 0; j--) {
			const struct model_node *t = behind[j];
			behind[j] = behind[j - 1];
			behind[j - 1] = t;
		}
	json_t *list = json_array();
	for (size_t i = 0; list && i < nb; i++)
		json_array_append_new(list, json_pack("{s:s,s:I,s:I}", "node_id", behind[i]->spec.id, "policy_version",
						      (json_int_t)behind[i]->policy_version, "policy_target",
						      (json_int_t)behind[i]->policy_target));
	free(behind);
	return json_pack("{s:I,s:o}", "nodes_covered", (json_int_t)covered, "nodes_behind", list ? list : json_array());
}

static json_t *render_written(struct loop *l, const struct op *op)
{
	struct model *m = &l->model;
	switch (op->kind) {
	case OP_NODE_CREATE:
	case OP_NODE_CORDON:
	case OP_NODE_UNCORDON:
	case OP_NODE_DRAIN: {
		const struct model_node *n = model_node_get(m, op->id);
		return n ? render_node(n) : NULL;
	}
	case OP_ACTOR_CREATE:
	case OP_ACTOR_PATCH:
		return NULL; /* as text: render_written_text */
	case OP_PROVIDER_CREATE: {
		const struct model_provider *p = hmap_get(&m->providers, op->id);
		return p ? render_provider(p) : NULL;
	}
	case OP_LINK_CREATE: {
		const struct model_link *k = hmap_get(&m->links, op->id);
		return k ? render_link(k) : NULL;
	}
	case OP_POLICY_CREATE:
	case OP_POLICY_UPDATE: {
		const struct model_policy *p = hmap_get(&m->policies, op->id);
		json_t *o = p ? render_policy(p) : NULL;
		if (o && json_object_set_new(o, "drift", policy_drift(m, p)) != 0) {
			json_decref(o);
			o = NULL;
		}
		return o;
	}
	default:
		return NULL;
	}
}

void ops_written(struct loop *l, struct op *op)
{
	json_decref(op->object);
	free(op->object_text);
	op->object = render_written(l, op);
	op->object_text = NULL;
	if (op->kind == OP_ACTOR_CREATE || op->kind == OP_ACTOR_PATCH || op->kind == OP_ACTOR_MIGRATE) {
		const struct model_actor *a = model_actor_get(&l->model, op->id);
		op->object_text = a ? render_actor_text(a) : NULL;
	} else if (op->kind == OP_MEMBER_ADD || op->kind == OP_MEMBER_REMOVE) {
		op->object_text = cluster_render(l);
	}
}

void ops_refused(struct op *op, const struct apply_result *res)
{
	fail_apply(op, res);
}

void ops_replan(struct op *op)
{
	clear_plan(&op->entry);
}

/* A patch that changes nothing: no log entry, so no generation bump and no event.
 * The answer is the actor as the model holds it, given once PostgreSQL shows the
 * model (the applied index), so X-Lattice-Index reads it back as answered. */
static void answer_unchanged(struct loop *l, struct op *op)
{
	const struct model_actor *a = model_actor_get(&l->model, op->id);
	json_decref(op->object);
	op->object = NULL;
	free(op->object_text);
	op->object_text = a ? render_actor_text(a) : NULL; /* NULL: read back from PostgreSQL */
	op->index = raft_last_applied(&l->raft); /* entries without rows count (loop.h) */
	log_debug("%s %s: nothing to change", entry_op_name(op->entry.op), op->id);
}

bool ops_is_write(enum op_kind k)
{
	return k != OP_PLAN && k != OP_CLUSTER && k != OP_WAIT && k != OP_READ_BARRIER && k != OP_READ_INDEX &&
	       k != OP_FAILOVER_PLAN && k != OP_POLICY_VIOLATIONS;
}

void ops_answer_local(struct loop *l, struct op *op)
{
	struct entry *e = &op->entry;
	if (op->kind == OP_CLUSTER) {
		op->object_text = cluster_render(l);
	} else if (op->kind == OP_FAILOVER_PLAN) {
		if (failover_dry_run(l, op))
			return;
	} else if (op->kind == OP_POLICY_VIOLATIONS) {
		if (violations_render(&l->model, op->target, op->plan.limit, &op->object_text) == -1) {
			op_fail(op, 404, "not_found", "policy '%s' not found", op->target);
			return;
		}
	} else {
		/* OP_PLAN. Written straight to text: the answer is bounded (a page of
		 * the node list at most), and a jansson tree of it was most of the cost. */
		struct sched_request req;
		struct jw w;
		sched_request_for(&e->actor, &e->actor.contracts, &req);
		req.count = e->actor.replicas;
		jw_init(&w);
		if (sched_explain(&l->model, &req, &op->plan, &w) == 0)
			op->object_text = jw_take(&w, NULL);
		jw_free(&w);
	}
	if (op->object_text == NULL)
		op_fail(op, 503, "out_of_memory", "out of memory");
}

/* A retry of a keyed request applied before: answered as the first one was,
 * with the object as it is now. Returns OPS_PLANNED when the key is new. */
static enum ops_plan plan_idempotent(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	const struct entry *e = &op->entry;
	const struct model_idem *r = model_idem_get(m, e->idem_key);
	if (r == NULL || r->at_ms < model_entry_time(m, loop_wallclock_ms()) - MODEL_IDEM_WINDOW_MS)
		return OPS_PLANNED;
	if (r->fp != e->idem_fp) {
		op_fail(op, 422, "idempotency_key_reused",
			"Idempotency-Key '%s' was used for another request (at index %llu); use a new key", e->idem_key,
			(unsigned long long)r->index);
		return OPS_REFUSED;
	}
	snprintf(op->id, sizeof(op->id), "%s", r->id);
	op->index = r->index;
	ops_written(l, op);
	if (op->object == NULL && op->object_text == NULL && op->kind != OP_NODE_DRAIN) {
		op_fail(op, 409, "conflict",
			"the request with Idempotency-Key '%s' was applied at index %llu (object '%s'), which has "
			"since been deleted",
			e->idem_key, (unsigned long long)r->index, r->id);
		return OPS_REFUSED;
	}
	log_debug("%s: Idempotency-Key '%s' seen at index %llu: answered as then", op->id, e->idem_key,
		  (unsigned long long)r->index);
	return OPS_UNCHANGED;
}

enum ops_plan ops_plan(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct entry *e = &op->entry;
	if (e->idem_key) {
		enum ops_plan rc = plan_idempotent(l, op);
		if (rc != OPS_PLANNED)
			return rc;
	}
	switch (op->kind) {
	case OP_NODE_CREATE:
		e->op = ENTRY_NODE_PUT;
		snprintf(op->id, sizeof(op->id), "%s", e->node.id);
		if (model_node_get(m, e->node.id) != NULL) {
			op_fail(op, 409, "already_exists", "node '%s' already exists", e->node.id);
			return OPS_REFUSED;
		}
		break;
	case OP_NODE_PROFILE:
		/* A new node registers; a known one keeps its base load. */
		e->op = ENTRY_NODE_PUT;
		snprintf(op->id, sizeof(op->id), "%s", e->node.id);
		{
			const struct model_node *n = model_node_get(m, e->node.id);
			if (n != NULL) {
				e->flag = 1;
				e->node.cpu_used = n->spec.cpu_used;
				e->node.memory_used_mb = n->spec.memory_used_mb;
				e->node.actor_count = n->spec.actor_count;
			}
		}
		break;
	case OP_NODE_REPORT: e->op = ENTRY_NODE_REPORT; break;
	case OP_COMMAND_UPDATE: e->op = ENTRY_COMMAND_UPDATE; break;
	case OP_SNAPSHOT_PUT: e->op = ENTRY_SNAPSHOT_PUT; break;
	case OP_RECONCILE: e->op = ENTRY_RECONCILE; break;
	case OP_ACTOR_MIGRATE:
		e->op = ENTRY_ACTOR_MIGRATE;
		if (plan_migrate(l, op) != 0)
			return OPS_REFUSED;
		break;
	case OP_FAILOVER:
		e->op = ENTRY_FAILOVER;
		if (failover_plan(l, op) != 0)
			return OPS_REFUSED;
		break;
	case OP_NODE_CORDON:
	case OP_NODE_UNCORDON:
		e->op = ENTRY_NODE_FLAGS;
		e->flag = op->kind == OP_NODE_CORDON;
		break;
	case OP_NODE_DRAIN:
		e->op = ENTRY_NODE_DRAIN;
		if (plan_drain(l, op) != 0)
			return OPS_REFUSED;
		break;
	case OP_NODE_DELETE: e->op = ENTRY_NODE_DELETE; break;
	case OP_ACTOR_CREATE:
		e->op = ENTRY_ACTOR_CREATE;
		if (plan_actor_create(l, op) != 0)
			return OPS_REFUSED;
		break;
	case OP_ACTOR_PATCH: {
		e->op = ENTRY_ACTOR_UPDATE;
		e->flag = ENTRY_UPDATE_KEEP_UNCHANGED;
		int prc = plan_actor_patch(l, op);
		if (prc < 0)
			return OPS_REFUSED;
		if (prc > 0) {
			answer_unchanged(l, op);
			return OPS_UNCHANGED;
		}
		break;
	}
	case OP_ACTOR_DELETE: e->op = ENTRY_ACTOR_DELETE; break;
	case OP_PROVIDER_CREATE:
		e->op = ENTRY_PROVIDER_CREATE;
		if (e->provider.id == NULL)
			e->provider.id = new_id("prv");
		break;
	case OP_PROVIDER_DELETE: e->op = ENTRY_PROVIDER_DELETE; break;
	case OP_LINK_CREATE:
		e->op = ENTRY_LINK_CREATE;
		if (e->link.id == NULL)
			e->link.id = new_id("lnk");
		break;
	case OP_LINK_DELETE: e->op = ENTRY_LINK_DELETE; break;
	case OP_POLICY_CREATE:
		e->op = ENTRY_POLICY_PUT;
		e->flag = 1;
		if (e->policy.policy_id == NULL)
			e->policy.policy_id = new_id("pol");
		break;
	case OP_POLICY_UPDATE:
		e->op = ENTRY_POLICY_PUT;
		e->flag = 0;
		free(e->policy.policy_id);
		e->policy.policy_id = strdup(op->target);
		break;
	default: /* not a write that plans */
		op_fail(op, 500, "internal", "op kind %d has no plan", (int)op->kind);
		return OPS_REFUSED;
	}
	if (op->target[0] && e->target == NULL)
		e->target = strdup(op->target);
	return OPS_PLANNED;
}
