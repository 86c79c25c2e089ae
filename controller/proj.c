/* proj — renders model objects into proj_changes (see proj.h for the parameter
 * order of every kind; the writer's row objects, store_coalesce.c, take them in
 * that order). */
#include "proj.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "render.h"
#include "spec.h"

/* Every change of a batch and every parameter lives in the batch's arena, a list
 * of chunks freed together: a batch is built by the loop thread and freed by the
 * writer thread, and a malloc per parameter made each of them a cross-thread
 * free (and malloc's slow path, measured at 7% of latticed's CPU). */
struct proj_chunk {
	struct proj_chunk *next;
	size_t used, cap;
	_Alignas(16) char mem[];
};

/* Under glibc's large-request size (1024): a request that large first
 * consolidates malloc's fast bins, measured at 3.5% of latticed's CPU. */
enum { PROJ_CHUNK_SIZE = 1000 };

/* Parameters of each kind (proj.h lists them). */
static const int proj_nparams[PROJ_KIND_COUNT] = {
	[PROJ_NODE_UPSERT] = 21,    [PROJ_NODE_DELETE] = 1,      [PROJ_ACTOR_UPSERT] = 15,
	[PROJ_ACTOR_DELETE] = 1,    [PROJ_PLACEMENTS_SET] = 2,   [PROJ_PROVIDER_UPSERT] = 5,
	[PROJ_PROVIDER_DELETE] = 1, [PROJ_LINK_UPSERT] = 10,     [PROJ_LINK_DELETE] = 1,
	[PROJ_POLICY_INSERT] = 8,   [PROJ_EVENT_INSERT] = 8,     [PROJ_RESET] = 0,
	[PROJ_COMMAND_UPSERT] = 17, [PROJ_FAILOVER_UPSERT] = 10,
	[PROJ_SNAPSHOT_PUT] = 5,
};

struct proj_batch *proj_batch_new(uint64_t index)
{
	struct proj_batch *b = calloc(1, sizeof(*b));
	if (b)
		b->index = index;
	return b;
}

void proj_batch_free(struct proj_batch *b)
{
	if (!b)
		return;
	struct proj_chunk *k = b->chunks;
	while (k) {
		struct proj_chunk *next = k->next;
		free(k);
		k = next;
	}
	jw_free(&b->scratch);
	free(b);
}

size_t proj_batch_bytes(const struct proj_batch *b)
{
	size_t n = sizeof(*b) + b->scratch.cap;
	for (const struct proj_chunk *k = b->chunks; k; k = k->next)
		n += sizeof(*k) + k->cap;
	return n;
}

/* n bytes from b's arena, 16-aligned; NULL (and b->failed) when out of memory. */
static void *pa_alloc(struct proj_batch *b, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	struct proj_chunk *k = b->chunks;
	if (!k || k->cap - k->used < n) {
		size_t cap = n > PROJ_CHUNK_SIZE - sizeof(*k) ? n : PROJ_CHUNK_SIZE - sizeof(*k);
		k = malloc(sizeof(*k) + cap);
		if (!k) {
			b->failed = 1;
			return NULL;
		}
		k->used = 0;
		k->cap = cap;
		k->next = b->chunks;
		b->chunks = k;
	}
	void *p = k->mem + k->used;
	k->used += n;
	return p;
}

/* Starts a change of kind k. Parameters are appended with the p_* helpers; the
 * change joins the batch only once complete (proj_end), so a failure midway never
 * leaves a half-rendered change in it. */
static struct proj_change *proj_begin(struct proj_batch *b, enum proj_kind k)
{
	if (b->failed)
		return NULL;
	int cap = proj_nparams[k];
	struct proj_change *c = pa_alloc(b, sizeof(*c) + (size_t)cap * sizeof(c->params[0]));
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->kind = k;
	c->cap = cap;
	return c;
}

/* Appends one parameter, a copy of the n bytes at s (NULL = SQL NULL). */
static void p_strn(struct proj_batch *b, struct proj_change *c, const char *s, size_t n)
{
	if (!c)
		return; /* the change was never started: b->failed is already set */
	if (c->nparams >= c->cap) {
		b->failed = 1; /* a bug: proj_nparams disagrees with the appender */
		return;
	}
	char *v = NULL;
	if (s) {
		if ((v = pa_alloc(b, n + 1)) == NULL)
			return;
		memcpy(v, s, n);
		v[n] = '\0';
	}
	c->params[c->nparams++] = v;
}

static void p_str(struct proj_batch *b, struct proj_change *c, const char *s)
{
	p_strn(b, c, s, s ? strlen(s) : 0);
}

static void p_int(struct proj_batch *b, struct proj_change *c, int64_t n)
{
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%" PRId64, n);
	p_strn(b, c, buf, (size_t)len);
}

