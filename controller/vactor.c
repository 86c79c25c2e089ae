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

/* Every string byte escaped to six
 * (each string's NUL in r->size pays its quotes and separators), each
 * instance's keys, numbers and state name, and the fixed keys, numbers and
 * timestamps of the object. */
size_t vactor_text_max(const struct vactor *r)
{
	/* A name equal to the id is kept once and written twice. */
	size_t shared = r->name && r->name == r->id ? JW_QUOTED_MAX(strlen(at(r, r->id))) + 8 : 0;
	return 6 * (size_t)r->size + 128 * (size_t)r->nplacements + 400 + 2 * RENDER_TIME_MAX + shared;
}

/* s, NULL as null. */
static char *put_str(char *p, const char *s)
{
	return s ? jw_put_quoted(p, s) : JW_PUT(p, "null");
}

/* Field for field what spec_actor_fields and render_actor_text write, straight
 * into w's buffer: a page renders 100 of these, and a call per key and value
 * through jw's comma bookkeeping cost more than the text itself. */
void vactor_write(struct jw *w, const struct vactor *r)
{
	char *p = jw_value_room(w, vactor_text_max(r));
	if (p == NULL)
		return;
	p = JW_PUT(p, "{\"id\":");
	p = put_str(p, at(r, r->id));
	if (r->name) {
		p = JW_PUT(p, ",\"name\":");
		p = put_str(p, at(r, r->name));
	}
	p = JW_PUT(p, ",\"module\":");
	p = put_str(p, at(r, r->module));
	p = JW_PUT(p, ",\"cpu_required\":");
	p = jw_put_int(p, r->cpu);
	p = JW_PUT(p, ",\"memory_required_mb\":");
	p = jw_put_int(p, r->mem);
	p = JW_PUT(p, ",\"preferred_region\":");
	p = put_str(p, at(r, r->region));
	p = JW_PUT(p, ",\"constraints\":{");
	const char *s = at(r, r->strs);
	for (size_t i = 0; i < r->nconstraints; i++) {
		if (i)
			*p++ = ',';
		p = jw_put_quoted(p, s);
		*p++ = ':';
		s += strlen(s) + 1;
		p = jw_put_quoted(p, s);
		s += strlen(s) + 1;
	}
	p = JW_PUT(p, "},\"priority\":");
	p = jw_put_int(p, r->priority);
	p = JW_PUT(p, ",\"max_latency_ms\":");
	p = jw_put_int(p, r->max_latency);
	p = JW_PUT(p, ",\"replicas\":");
	p = jw_put_int(p, r->replicas);
	p = JW_PUT(p, ",\"strategy\":");
	p = put_str(p, spec_strategy_name((enum actor_strategy)r->strategy));
	p = JW_PUT(p, ",\"contracts\":[");
	for (size_t i = 0; i < r->ncontracts; i++) {
		if (i)
			*p++ = ',';
		p = jw_put_quoted(p, s);
		s += strlen(s) + 1;
	}
	p = JW_PUT(p, "],\"placements\":[");
	const struct vplace *pl = places(r);
	for (size_t i = 0; i < r->nplacements; i++) {
		p = i ? JW_PUT(p, ",{\"instance\":") : JW_PUT(p, "{\"instance\":");
		p = jw_put_uint(p, i);
		p = JW_PUT(p, ",\"node_id\":");
		p = put_str(p, at(r, pl[i].node));
		p = JW_PUT(p, ",\"state\":");
		p = put_str(p, model_placement_state_name((enum placement_state)pl[i].state));
		p = JW_PUT(p, ",\"state_version\":");
		p = jw_put_int(p, pl[i].state_version);
		*p++ = '}';
	}
	p = JW_PUT(p, "],\"generation\":");
	p = jw_put_uint(p, r->generation);
	p = JW_PUT(p, ",\"created_at\":");
	p = render_put_time(p, r->created_ms);
	p = JW_PUT(p, ",\"updated_at\":");
	p = render_put_time(p, r->updated_ms);
	*p++ = '}';
	jw_value_done(w, p);
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
