/* view — what API reads of nodes and actors are served from (SPEC: "a
 * read-only view of the applied model published by the loop at an index"):
 * each node's JSON as GET shows it, each actor packed (vactor.h: a third of
 * its text), built by the loop thread from the model and published once per
 * loop iteration under a read-write lock, with the applied index it
 * reflects. HTTP threads copy answers out under the read lock (actors are
 * rendered after it is released); they never touch the model and never see
 * a half-applied entry.
 *
 * What changed is learned from the iteration's projection batches (a node's
 * or an actor's rows) and from the model's list of nodes whose accounted
 * usage changed (model_take_touched: an actor placed, moved, resized or
 * deleted). The whole view is built again after a reset or a restored
 * snapshot, and once the start-up replay (entries PostgreSQL already held
 * make no batch) is done; until then it is not ready and reads go to
 * PostgreSQL.
 *
 * Threads: view_note, view_publish, view_invalidate on the loop thread;
 * view_get, view_list, view_ready on any thread. */
#ifndef LATTICE_VIEW_H
#define LATTICE_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model;
struct proj_batch;
struct query_filter;
struct view;

enum view_kind { VIEW_NODES = 0, VIEW_ACTORS, VIEW_KINDS };

/* NULL when out of memory. */
struct view *view_new(void);
void view_free(struct view *v);

/* Loop thread: the changes of a chain of batches about to go to the store. */
void view_note(struct view *v, const struct proj_batch *chain);
/* Loop thread: everything is to be rendered again (a restore, a start). */
void view_invalidate(struct view *v);
/* Loop thread: renders what changed from m (taking m's touched nodes) and
 * publishes it at index. When replaying is true (the start-up replay is not
 * done) nothing is published. */
void view_publish(struct view *v, struct model *m, uint64_t index, bool replaying);

/* Any thread. Whether the view may answer a read that must reflect at least
 * min_index (what this replica's PostgreSQL shows): false until the first
 * publication, and while the published view is older than that (a replica
 * restoring a snapshot or replaying keeps its old view until it is built
 * again); such reads go to PostgreSQL. */
bool view_ready(struct view *v, uint64_t min_index);
/* The object's JSON (malloc'd, the caller frees) and the index it reflects.
 * Returns 0, -1 when there is no such object, -2 when out of memory or not
 * ready. */
int view_get(struct view *v, enum view_kind k, const char *id, char **json, uint64_t *index);
/* A page as GET /v1/nodes and /v1/actors answer it: {"items":[...],"next":...}
 * (malloc'd text). Filters as query_list's (nodes: region, status, label;
 * actors: node_id), keyset by id after f->after, f->limit items (<= 0: 100).
 * Returns 0, -2 (out of memory, not ready) or -3 (a ?node= walk, which lets
 * go of the lock every few thousand actors, kept seeing the view change):
 * the caller asks PostgreSQL instead. */
int view_list(struct view *v, enum view_kind k, const struct query_filter *f, char **json, uint64_t *index);

#endif
