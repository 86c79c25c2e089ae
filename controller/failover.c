#include "failover.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evac.h"
#include "jw.h"
#include "leader.h"
#include "log.h"
#include "loop.h"
#include "model.h"
#include "ops.h"

/* This leader's attempts at one node. */
struct fo_node {
	char *id;
	bool inflight;
	int64_t next_ms; /* no attempt before */
};

struct fo_region {
	char *name;
	int64_t last_ms; /* the last failover proposed there */
	size_t nodes, unhealthy; /* this scan's census */
};

/* A node with replicas none of which has a home is looked at again this often
 * (capacity may have appeared). */
#define FO_RETRY_MS 2000
#define FO_SCAN_MS 100

void failover_init(struct failover *f, struct loop *l)
{
	memset(f, 0, sizeof(*f));
	f->loop = l;
	hmap_init(&f->nodes);
	hmap_init(&f->regions);
}

/* Both maps hold structs whose first member is their key, owned: one helper
 * makes their entries and one frees them. */
_Static_assert(offsetof(struct fo_node, id) == 0, "a fo_node begins with its key");
_Static_assert(offsetof(struct fo_region, name) == 0, "a fo_region begins with its key");

/* The entry of h for key, made (zeroed but for its copy of key) when missing.
 * NULL when out of memory. */
static void *keyed_get(struct hmap *h, const char *key, size_t size)
{
	char **k = hmap_get(h, key);
	if (k)
		return k;
	k = calloc(1, size);
	if (k == NULL || (*k = strdup(key)) == NULL || hmap_put(h, *k, k) != 0) {
		if (k)
			free(*k);
		free(k);
		return NULL;
	}
	return k;
}

static void keyed_clear(struct hmap *h)
{
	size_t pos = 0;
	char **k;
	while ((k = hmap_next(h, &pos)) != NULL) {
		free(*k);
		free(k);
	}
	hmap_release(h);
	hmap_init(h);
}

static void forget(struct failover *f)
{
	keyed_clear(&f->nodes);
	keyed_clear(&f->regions);
	f->lattice_last_ms = 0;
}

void failover_release(struct failover *f)
{
	forget(f);
	hmap_release(&f->nodes);
	hmap_release(&f->regions);
}

static struct fo_region *region(struct failover *f, const char *name)
{
	return keyed_get(&f->regions, name, sizeof(struct fo_region));
}

static struct fo_node *node_state(struct failover *f, const char *id)
{
	return keyed_get(&f->nodes, id, sizeof(struct fo_node));
}

/* ---- the failover op -------------------------------------------------------------------- */

struct fo_op {
	struct op op;
	struct failover *f;
	char node[SPEC_ID_MAX + 1];
};

static void op_done(struct op *op)
{
	struct fo_op *fo = (struct fo_op *)op;
	fo->f->inflight = false;
	fo->f->next_scan_ms = 0; /* the next node's failover now, not at the next scan */
	struct fo_node *n = hmap_get(&fo->f->nodes, fo->node);
	if (n) {
		n->inflight = false;
		if (op->http_status != 0)
			n->next_ms = loop_now_ms() + FO_RETRY_MS;
	}
	if (op->http_status != 0 && strcmp(op->code, "nothing_to_move") != 0)
		log_warn("failover of node %s: %s", fo->node, op->message);
	else if (op->http_status == 0)
		log_info("failover %s of node %s committed at index %llu", op->id, fo->node,
			 (unsigned long long)op->index);
	op_release(op);
	free(fo);
}

