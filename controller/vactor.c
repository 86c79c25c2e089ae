#include "vactor.h"

#include <stdlib.h>
#include <string.h>

#include "jw.h"
#include "model.h"
#include "render.h"
#include "spec.h"

/* One instance; the array follows the header. */
struct vplace {
	int64_t state_version;
	uint32_t node; /* offset of its node's id; 0: none */
	uint8_t state;
};

static const char *at(const struct vactor *r, uint32_t off)
{
	return off ? (const char *)r + off : NULL;
}

static const struct vplace *places(const struct vactor *r)
{
	return (const struct vplace *)(r + 1);
}

/* Appends s (its NUL too) at *pos; returns its offset. */
static uint32_t put(char *base, size_t *pos, const char *s)
{
	size_t n = strlen(s) + 1;
	uint32_t off = (uint32_t)*pos;
	memcpy(base + *pos, s, n);
	*pos += n;
	return off;
}

struct vactor *vactor_pack(const struct model_actor *a)
{
	const struct actor_spec *s = &a->spec;
	const char *region = s->preferred_region ? s->preferred_region : "";
	bool own_name = s->name && strcmp(s->name, s->id) != 0;
	size_t head = sizeof(struct vactor) + a->nplacements * sizeof(struct vplace);
	size_t size = head + strlen(s->id) + 1 + strlen(region) + 1;
	size += own_name ? strlen(s->name) + 1 : 0;
	size += s->module ? strlen(s->module) + 1 : 0;
	for (size_t i = 0; i < s->constraints.n; i++)
		size += strlen(s->constraints.items[i].key) + strlen(s->constraints.items[i].value) + 2;
	for (size_t i = 0; i < s->contracts.n; i++)
		size += strlen(s->contracts.items[i]) + 1;
	for (size_t i = 0; i < a->nplacements; i++)
		size += a->placements[i].node ? strlen(a->placements[i].node->spec.id) + 1 : 0;
	/* Beyond what the API accepts (so never in the model): no record. */
	if (size > UINT32_MAX || s->constraints.n > UINT16_MAX || s->contracts.n > UINT16_MAX ||
	    a->nplacements > UINT16_MAX || s->replicas < 0 || s->replicas > UINT16_MAX || s->priority < 0 ||
	    s->priority > UINT8_MAX || s->cpu_required < INT32_MIN || s->cpu_required > INT32_MAX ||
	    s->memory_required_mb < INT32_MIN || s->memory_required_mb > INT32_MAX ||
	    s->max_latency_ms < INT32_MIN || s->max_latency_ms > INT32_MAX)
		return NULL;
	struct vactor *r = calloc(1, size);
	if (r == NULL)
		return NULL;
	char *base = (char *)r;
	r->size = (uint32_t)size;
	r->nconstraints = (uint16_t)s->constraints.n;
	r->ncontracts = (uint16_t)s->contracts.n;
	r->nplacements = (uint16_t)a->nplacements;
	r->strategy = (uint8_t)s->strategy;
	r->cpu = (int32_t)s->cpu_required;
	r->mem = (int32_t)s->memory_required_mb;
	r->priority = (uint8_t)s->priority;
	r->max_latency = (int32_t)s->max_latency_ms;
	r->replicas = (uint16_t)s->replicas;
	r->generation = a->generation;
	r->created_ms = a->created_ms;
	r->updated_ms = a->updated_ms;
	size_t pos = head;
	r->id = put(base, &pos, s->id);
	r->name = s->name == NULL ? 0 : own_name ? put(base, &pos, s->name) : r->id;
	r->module = s->module ? put(base, &pos, s->module) : 0;
	r->region = put(base, &pos, region);
	r->strs = (uint32_t)pos;
	for (size_t i = 0; i < s->constraints.n; i++) {
		put(base, &pos, s->constraints.items[i].key);
		put(base, &pos, s->constraints.items[i].value);
	}
	for (size_t i = 0; i < s->contracts.n; i++)
		put(base, &pos, s->contracts.items[i]);
	struct vplace *p = (struct vplace *)(r + 1);
	for (size_t i = 0; i < a->nplacements; i++) {
		const struct model_placement *mp = &a->placements[i];
		p[i].state_version = mp->state_version;
		p[i].state = (uint8_t)mp->state;
		p[i].node = mp->node ? put(base, &pos, mp->node->spec.id) : 0;
	}
	return r;
}

struct vactor *vactor_copy(const struct vactor *r)
{
	struct vactor *c = malloc(r->size);
	if (c)
		memcpy(c, r, r->size);
	return c;
}

const char *vactor_id(const struct vactor *r)
{
	return at(r, r->id);
}

bool vactor_on_node(const struct vactor *r, const char *node_id)
{
	const struct vplace *p = places(r);
	for (size_t i = 0; i < r->nplacements; i++)
		if (p[i].node && strcmp(at(r, p[i].node), node_id) == 0)
			return true;
	return false;
}

/* Field for field what spec_actor_fields and render_actor_text write. */
void vactor_write(struct jw *w, const struct vactor *r)
{
	jw_obj(w);
	JW_KEY(w, "id");
	jw_str(w, at(r, r->id));
	if (r->name) {
		JW_KEY(w, "name");
		jw_str(w, at(r, r->name));
	}
	JW_KEY(w, "module");
	jw_str(w, at(r, r->module));
	JW_KEY(w, "cpu_required");
	jw_int(w, r->cpu);
	JW_KEY(w, "memory_required_mb");
	jw_int(w, r->mem);
	JW_KEY(w, "preferred_region");
	jw_str(w, at(r, r->region));
	const char *s = at(r, r->strs);
	JW_KEY(w, "constraints");
	jw_obj(w);
	for (size_t i = 0; i < r->nconstraints; i++) {
		jw_key(w, s);
		s += strlen(s) + 1;
		jw_str(w, s);
		s += strlen(s) + 1;
	}
	jw_obj_end(w);
	JW_KEY(w, "priority");
	jw_int(w, r->priority);
	JW_KEY(w, "max_latency_ms");
	jw_int(w, r->max_latency);
	JW_KEY(w, "replicas");
	jw_int(w, r->replicas);
	JW_KEY(w, "strategy");
	const char *strategy = spec_strategy_name((enum actor_strategy)r->strategy);
	jw_str_plain(w, strategy, strlen(strategy)); /* names from a table */
	JW_KEY(w, "contracts");
	jw_arr(w);
	for (size_t i = 0; i < r->ncontracts; i++) {
		jw_str(w, s);
		s += strlen(s) + 1;
	}
	jw_arr_end(w);
	JW_KEY(w, "placements");
	jw_arr(w);
	const struct vplace *p = places(r);
	for (size_t i = 0; i < r->nplacements; i++) {
		jw_obj(w);
		JW_KEY(w, "instance");
		jw_uint(w, i);
		JW_KEY(w, "node_id");
		jw_str(w, at(r, p[i].node));
		JW_KEY(w, "state");
		const char *state = model_placement_state_name((enum placement_state)p[i].state);
		jw_str_plain(w, state, strlen(state));
		JW_KEY(w, "state_version");
		jw_int(w, p[i].state_version);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	JW_KEY(w, "generation");
	jw_uint(w, r->generation);
	JW_KEY(w, "created_at");
	render_write_time(w, r->created_ms);
	JW_KEY(w, "updated_at");
	render_write_time(w, r->updated_ms);
	jw_obj_end(w);
}

char *vactor_text(const struct vactor *r)
{
	struct jw w;
	jw_init(&w);
	vactor_write(&w, r);
	char *text = jw_take(&w, NULL);
	jw_free(&w);
	return text;
}
