/* model_fixture — the helpers test_model and test_model_snap share.
 *
 * Entries are written as JSON text (single quotes stand for double quotes) and go
 * through entry_decode, as they do when a replica applies its log. Plans are made
 * the way the leader makes them: sched_place on the model, before the entry; a
 * plan the model no longer fits is refused with APPLY_STALE (the leader re-plans).
 * Functions that take a proj_batch b apply at b's log index (0 without b). */
#ifndef LATTICE_MODEL_FIXTURE_H
#define LATTICE_MODEL_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "model.h"
#include "proj.h"
#include "tap.h"

#define MODULE "'module':'ghcr.io/lattice/echo:1'"

extern int64_t clock_ms;      /* the time of the next entry, less 1 s */
extern struct apply_result R; /* result of the last apply */
extern char planned[1024];    /* the last plan's node list */

/* ---- entries as text ------------------------------------------------------ */

/* Single quotes -> double quotes, in place. */
char *dq(char *s);
/* printf into a new string (malloc'd). */
__attribute__((format(printf, 1, 2))) char *fmt(const char *f, ...);
/* A whole entry (malloc'd, double-quoted) around body ("'op':'...', ..."), one
 * second after the last. */
char *wrap(const char *body);
/* Decodes an entry and applies it; b's index is the log index (0 without b).
 * Returns the apply code, or -1 when the text does not decode. */
int apply_text(struct model *m, struct proj_batch *b, const char *text);
/* apply_text of wrap(the body printf makes). */
__attribute__((format(printf, 3, 4))) int apply_j(struct model *m, struct proj_batch *b,
						  const char *f, ...);
int put_node(struct model *m, struct proj_batch *b, int flag, const char *id, const char *region,
	     int64_t cap, int64_t mem, int64_t cpu_used, int64_t mem_used, int64_t actors);
int node_flag(struct model *m, struct proj_batch *b, const char *id, int flag);

/* ---- plans, as the leader makes them -------------------------------------- */

/* Appends 'id' to a node list ("'n1','n2'"). */
void list_add(char *list, size_t len, const char *id);
/* Plans every replica of the actor (text without braces) with sched_place; on
 * SCHED_OK writes "'n1','n2'" to list and the new round-robin cursor ("" when
 * unchanged) to cursor. */
int plan_actor(struct model *m, const char *fields, char *list, size_t len, char *cursor);
/* Plans the replicas an update adds (none when it does not add). */
int plan_update(struct model *m, const struct model_actor *a, const struct actor_patch *p,
		char *list, size_t len, char *cursor);
/* Plans a drain of n: each replica on it goes where placement would put it with n
 * cordoned, earlier moves counted. Writes "{move},{move}" to moves; returns the
 * number of replicas that found no target (they are left out). The model is as it
 * was afterwards. */
int plan_drain(struct model *m, struct model_node *n, char *moves, size_t len);

/* Creates an actor planned by sched_place. Returns the apply code, -2 when no plan. */
int create_planned(struct model *m, struct proj_batch *b, const char *id, const char *fields);
/* Creates an actor on the given nodes ("'n1','n2'"). */
int create_on(struct model *m, struct proj_batch *b, const char *id, const char *fields,
	      const char *nodes);
/* Updates an actor with a plan for the replicas the patch adds (in planned).
 * Returns the apply code, -2 when no plan. */
int update_planned(struct model *m, struct proj_batch *b, const char *id, const char *patch);
int update_on(struct model *m, struct proj_batch *b, const char *id, const char *patch,
	      const char *nodes);
/* Drains a node by plan_drain's plan. Returns the apply code, -2 when no plan. */
int drain_planned(struct model *m, struct proj_batch *b, const char *id);
/* moves: the move objects as JSON text (see MV in test_model.c). */
int drain_on(struct model *m, struct proj_batch *b, const char *id, const char *moves);

/* ---- looking at the model ------------------------------------------------- */

/* "node_upsert,event_insert" — the batch's kinds in order (a static buffer). */
const char *kinds(const struct proj_batch *b);
/* The batch's first change of kind k, or NULL. */
const struct proj_change *find_kind(const struct proj_batch *b, enum proj_kind k);
/* Parameter i of the batch's event ("" when there is none). */
const char *ev(const struct proj_batch *b, int i);
/* Frees *b and puts a new batch for the next log index there; returns it. */
struct proj_batch *batch(struct proj_batch **b);
/* Everything the model holds, canonical: the snapshot (sorted) plus what it does
 * not store — accounted usage, placement counts, index state, covering policies.
 * malloc'd. */
char *dump(const struct model *m);
/* The model's own bookkeeping against a recount from scratch. Returns true when
 * consistent; otherwise writes what is wrong to why. */
bool invariants(const struct model *m, char *why, size_t len);
bool contains(const char *s, const char *sub);
/* n1, n2 in eu (n2 with base load), n3 in us (smaller). */
void base_nodes(struct model *m);
/* A model to snapshot: nodes n00000.. alternating eu/us (4000 cpu, 8192 MB),
 * then actors a00000.. with fields, each planned and created. */
void fill_model(struct model *m, int nodes, int actors, const char *fields);

/* The two that report through the calling test's TAP counter. */

/* ok() that two dumps are equal, showing where they differ. */
static inline void same_state(const char *want, const struct model *m, const char *name)
{
	char *got = dump(m);
	size_t i = 0;
	while (want[i] && want[i] == got[i])
		i++;
	if (!ok(want[i] == got[i], "%s", name)) {
		size_t from = i > 60 ? i - 60 : 0;
		tap_diag("  differs at %zu: want ...%.140s", i, want + from);
		tap_diag("                     got  ...%.140s", got + from);
	}
	free(got);
}

static inline void check_invariants(const struct model *m, const char *name)
{
	char why[512];
	if (!ok(invariants(m, why, sizeof(why)), "%s", name))
		tap_diag("  %s", why);
}

#endif