int failover_plan(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct entry *e = &op->entry;
	struct model_node *n = model_node_get(m, op->target);
	snprintf(op->id, sizeof(op->id), "%s", op->target);
	if (n == NULL)
		return op_fail(op, 404, "not_found", "node '%s' not found", op->target), -1;
	if (n->status != NODE_UNHEALTHY)
		return op_fail(op, 409, "nothing_to_move", "node '%s' is %s", n->spec.id,
			       model_node_status_name(n->status)),
		       -1;
	struct evac_plan p;
	if (evac_plan(m, n, EVAC_BY_PRIORITY, &p) != 0)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	/* Only what changes something: moves, or replicas not yet recorded as
	 * having no home. */
	size_t fresh = 0;
	for (size_t i = 0; i < p.n; i++)
		if (p.items[i].to == NULL && p.items[i].actor->placements[p.items[i].instance].state != PL_FAILED)
			fresh++;
	if (p.moved == 0 && fresh == 0) {
		evac_plan_free(&p);
		return op_fail(op, 409, "nothing_to_move", "node '%s': no replica has a home yet", n->spec.id), -1;
	}
	e->moves = calloc(p.moved ? p.moved : 1, sizeof(*e->moves));
	e->unplaced = calloc(p.n - p.moved ? p.n - p.moved : 1, sizeof(*e->unplaced));
	bool oom = e->moves == NULL || e->unplaced == NULL;
	for (size_t i = 0; i < p.n && !oom; i++) {
		struct evac_item *it = &p.items[i];
		struct entry_move *mv = it->to ? &e->moves[e->nmoves++] : &e->unplaced[e->nunplaced++];
		mv->actor_id = strdup(it->actor->spec.id);
		mv->instance = (int64_t)it->instance;
		mv->to_node = it->to ? strdup(it->to->spec.id) : NULL;
		oom = mv->actor_id == NULL || (it->to && mv->to_node == NULL);
	}
	evac_plan_free(&p);
	if (oom)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	/* When it turned unhealthy: its record's last change, the status change. */
	e->detected_ms = n->updated_ms;
	if (e->target == NULL)
		e->target = strdup(n->spec.id);
	if (e->target == NULL)
		return op_fail(op, 503, "out_of_memory", "out of memory"), -1;
	return 0;
}

/* Is a failover in region r (and in the lattice) allowed now? */
static bool allowed(struct failover *f, struct fo_region *r, size_t total, size_t unhealthy, int64_t now)
{
	bool lattice = total >= FO_DISRUPTION_MIN_NODES && unhealthy * 100 >= total * FO_DISRUPTION_PCT;
	bool regional = r && r->nodes >= FO_DISRUPTION_MIN_NODES && r->unhealthy * 100 >= r->nodes * FO_DISRUPTION_PCT;
	bool ok = !(lattice && now - f->lattice_last_ms < FO_LATTICE_INTERVAL_MS) &&
		  !(regional && now - r->last_ms < FO_REGION_INTERVAL_MS);
	if (!ok) {
		f->limited++;
		if (now >= f->next_limit_log_ms) {
			f->next_limit_log_ms = now + 10000;
			if (lattice)
				log_warn("failovers rate-limited: %zu of %zu nodes are unhealthy (>= %d%%): this leader "
					 "may be the one cut off; one failover per %d s",
					 unhealthy, total, FO_DISRUPTION_PCT, FO_LATTICE_INTERVAL_MS / 1000);
			else
				log_warn("failovers in region %s rate-limited: %zu of %zu nodes are unhealthy (>= %d%%); "
					 "one failover per %d s",
					 r->name, r->unhealthy, r->nodes, FO_DISRUPTION_PCT, FO_REGION_INTERVAL_MS / 1000);
		}
	}
	return ok;
}