static void p_uint(struct proj_batch *b, struct proj_change *c, uint64_t n)
{
	char buf[24];
	int len = snprintf(buf, sizeof(buf), "%" PRIu64, n);
	p_strn(b, c, buf, (size_t)len);
}

/* Negative = unknown -> SQL NULL (measured usage). */
static void p_int_or_null(struct proj_batch *b, struct proj_change *c, int64_t n)
{
	if (n < 0)
		p_str(b, c, NULL);
	else
		p_int(b, c, n);
}

static void p_bool(struct proj_batch *b, struct proj_change *c, bool v)
{
	p_str(b, c, v ? "t" : "f");
}

/* The batch's scratch writer, emptied. */
static struct jw *p_scratch(struct proj_batch *b)
{
	jw_reset(&b->scratch);
	return &b->scratch;
}

/* Appends what the scratch writer holds as one parameter. */
static void p_written(struct proj_batch *b, struct proj_change *c)
{
	if (c && b->scratch.oom)
		b->failed = 1;
	else
		p_strn(b, c, b->scratch.p ? b->scratch.p : "", b->scratch.len);
}

static void p_kvlist(struct proj_batch *b, struct proj_change *c, const struct kvlist *l)
{
	kvlist_write(p_scratch(b), l);
	p_written(b, c);
}

static void p_strlist(struct proj_batch *b, struct proj_change *c, const struct strlist *l)
{
	strlist_write(p_scratch(b), l);
	p_written(b, c);
}

static void proj_end(struct proj_batch *b, struct proj_change *c)
{
	if (!c || b->failed)
		return; /* what c took stays in the arena until the batch is freed */
	if (b->tail)
		b->tail->next = c;
	else
		b->head = c;
	b->tail = c;
	b->n++;
}

void proj_raw(struct proj_batch *b, enum proj_kind kind, bool fresh, int nparams, const char *const *params,
	      const size_t *lens)
{
	if ((unsigned)kind >= PROJ_KIND_COUNT || nparams != proj_nparams[kind]) {
		b->failed = 1;
		return;
	}
	struct proj_change *c = proj_begin(b, kind);
	if (c)
		c->fresh = fresh;
	for (int i = 0; i < nparams; i++)
		p_strn(b, c, params[i], lens[i]);
	proj_end(b, c);
}

void proj_node(struct proj_batch *b, const struct model_node *n)
{
	struct proj_change *c = proj_begin(b, PROJ_NODE_UPSERT);
	p_str(b, c, n->spec.id);
	p_str(b, c, n->spec.region);
	p_kvlist(b, c, &n->spec.labels);
	p_int(b, c, n->spec.cpu_capacity);
	p_int(b, c, n->spec.memory_mb);
	p_int(b, c, n->spec.cpu_used);
	p_int(b, c, n->spec.memory_used_mb);
	p_int(b, c, n->spec.actor_count);
	p_int_or_null(b, c, n->cpu_measured);
	p_int_or_null(b, c, n->memory_measured_mb);
	p_str(b, c, model_node_status_name(n->status));
	p_bool(b, c, n->cordoned);
	p_bool(b, c, n->draining);
	p_int(b, c, n->error_count);
	if (n->last_heartbeat_ms > 0)
		p_int(b, c, n->last_heartbeat_ms);
	else
		p_str(b, c, NULL);
	p_int(b, c, n->policy_version);
	p_int(b, c, n->policy_target);
	p_str(b, c, n->agent_version);
	p_uint(b, c, n->generation);
	p_int(b, c, n->created_ms);
	p_int(b, c, n->updated_ms);
	proj_end(b, c);
}

static void proj_delete(struct proj_batch *b, enum proj_kind k, const char *id)
{
	struct proj_change *c = proj_begin(b, k);
	p_str(b, c, id);
	proj_end(b, c);
}

void proj_node_delete(struct proj_batch *b, const char *id)
{
	proj_delete(b, PROJ_NODE_DELETE, id);
}

void proj_actor(struct proj_batch *b, const struct model_actor *a)
{
	const struct actor_spec *s = &a->spec;
	struct proj_change *c = proj_begin(b, PROJ_ACTOR_UPSERT);
	p_str(b, c, s->id);
	p_str(b, c, s->name ? s->name : s->id);
	p_str(b, c, s->module);
	p_int(b, c, s->cpu_required);
	p_int(b, c, s->memory_required_mb);
	p_str(b, c, s->preferred_region ? s->preferred_region : "");
	p_kvlist(b, c, &s->constraints);
	p_int(b, c, s->priority);
	p_int(b, c, s->max_latency_ms);
	p_int(b, c, s->replicas);
	p_str(b, c, spec_strategy_name(s->strategy));
	p_strlist(b, c, &s->contracts);
	p_uint(b, c, a->generation);
	p_int(b, c, a->created_ms);
	p_int(b, c, a->updated_ms);
	proj_end(b, c);
}

