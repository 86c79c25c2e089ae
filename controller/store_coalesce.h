/* store_coalesce — the projection writer's coalescing: one segment's changes
 * merged per (table, key), then rendered as the parameters of one
 * lattice_project() call, one per step. Private to the store (store.c); the
 * rules are at the top of store_coalesce.c. */
#ifndef LATTICE_STORE_COALESCE_H
#define LATTICE_STORE_COALESCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jw.h"
#include "proj.h"

/* The projection's steps: one statement per (table, kind of change), each taking
 * all of a segment's rows of that kind at once (see store_coalesce.c). They are
 * the body of lattice_project() (schema/003_node_usage.sql), which runs them in
 * the order of this enum, after lattice_reset() when asked: every delete before
 * every upsert, so an ON DELETE CASCADE can never remove a row written in the
 * same segment. A delete takes its keys as one text[]; the others take one jsonb
 * array of row objects whose keys are the parameter names of proj.h (wr_kinds in
 * store_coalesce.c). The first PS_RESET are also lattice_project()'s parameters
 * after p_to and p_reset, in this order. */
enum proj_stmt {
	PS_LINKS_DELETE,
	PS_ACTORS_DELETE, /* cascades to placements, links, snapshots */
	PS_PROVIDERS_DELETE,
	PS_NODES_DELETE,
	PS_NODES_UPSERT,
	PS_ACTORS_UPSERT,
	PS_ACTORS_INSERT, /* fresh actors: a plain INSERT */
	PS_PROVIDERS_UPSERT,
	PS_PLACEMENTS_SET,
	PS_PLACEMENTS_INSERT, /* fresh actors' placements: a plain INSERT */
	PS_LINKS_UPSERT,
	PS_POLICIES_UPSERT,
	PS_COMMANDS_UPSERT,
	PS_FAILOVERS_UPSERT,
	PS_SNAPSHOTS_PUT,
	PS_EVENTS_INSERT,
	PS_RESET,
	PS_ADVANCE,  /* applied_index moves forward (as lattice_advance) */
	PS_DEFERRED, /* SET CONSTRAINTS ALL IMMEDIATE: the deferred foreign keys */
	PS_COUNT
};

struct wr_ent; /* one key's changes (store_coalesce.c) */

/* The changes of one segment (the changes between two PROJ_RESETs), coalesced. */
struct wr_co {
	struct wr_ent *ents; /* in order of each key's first change */
	size_t n, cap;
	uint32_t *slots; /* hash index: entry number + 1; 0 = free */
	size_t nslots;   /* a power of two, or 0 */
	uint64_t seq;    /* changes added so far */
	uint64_t first, last; /* log indexes of the first and last change */
};

/* Adds one change (borrowed: the batch outlives the segment). 0, or -1 when out
 * of memory. */
int co_add(struct wr_co *co, uint64_t index, const struct proj_change *ch);
/* Writes the segment's rows of step st (st < PS_RESET) to b, replacing what b
 * held: a delete's keys as a text[] literal, other rows as a JSON array of row
 * objects. Returns the number of rows; b->oom when out of memory. */
size_t co_render(const struct wr_co *co, enum proj_stmt st, struct jw *b);
/* Starts a new segment. Keeps the memory unless a big one (a rebuild) grew it. */
void co_clear(struct wr_co *co);
void co_free(struct wr_co *co);
/* The number of parameters a change of this kind carries (kind < PROJ_KIND_COUNT). */
int co_kind_nparams(enum proj_kind kind);

#endif