void failover_tick(struct failover *f, int64_t now)
{
	struct loop *l = f->loop;
	bool leading = leader_writable(l) && !l->closing;
	if (leading != f->leading) {
		f->leading = leading;
		forget(f);
	}
	if (!leading || now < f->next_scan_ms || f->inflight)
		return;
	f->next_scan_ms = now + FO_SCAN_MS;
	const struct model *m = &l->model;
	/* Census: nodes and unhealthy ones, per region and in all. */
	size_t pos = 0, total = 0, unhealthy = 0;
	struct fo_region *r;
	while ((r = hmap_next(&f->regions, &pos)) != NULL)
		r->nodes = r->unhealthy = 0;
	pos = 0;
	const struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		bool down = n->status == NODE_UNHEALTHY;
		total++;
		unhealthy += down;
		if ((r = region(f, n->spec.region)) != NULL) {
			r->nodes++;
			r->unhealthy += down;
		}
	}
	if (unhealthy == 0)
		return;
	pos = 0;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		if (n->status != NODE_UNHEALTHY || n->nplacements == 0)
			continue;
		struct fo_node *st = node_state(f, n->spec.id);
		if (st == NULL || st->inflight || now < st->next_ms)
			continue;
		r = hmap_get(&f->regions, n->spec.region);
		if (!allowed(f, r, total, unhealthy, now))
			continue;
		struct fo_op *fo = calloc(1, sizeof(*fo));
		char *who = strdup("failover");
		if (fo == NULL || who == NULL) {
			free(fo);
			free(who);
			return;
		}
		op_init(&fo->op, OP_FAILOVER);
		fo->f = f;
		snprintf(fo->node, sizeof(fo->node), "%s", n->spec.id);
		snprintf(fo->op.target, sizeof(fo->op.target), "%s", n->spec.id);
		fo->op.internal = true;
		fo->op.deadline_ms = now + l->cfg->write_timeout_ms;
		fo->op.done = op_done;
		fo->op.entry.who = who;
		st->inflight = true;
		f->inflight = true;
		if (r)
			r->last_ms = now;
		f->lattice_last_ms = now;
		f->proposed++;
		loop_submit(l, &fo->op);
		return; /* the next one is planned once this one is applied */
	}
}

/* Opens a dry run's entry for one replica with the keys a move and a replica
 * with no home share. */
static void item_open(struct jw *w, const struct evac_item *it)
{
	jw_obj(w);
	jw_key(w, "actor_id");
	jw_str(w, it->actor->spec.id);
	jw_key(w, "instance");
	jw_int(w, (int64_t)it->instance);
	jw_key(w, "priority");
	jw_int(w, it->actor->spec.priority);
}

bool failover_dry_run(struct loop *l, struct op *op)
{
	struct model *m = &l->model;
	struct model_node *n = model_node_get(m, op->target);
	if (n == NULL) {
		op_fail(op, 404, "not_found", "node '%s' not found", op->target);
		return true;
	}
	struct evac_plan p;
	if (evac_plan(m, n, EVAC_BY_PRIORITY, &p) != 0) {
		op_fail(op, 503, "out_of_memory", "out of memory");
		return true;
	}
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "node_id");
	jw_str(&w, n->spec.id);
	jw_key(&w, "status");
	jw_str(&w, model_node_status_name(n->status));
	jw_key(&w, "replicas");
	jw_int(&w, (int64_t)p.n);
	jw_key(&w, "moved");
	jw_int(&w, (int64_t)p.moved);
	jw_key(&w, "unplaced");
	jw_int(&w, (int64_t)(p.n - p.moved));
	jw_key(&w, "moves");
	jw_arr(&w);
	for (size_t i = 0; i < p.n; i++) {
		if (p.items[i].to == NULL)
			continue;
		item_open(&w, &p.items[i]);
		jw_key(&w, "to_node");
		jw_str(&w, p.items[i].to->spec.id);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_key(&w, "no_home");
	jw_arr(&w);
	for (size_t i = 0; i < p.n; i++) {
		if (p.items[i].to != NULL)
			continue;
		char reason[SCHED_REASON_MAX + 64];
		snprintf(reason, sizeof(reason), "failover failed: no healthy target (%s)", p.items[i].reason);
		item_open(&w, &p.items[i]);
		jw_key(&w, "reason");
		jw_str(&w, reason);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	evac_plan_free(&p);
	op->object_text = jw_take(&w, NULL);
	if (op->object_text == NULL) {
		op_fail(op, 503, "out_of_memory", "out of memory");
		return true;
	}
	return false;
}