void proj_actor_delete(struct proj_batch *b, const char *id)
{
	proj_delete(b, PROJ_ACTOR_DELETE, id);
}

void proj_placements(struct proj_batch *b, const struct model_actor *a)
{
	struct proj_change *c = proj_begin(b, PROJ_PLACEMENTS_SET);
	p_str(b, c, a->spec.id);
	render_placements(p_scratch(b), a); /* the API's shape is the rows' */
	p_written(b, c);
	proj_end(b, c);
}

void proj_actor_created(struct proj_batch *b, const struct model_actor *a)
{
	struct proj_change *last = b->tail;
	proj_actor(b, a);
	proj_placements(b, a);
	for (struct proj_change *c = last ? last->next : b->head; c; c = c->next)
		c->fresh = true;
}

void proj_provider(struct proj_batch *b, const struct model_provider *p)
{
	struct proj_change *c = proj_begin(b, PROJ_PROVIDER_UPSERT);
	p_str(b, c, p->spec.id);
	p_str(b, c, p->spec.contract_id);
	p_str(b, c, p->spec.image);
	p_strlist(b, c, &p->spec.nodes);
	p_int(b, c, p->created_ms);
	proj_end(b, c);
}

void proj_provider_delete(struct proj_batch *b, const char *id)
{
	proj_delete(b, PROJ_PROVIDER_DELETE, id);
}

void proj_link(struct proj_batch *b, const struct model_link *l)
{
	const struct link_spec *s = &l->spec;
	struct proj_change *c = proj_begin(b, PROJ_LINK_UPSERT);
	p_str(b, c, s->id);
	p_str(b, c, s->actor_id);
	p_str(b, c, s->provider_id);
	p_str(b, c, s->contract_id);
	p_str(b, c, s->link_name ? s->link_name : "default");
	p_kvlist(b, c, &s->values);
	p_int(b, c, s->timeout_ms);
	p_int(b, c, s->retry_count);
	p_int(b, c, s->retry_delay_ms);
	p_int(b, c, l->created_ms);
	proj_end(b, c);
}

void proj_link_delete(struct proj_batch *b, const char *id)
{
	proj_delete(b, PROJ_LINK_DELETE, id);
}

/* One version's row: made_ms is when that version was made. */
static void proj_policy_version(struct proj_batch *b, const char *policy_id, int64_t version,
				const struct policy_spec *s, int64_t made_ms)
{
	struct proj_change *c = proj_begin(b, PROJ_POLICY_INSERT);
	p_str(b, c, policy_id);
	p_int(b, c, version);
	p_strlist(b, c, &s->allowed_contracts);
	p_strlist(b, c, &s->denied_contracts);
	p_int(b, c, s->max_actor_memory_mb);
	p_strlist(b, c, &s->network_restrictions);
	struct jw *w = p_scratch(b);
	jw_obj(w);
	jw_key(w, "regions");
	strlist_write(w, &s->sel_regions);
	jw_key(w, "labels");
	kvlist_write(w, &s->sel_labels);
	jw_obj_end(w);
	p_written(b, c);
	p_int(b, c, made_ms);
	proj_end(b, c);
}

void proj_policy(struct proj_batch *b, const struct model_policy *p)
{
	/* The row is this version, so its time is when this version was made. */
	proj_policy_version(b, p->spec.policy_id, p->version, &p->spec,
			    p->updated_ms > 0 ? p->updated_ms : p->created_ms);
}

void proj_event(struct proj_batch *b, uint64_t seq, int64_t at_ms, const char *who, const char *kind,
		const char *object_type, const char *object_id, const char *data)
{
	struct proj_change *c = proj_begin(b, PROJ_EVENT_INSERT);
	p_uint(b, c, seq);
	p_uint(b, c, b->index);
	p_int(b, c, at_ms);
	p_str(b, c, who);
	p_str(b, c, kind);
	p_str(b, c, object_type);
	p_str(b, c, object_id);
	p_str(b, c, data);
	proj_end(b, c);
}

void proj_reset(struct proj_batch *b)
{
	proj_end(b, proj_begin(b, PROJ_RESET));
}

static void p_ms_or_null(struct proj_batch *b, struct proj_change *c, int64_t ms)
{
	if (ms > 0)
		p_int(b, c, ms);
	else
		p_str(b, c, NULL);
}

