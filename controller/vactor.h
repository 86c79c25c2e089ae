/* vactor — an actor as the read view keeps it: one allocation holding what
 * GET /v1/actors/{id} shows, packed (numbers as numbers, strings once, no
 * JSON keys), about a third of the rendered text. The loop thread packs it
 * from the model; HTTP threads copy it out under the view's lock (one
 * memcpy: offsets are relative) and render the JSON outside it.
 *
 * vactor_write renders exactly what render_actor_text renders from the
 * model actor it was packed from (test_vactor holds the two together). */
#ifndef LATTICE_VACTOR_H
#define LATTICE_VACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jw;
struct model_actor;

struct vactor {
	uint32_t size;          /* bytes of the whole allocation */
	uint16_t nconstraints, ncontracts, nplacements, replicas;
	uint8_t strategy, priority;
	uint8_t plain; /* no string needs a JSON escape: each is copied as it is */
	/* spec.c's ranges: SPEC_CPU_MAX, SPEC_MEMORY_MAX, SPEC_LATENCY_MAX fit */
	int32_t cpu, mem, max_latency;
	uint64_t generation;
	int64_t created_ms, updated_ms;
	/* Offsets from the start of the struct: id, name, module, region, then
	 * nconstraints key/value pairs, ncontracts strings. Each string is
	 * NUL-terminated, its length (uint16, little-endian; 0xffff: that or
	 * more) in the two bytes before it. The placements follow the struct. */
	uint32_t id, name, module, region, strs;
};

/* Packs a (malloc'd; free() it). NULL when out of memory. */
struct vactor *vactor_pack(const struct model_actor *a);
/* A copy of r (malloc'd), NULL when out of memory. */
struct vactor *vactor_copy(const struct vactor *r);
const char *vactor_id(const struct vactor *r);
/* Whether one of its instances is placed on node_id. */
bool vactor_on_node(const struct vactor *r, const char *node_id);
/* The most vactor_write can write for r (every string byte escaped). */
size_t vactor_text_max(const struct vactor *r);
/* Appends the actor's JSON object to w. */
void vactor_write(struct jw *w, const struct vactor *r);
/* The same as text (malloc'd), NULL when out of memory. */
char *vactor_text(const struct vactor *r);

#endif
