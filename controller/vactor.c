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

/* A string's bytes in a record: its length, the string, its NUL. */
#define STR_SIZE(n) (2 + (n) + 1)

/* Appends s at *pos as STR_SIZE says; returns the offset of its first byte.
 * *plain becomes false when s needs escaping. */
static uint32_t put(char *base, size_t *pos, const char *s, bool *plain)
{
	size_t n = strlen(s);
	uint16_t len = n < 0xffff ? (uint16_t)n : 0xffff;
	unsigned char *b = (unsigned char *)base + *pos;
	b[0] = (unsigned char)(len & 0xff);
	b[1] = (unsigned char)(len >> 8);
	memcpy(b + 2, s, n + 1);
	if (*plain && !jw_plain(s, n))
		*plain = false;
	*pos += STR_SIZE(n);
	return (uint32_t)(*pos - n - 1);
}

/* The length of the string at off. */
static size_t slen(const struct vactor *r, uint32_t off)
{
	const unsigned char *b = (const unsigned char *)r + off;
	size_t len = (size_t)b[-2] | (size_t)b[-1] << 8;
	return len < 0xffff ? len : strlen((const char *)b);
}

/* The offset of the string stored after the one at off. */
static uint32_t next_str(const struct vactor *r, uint32_t off)
{
	return off + (uint32_t)slen(r, off) + 1 + 2;
}

struct vactor *vactor_pack(const struct model_actor *a)
{
	const struct actor_spec *s = &a->spec;
	const char *region = s->preferred_region ? s->preferred_region : "";
	bool own_name = s->name && strcmp(s->name, s->id) != 0;
	size_t head = sizeof(struct vactor) + a->nplacements * sizeof(struct vplace);
	size_t size = head + STR_SIZE(strlen(s->id)) + STR_SIZE(strlen(region));
	size += own_name ? STR_SIZE(strlen(s->name)) : 0;
	size += s->module ? STR_SIZE(strlen(s->module)) : 0;
	for (size_t i = 0; i < s->constraints.n; i++)
		size += STR_SIZE(strlen(s->constraints.items[i].key)) + STR_SIZE(strlen(s->constraints.items[i].value));
	for (size_t i = 0; i < s->contracts.n; i++)
		size += STR_SIZE(strlen(s->contracts.items[i]));
	for (size_t i = 0; i < a->nplacements; i++)
		size += a->placements[i].node ? STR_SIZE(strlen(a->placements[i].node->spec.id)) : 0;
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
	bool plain = true;
	r->id = put(base, &pos, s->id, &plain);
	r->name = s->name == NULL ? 0 : own_name ? put(base, &pos, s->name, &plain) : r->id;
	r->module = s->module ? put(base, &pos, s->module, &plain) : 0;
	r->region = put(base, &pos, region, &plain);
	r->strs = (uint32_t)pos + 2;
	for (size_t i = 0; i < s->constraints.n; i++) {
		put(base, &pos, s->constraints.items[i].key, &plain);
		put(base, &pos, s->constraints.items[i].value, &plain);
	}
	for (size_t i = 0; i < s->contracts.n; i++)
		put(base, &pos, s->contracts.items[i], &plain);
	struct vplace *p = (struct vplace *)(r + 1);
	for (size_t i = 0; i < a->nplacements; i++) {
		const struct model_placement *mp = &a->placements[i];
		p[i].state_version = mp->state_version;
		p[i].state = (uint8_t)mp->state;
		p[i].node = mp->node ? put(base, &pos, mp->node->spec.id, &plain) : 0;
	}
	r->plain = plain;
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

/* n bytes that need no escape, quoted. */
static char *put_plain(char *p, const char *s, size_t n)
{
	*p++ = '"';
	memcpy(p, s, n);
	p += n;
	*p++ = '"';
	return p;
}

/* The string at off quoted (0: null). A plain record's strings are copied
 * as they are, by the length kept beside them. */
static char *put_str(char *p, const struct vactor *r, uint32_t off)
{
	if (off == 0)
		return JW_PUT(p, "null");
	return r->plain ? put_plain(p, at(r, off), slen(r, off)) : jw_put_quoted(p, at(r, off));
}

/* A name from a table of plain names ("resources", "running"). */
static char *put_name(char *p, const char *s)
{
	return put_plain(p, s, strlen(s));
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
	p = put_str(p, r, r->id);
	if (r->name) {
		p = JW_PUT(p, ",\"name\":");
		p = put_str(p, r, r->name);
	}
	p = JW_PUT(p, ",\"module\":");
	p = put_str(p, r, r->module);
	p = JW_PUT(p, ",\"cpu_required\":");
	p = jw_put_int(p, r->cpu);
	p = JW_PUT(p, ",\"memory_required_mb\":");
	p = jw_put_int(p, r->mem);
	p = JW_PUT(p, ",\"preferred_region\":");
	p = put_str(p, r, r->region);
	p = JW_PUT(p, ",\"constraints\":{");
	uint32_t s = r->strs;
	for (size_t i = 0; i < r->nconstraints; i++) {
		if (i)
			*p++ = ',';
		p = put_str(p, r, s);
		*p++ = ':';
		s = next_str(r, s);
		p = put_str(p, r, s);
		s = next_str(r, s);
	}
	p = JW_PUT(p, "},\"priority\":");
	p = jw_put_int(p, r->priority);
	p = JW_PUT(p, ",\"max_latency_ms\":");
	p = jw_put_int(p, r->max_latency);
	p = JW_PUT(p, ",\"replicas\":");
	p = jw_put_int(p, r->replicas);
	p = JW_PUT(p, ",\"strategy\":");
	p = put_name(p, spec_strategy_name((enum actor_strategy)r->strategy));
	p = JW_PUT(p, ",\"contracts\":[");
	for (size_t i = 0; i < r->ncontracts; i++) {
		if (i)
			*p++ = ',';
		p = put_str(p, r, s);
		s = next_str(r, s);
	}
	p = JW_PUT(p, "],\"placements\":[");
	const struct vplace *pl = places(r);
	for (size_t i = 0; i < r->nplacements; i++) {
		p = i ? JW_PUT(p, ",{\"instance\":") : JW_PUT(p, "{\"instance\":");
		p = jw_put_uint(p, i);
		p = JW_PUT(p, ",\"node_id\":");
		p = put_str(p, r, pl[i].node);
		p = JW_PUT(p, ",\"state\":");
		p = put_name(p, model_placement_state_name((enum placement_state)pl[i].state));
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