void proj_command(struct proj_batch *b, const struct model_command *cmd)
{
	struct proj_change *c = proj_begin(b, PROJ_COMMAND_UPSERT);
	p_str(b, c, cmd->id);
	p_str(b, c, model_cmd_type_name(cmd->type));
	p_str(b, c, cmd->node);
	p_str(b, c, cmd->actor_id);
	if (cmd->actor_id)
		p_int(b, c, cmd->instance);
	else
		p_str(b, c, NULL);
	p_uint(b, c, cmd->term);
	p_uint(b, c, cmd->generation);
	p_int(b, c, cmd->config_version);
	if (cmd->payload) {
		p_str(b, c, cmd->payload);
	} else { /* an actor_start kept in its usual form: its text, written now */
		struct jw w;
		jw_init(&w);
		model_cmd_write_payload(&w, cmd);
		if (w.oom)
			b->failed = 1;
		else
			p_strn(b, c, w.p, w.len);
		jw_free(&w);
	}
	p_str(b, c, model_cmd_status_name(cmd->status));
	p_int(b, c, cmd->attempts);
	p_int(b, c, cmd->created_ms);
	p_int(b, c, cmd->updated_ms);
	p_ms_or_null(b, c, cmd->published_ms);
	p_ms_or_null(b, c, cmd->acked_ms);
	p_int(b, c, cmd->applied_version);
	p_str(b, c, cmd->error);
	proj_end(b, c);
}

void proj_failover(struct proj_batch *b, const struct model_failover *f)
{
	struct proj_change *c = proj_begin(b, PROJ_FAILOVER_UPSERT);
	p_str(b, c, f->id);
	p_str(b, c, f->node);
	struct jw *w = p_scratch(b);
	jw_arr(w);
	for (size_t i = 0; i < f->nassign; i++) {
		jw_obj(w);
		jw_key(w, "actor_id");
		jw_str(w, f->assign[i].actor_id);
		jw_key(w, "instance");
		jw_int(w, f->assign[i].instance);
		jw_key(w, "node_id");
		if (f->assign[i].to_node)
			jw_str(w, f->assign[i].to_node);
		else
			jw_null(w);
		jw_key(w, "state");
		jw_str(w, f->assign[i].to_node ? model_fo_step_name(f->assign[i].step) : "no_healthy_target");
		jw_obj_end(w);
	}
	jw_arr_end(w);
	p_written(b, c);
	w = p_scratch(b);
	jw_arr(w);
	for (size_t i = 0; i < f->nassign; i++)
		jw_str(w, f->assign[i].actor_id);
	jw_arr_end(w);
	p_written(b, c);
	p_int(b, c, f->detected_ms);
	p_int(b, c, f->started_ms);
	p_ms_or_null(b, c, f->finished_ms);
	if (f->finished_ms > 0)
		p_int(b, c, f->finished_ms - f->detected_ms);
	else
		p_str(b, c, NULL);
	p_str(b, c, model_fo_status_name(f->status));
	p_str(b, c, f->error);
	proj_end(b, c);
}

void proj_snapshot(struct proj_batch *b, const struct model_actor *a)
{
	struct proj_change *c = proj_begin(b, PROJ_SNAPSHOT_PUT);
	p_str(b, c, a->spec.id);
	p_int(b, c, a->snap->state_version);
	p_str(b, c, a->snap->data);
	p_str(b, c, a->snap->node);
	p_int(b, c, a->snap->taken_ms);
	proj_end(b, c);
}

void proj_model(struct proj_batch *b, const struct model *m)
{
	size_t pos;
	void *v;

	proj_reset(b);
	pos = 0;
	while (!b->failed && (v = hmap_next(&m->nodes, &pos)) != NULL)
		proj_node(b, v);
	pos = 0;
	while (!b->failed && (v = hmap_next(&m->actors, &pos)) != NULL) {
		const struct model_actor *a = v;
		proj_actor(b, a);
		proj_placements(b, a);
		if (a->snap)
			proj_snapshot(b, a);
	}
	pos = 0;
	while (!b->failed && (v = hmap_next(&m->providers, &pos)) != NULL)
		proj_provider(b, v);
	pos = 0;
	while (!b->failed && (v = hmap_next(&m->links, &pos)) != NULL)
		proj_link(b, v);
	pos = 0;
	while (!b->failed && (v = hmap_next(&m->policies, &pos)) != NULL) {
		const struct model_policy *p = v;
		/* Every version, as the entries that made them projected them. */
		for (size_t i = 0; i < p->nhistory; i++)
			proj_policy_version(b, p->spec.policy_id, p->history[i].version, &p->history[i].spec,
					    p->history[i].made_ms);
		proj_policy(b, p);
	}
	for (const struct model_command *c = m->cmd_done.head; c && !b->failed; c = c->next)
		proj_command(b, c);
	for (const struct model_command *c = m->cmd_open.head; c && !b->failed; c = c->next)
		proj_command(b, c);
	for (const struct model_failover *f = m->fo_head; f && !b->failed; f = f->next)
		proj_failover(b, f);
}
