/* pthread_rwlockattr_setkind_np: the loop thread (the only writer) must not
 * wait behind a stream of readers. */
#define _GNU_SOURCE
#include "view.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hmap.h"
#include "jw.h"
#include "log.h"
#include "model.h"
#include "ovec.h"
#include "proj.h"
#include "query.h"
#include "render.h"
#include "vactor.h"

/* One object as the API shows it, with what list filters look at. Owned by
 * the view; immutable once published (a change publishes a new item). */
struct vitem {
	char *id;
	char *json;
	size_t len;
	char *region, *status;      /* nodes */
	char **lkeys, **lvals;      /* nodes: labels */
	size_t nlabels;
};

/* Ids to render again (keys owned: the strdup'd id is also the value). */
struct dirty {
	struct hmap ids;
};

struct view {
	pthread_rwlock_t lock;
	struct ovec nodes;   /* lock; struct vitem, by id */
	struct ovec actors;  /* lock; struct vactor, by id */
	/* The applied index the sets reflect. Set under the write lock with a
	 * change; without one (an iteration that touched no node or actor) it
	 * moves on by itself: the sets are what they were at the new index too. */
	atomic_uint_fast64_t index;
	atomic_bool ready;
	uint64_t gen; /* lock; counts changes to the sets (a walk that let go of
		       * the lock resumes only if it did not move) */
	/* loop thread only */
	struct dirty dirty;   /* node ids to render again */
	struct dirty adirty;  /* actor ids to pack again */
	bool all;             /* build everything again */
};

static const char *item_key(const void *it)
{
	return ((const struct vitem *)it)->id;
}

static const char *act_key(const void *r)
{
	return vactor_id(r);
}

static void item_free(struct vitem *it)
{
	if (it == NULL)
		return;
	free(it->id);
	free(it->json);
	free(it->region);
	free(it->status);
	for (size_t i = 0; i < it->nlabels; i++) {
		free(it->lkeys[i]);
		free(it->lvals[i]);
	}
	free(it->lkeys);
	free(it->lvals);
	free(it);
}

static void item_clear(struct ovec *o)
{
	size_t run;
	void *const *it;
	for (struct ovec_pos p = {0, 0}; (it = ovec_run(o, p, &run)) != NULL; p.leaf++)
		for (size_t i = 0; i < run; i++)
			item_free(it[i]);
	ovec_clear(o);
}

static void act_clear(struct ovec *o)
{
	size_t run;
	void *const *it;
	for (struct ovec_pos p = {0, 0}; (it = ovec_run(o, p, &run)) != NULL; p.leaf++)
		for (size_t i = 0; i < run; i++)
			free(it[i]);
	ovec_clear(o);
}

/* ---- rendering (loop thread) ------------------------------------------------ */

static struct vitem *render_node_item(const struct model_node *n)
{
	struct vitem *it = calloc(1, sizeof(*it));
	json_t *j = it ? render_node(n) : NULL;
	if (it == NULL || j == NULL)
		goto fail;
	it->json = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	it->id = strdup(n->spec.id);
	it->region = strdup(n->spec.region);
	it->status = strdup(model_node_status_name(n->status));
	if (!it->json || !it->id || !it->region || !it->status)
		goto fail;
	it->len = strlen(it->json);
	size_t nl = n->spec.labels.n;
	if (nl) {
		it->lkeys = calloc(nl, sizeof(char *));
		it->lvals = calloc(nl, sizeof(char *));
		if (!it->lkeys || !it->lvals)
			goto fail;
		for (size_t i = 0; i < nl; i++) {
			it->lkeys[i] = strdup(n->spec.labels.items[i].key);
			it->lvals[i] = strdup(n->spec.labels.items[i].value);
			it->nlabels = i + 1;
			if (!it->lkeys[i] || !it->lvals[i])
				goto fail;
		}
	}
	return it;
fail:
	item_free(it);
	return NULL;
}

static void mark(struct view *v, struct dirty *d, const char *id)
{
	if (v->all || id == NULL || hmap_get(&d->ids, id))
		return;
	char *key = strdup(id);
	if (key == NULL || hmap_put(&d->ids, key, key) != 0) {
		free(key);
		v->all = true; /* out of memory: render everything rather than miss one */
	}
}

static void dirty_clear(struct dirty *d)
{
	size_t pos = 0;
	char *key;
	while ((key = hmap_next(&d->ids, &pos)) != NULL)
		free(key);
	hmap_release(&d->ids);
	hmap_init(&d->ids);
}

void view_note(struct view *v, const struct proj_batch *chain)
{
	for (const struct proj_batch *b = chain; b && !v->all; b = b->next) {
		for (const struct proj_change *c = b->head; c; c = c->next) {
			switch (c->kind) {
			case PROJ_NODE_UPSERT:
			case PROJ_NODE_DELETE:
				mark(v, &v->dirty, c->params[0]);
				break;
			case PROJ_ACTOR_UPSERT:
			case PROJ_ACTOR_DELETE:
			case PROJ_PLACEMENTS_SET:
				mark(v, &v->adirty, c->params[0]);
				break;
			case PROJ_RESET:
				v->all = true;
				break;
			default:
				break;
			}
		}
	}
}

void view_invalidate(struct view *v)
{
	v->all = true;
}

/* A new object for every id marked (NULL: gone from the model). */
struct change {
	const char *id; /* the dirty set's key (freed with it, after the change) */
	void *obj;      /* struct vitem (nodes), struct vactor (actors) */
};

static void obj_free(enum view_kind k, void *obj)
{
	if (k == VIEW_NODES)
		item_free(obj);
	else
		free(obj);
}

static void changes_free(enum view_kind k, struct change *ch, size_t n)
{
	for (size_t i = 0; i < n; i++)
		obj_free(k, ch[i].obj);
	free(ch);
}

static int build_changes(struct view *v, const struct model *m, enum view_kind k, struct change **out,
			 size_t *nout)
{
	struct dirty *d = k == VIEW_NODES ? &v->dirty : &v->adirty;
	size_t n = d->ids.n, i = 0, pos = 0;
	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	struct change *ch = calloc(n, sizeof(*ch));
	if (ch == NULL)
		return -1;
	const char *id;
	while ((id = hmap_next(&d->ids, &pos)) != NULL) {
		const void *src;
		if (k == VIEW_NODES) {
			const struct model_node *nd = model_node_get(m, id);
			ch[i].obj = nd ? render_node_item(nd) : NULL;
			src = nd;
		} else {
			const struct model_actor *ac = model_actor_get(m, id);
			ch[i].obj = ac ? vactor_pack(ac) : NULL;
			src = ac;
		}
		ch[i].id = id;
		if (src && ch[i].obj == NULL) {
			changes_free(k, ch, i);
			return -1;
		}
		i++;
	}
	*out = ch;
	*nout = i;
	return 0;
}

/* Under the write lock: each change replaces its id's object; the old ones
 * are left in ch, to be freed outside the lock. Returns -1 when out of memory
 * (an actor's slot could not be made: the view is then part old, part new;
 * the caller takes it out of service). */
static int apply_changes(struct view *v, enum view_kind k, struct change *ch, size_t n)
{
	struct ovec *o = k == VIEW_NODES ? &v->nodes : &v->actors;
	for (size_t i = 0; i < n; i++) {
		if (ch[i].obj) {
			void *old;
			if (ovec_put(o, ch[i].obj, &old) != 0)
				return -1; /* ch[i..] still hold their new objects: freed with ch */
			ch[i].obj = old;
		} else {
			ch[i].obj = ovec_del(o, ch[i].id);
		}
	}
	return 0;
}

/* Every node and actor of m into fresh sets. */
/* Every object of one kind of m, rendered into an array, then sorted into
 * the ovec at once. */
static int build_kind(const struct model *m, enum view_kind k, struct ovec *o)
{
	const struct hmap *src = k == VIEW_NODES ? &m->nodes : &m->actors;
	size_t n = src->n, i = 0, pos = 0;
	void **all = malloc((n ? n : 1) * sizeof(*all));
	if (all == NULL)
		return -1;
	const void *obj;
	while (i < n && (obj = hmap_next(src, &pos)) != NULL) {
		all[i] = k == VIEW_NODES ? (void *)render_node_item(obj) : (void *)vactor_pack(obj);
		if (all[i] == NULL)
			break;
		i++;
	}
	int rc = i == n && ovec_build(o, all, n) == 0 ? 0 : -1;
	if (rc != 0)
		for (size_t j = 0; j < i; j++)
			obj_free(k, all[j]);
	free(all);
	return rc;
}

static int build_all(const struct model *m, struct ovec *nodes, struct ovec *actors)
{
	ovec_init(nodes, item_key);
	ovec_init(actors, act_key);
	return build_kind(m, VIEW_NODES, nodes) == 0 && build_kind(m, VIEW_ACTORS, actors) == 0 ? 0 : -1;
}

static void publish_all(struct view *v, const struct model *m, uint64_t index)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct ovec nodes, actors;
	if (build_all(m, &nodes, &actors) != 0) {
		item_clear(&nodes);
		act_clear(&actors);
		return; /* out of memory: still all to do; the old view stays */
	}
	pthread_rwlock_wrlock(&v->lock);
	struct ovec old_nodes = v->nodes, old_actors = v->actors;
	v->nodes = nodes;
	v->actors = actors;
	v->gen++;
	atomic_store(&v->index, index);
	pthread_rwlock_unlock(&v->lock);
	atomic_store(&v->ready, true);
	item_clear(&old_nodes);
	act_clear(&old_actors);
	dirty_clear(&v->dirty);
	dirty_clear(&v->adirty);
	v->all = false;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("read view built at index %llu: %zu nodes, %zu actors in %.1f ms on the loop thread",
		 (unsigned long long)index, v->nodes.n, v->actors.n,
		 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
}

void view_publish(struct view *v, struct model *m, uint64_t index, bool replaying)
{
	/* Nodes whose usage changed (an actor placed, moved, resized, gone). */
	struct model_node **touched;
	bool all;
	size_t nt = model_take_touched(m, &touched, &all);
	v->all |= all;
	for (size_t i = 0; i < nt && !v->all; i++)
		mark(v, &v->dirty, touched[i]->spec.id);
	if (replaying) {
		/* Entries PostgreSQL already held come without batches: whatever is
		 * noted now is covered by the whole build once the replay is done. */
		v->all = true;
		return;
	}
	if (v->all) {
		publish_all(v, m, index);
		return;
	}
	if (v->dirty.ids.n == 0 && v->adirty.ids.n == 0) {
		if (atomic_load(&v->ready))
			atomic_store(&v->index, index);
		return;
	}
	struct change *nch = NULL, *ach = NULL;
	size_t nn = 0, na = 0;
	if (build_changes(v, m, VIEW_NODES, &nch, &nn) != 0 || build_changes(v, m, VIEW_ACTORS, &ach, &na) != 0) {
		changes_free(VIEW_NODES, nch, nn);
		v->all = true; /* try again whole at the next iteration */
		return;
	}
	pthread_rwlock_wrlock(&v->lock);
	int rc = apply_changes(v, VIEW_NODES, nch, nn);
	rc = rc == 0 ? apply_changes(v, VIEW_ACTORS, ach, na) : rc;
	v->gen++;
	if (rc == 0)
		atomic_store(&v->index, index);
	else {
		/* Half applied: reads go to PostgreSQL until the whole view is
		 * built again (at the next iteration, memory allowing). */
		atomic_store(&v->ready, false);
		v->all = true;
		log_warn("read view: out of memory applying changes at index %llu; reads go to PostgreSQL until it is rebuilt",
			 (unsigned long long)index);
	}
	pthread_rwlock_unlock(&v->lock);
	changes_free(VIEW_NODES, nch, nn);
	changes_free(VIEW_ACTORS, ach, na);
	dirty_clear(&v->dirty);
	dirty_clear(&v->adirty);
}

/* ---- reading (any thread) ----------------------------------------------------- */

bool view_ready(struct view *v, uint64_t min_index)
{
	return v && atomic_load(&v->ready) && atomic_load(&v->index) >= min_index;
}

int view_get(struct view *v, enum view_kind k, const char *id, char **json, uint64_t *index)
{
	if (!view_ready(v, 0))
		return -2;
	int rc = -1;
	char *copy = NULL;
	struct vactor *acopy = NULL;
	pthread_rwlock_rdlock(&v->lock);
	if (!atomic_load(&v->ready)) {
		/* Taken out of service while this reader waited (a publication
		 * that ran out of memory half way): PostgreSQL answers. */
		pthread_rwlock_unlock(&v->lock);
		return -2;
	}
	if (k == VIEW_NODES) {
		const struct vitem *it = ovec_find(&v->nodes, id);
		if (it) {
			copy = malloc(it->len + 1);
			if (copy)
				memcpy(copy, it->json, it->len + 1);
			rc = copy ? 0 : -2;
		}
	} else {
		const struct vactor *r = ovec_find(&v->actors, id);
		if (r) {
			acopy = vactor_copy(r);
			rc = acopy ? 0 : -2;
		}
	}
	*index = atomic_load(&v->index);
	pthread_rwlock_unlock(&v->lock);
	if (acopy) {
		copy = vactor_text(acopy);
		free(acopy);
		rc = copy ? 0 : -2;
	}
	if (rc == 0)
		*json = copy;
	return rc;
}

static bool matches(const struct vitem *it, const struct query_filter *f)
{
	if (f->region && strcmp(f->region, it->region) != 0)
		return false;
	if (f->status && strcmp(f->status, it->status) != 0)
		return false;
	if (f->label_key) {
		size_t i = 0;
		while (i < it->nlabels && strcmp(it->lkeys[i], f->label_key) != 0)
			i++;
		if (i == it->nlabels || (f->label_value && strcmp(f->label_value, it->lvals[i]) != 0))
			return false;
	}
	return true;
}

/* Actors a ?node= walk looks at under the read lock at a time: it may have to
 * walk all of them (a node with few actors: 100,000 take 4-7 ms), which must
 * not hold the loop's next publication that long. */
#define VIEW_WALK_CHUNK 4096

/* Actors whose memory a walk asks for ahead of reading them: the page's
 * records sit anywhere in the heap; fetched together they cost about one
 * memory latency instead of one each. */
#define VIEW_PREFETCH 16

static inline void prefetch_record(const void *r)
{
	/* The header and the lines after it: a record is ~150-300 bytes. */
	__builtin_prefetch(r);
	__builtin_prefetch((const char *)r + 64);
	__builtin_prefetch((const char *)r + 128);
}

/* Under the read lock: a page of nodes, their text appended to w; returns
 * the last one's id when more follow (NULL: none). sel has room for limit. */
static const char *list_nodes(struct view *v, const struct query_filter *f, int64_t limit, struct jw *w,
			      const struct vitem **sel)
{
	const struct ovec *o = &v->nodes;
	int64_t n = 0;
	bool more = false;
	size_t run;
	void *const *it;
	for (struct ovec_pos p = ovec_after(o, f->after); !more && (it = ovec_run(o, p, &run)) != NULL;
	     p.leaf++, p.slot = 0) {
		for (size_t i = 0; i < run; i++) {
			if (i + VIEW_PREFETCH < run)
				__builtin_prefetch(it[i + VIEW_PREFETCH]);
			if (!matches(it[i], f))
				continue;
			if (n == limit) {
				more = true;
				break;
			}
			sel[n++] = it[i];
		}
	}
	/* Every line of the page's texts asked for before the copy (measured:
	 * 10-40% more pages/s than letting the copy miss its way through). */
	for (int64_t i = 0; i < n; i++)
		for (size_t off = 0; off < sel[i]->len; off += 64)
			__builtin_prefetch(sel[i]->json + off);
	for (int64_t i = 0; i < n; i++)
		jw_json(w, sel[i]->json, sel[i]->len);
	return more && n > 0 ? sel[n - 1]->id : NULL;
}

/* Under the read lock: copies of a page of actors, in one allocation (*block,
 * malloc'd; out[0..*n) point into it); returns whether more follow. -1: out
 * of memory; -2: the walk let go of the lock between chunks and the view
 * changed meanwhile (the lock is held again; nothing is copied). */
static int list_actors(struct view *v, const struct query_filter *f, int64_t limit, struct vactor **out, int64_t *n,
		       char **block)
{
	const struct ovec *o = &v->actors;
	int more = 0;
	size_t walked = 0, run;
	uint64_t gen = v->gen;
	void *const *it;
	*n = 0;
	for (struct ovec_pos p = ovec_after(o, f->after); (it = ovec_run(o, p, &run)) != NULL; p.leaf++, p.slot = 0) {
		for (size_t i = 0; i < run; i++) {
			if (f->node_id) {
				if (i + VIEW_PREFETCH < run)
					prefetch_record(it[i + VIEW_PREFETCH]);
				if (++walked % VIEW_WALK_CHUNK == 0) {
					/* Let the loop in; `it` and out[] stay valid only if
					 * nothing changed. */
					pthread_rwlock_unlock(&v->lock);
					pthread_rwlock_rdlock(&v->lock);
					if (v->gen != gen || !atomic_load(&v->ready)) {
						*n = 0;
						return -2;
					}
				}
				if (!vactor_on_node(it[i], f->node_id))
					continue;
			}
			if (*n == limit) {
				more = 1;
				goto page;
			}
			out[(*n)++] = it[i];
		}
	}
page:
	if (*n == 0)
		return more;
	size_t total = 0;
	for (int64_t i = 0; i < *n; i++)
		prefetch_record(out[i]);
	for (int64_t i = 0; i < *n; i++)
		total += ((size_t)out[i]->size + 15) & ~(size_t)15; /* each copy 16-byte aligned */
	if ((*block = malloc(total)) == NULL) {
		*n = 0;
		return -1;
	}
	size_t off = 0;
	for (int64_t i = 0; i < *n; i++) {
		struct vactor *c = (struct vactor *)(*block + off);
		memcpy(c, out[i], out[i]->size);
		off += ((size_t)out[i]->size + 15) & ~(size_t)15;
		out[i] = c;
	}
	return more;
}

int view_list(struct view *v, enum view_kind k, const struct query_filter *f, char **json, uint64_t *index)
{
	if (!view_ready(v, 0))
		return -2;
	int64_t limit = f->limit <= 0 ? QUERY_LIMIT_DEFAULT : f->limit > QUERY_LIMIT_MAX ? QUERY_LIMIT_MAX : f->limit;
	/* The page's objects (the view's nodes; copies of its actors). */
	void **sel = calloc((size_t)limit, sizeof(*sel));
	if (sel == NULL)
		return -2;
	struct jw w;
	jw_init(&w);
	jw_reserve(&w, (size_t)limit * (k == VIEW_NODES ? 768 : 512)); /* a page's usual size */
	jw_obj(&w);
	jw_key(&w, "items");
	jw_arr(&w);
	int64_t na = 0;
	int more = 0;
	char next[SPEC_ID_MAX + 1] = "", *block = NULL;
	pthread_rwlock_rdlock(&v->lock);
	if (!atomic_load(&v->ready)) {
		more = -2; /* out of service while this reader waited (see view_get) */
	} else if (k == VIEW_NODES) {
		const char *last = list_nodes(v, f, limit, &w, (const struct vitem **)sel);
		if (last)
			snprintf(next, sizeof(next), "%s", last);
	} else {
		/* A walk that saw the sets change restarts; after three, PostgreSQL
		 * answers (writes faster than a walk over every actor). */
		for (int tries = 0; tries < 3 && atomic_load(&v->ready) &&
				    (more = list_actors(v, f, limit, (struct vactor **)sel, &na, &block)) == -2;
		     tries++)
			;
	}
	*index = atomic_load(&v->index);
	pthread_rwlock_unlock(&v->lock);
	/* Actors are rendered outside the lock, from the copies. */
	for (int64_t i = 0; i < na; i++)
		vactor_write(&w, sel[i]);
	if (more == 1 && na > 0)
		snprintf(next, sizeof(next), "%s", vactor_id(sel[na - 1]));
	free(block);
	free(sel);
	jw_arr_end(&w);
	jw_key(&w, "next");
	jw_str(&w, next[0] ? next : NULL);
	jw_obj_end(&w);
	*json = more < 0 ? NULL : jw_take(&w, NULL);
	jw_free(&w);
	return *json ? 0 : more == -2 ? -3 : -2;
}

/* ---- lifecycle ------------------------------------------------------------------ */

struct view *view_new(void)
{
	struct view *v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	pthread_rwlockattr_t ra;
	int rc = pthread_rwlockattr_init(&ra);
	if (rc == 0) {
		pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		rc = pthread_rwlock_init(&v->lock, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	if (rc != 0) {
		free(v);
		return NULL;
	}
	ovec_init(&v->nodes, item_key);
	ovec_init(&v->actors, act_key);
	hmap_init(&v->dirty.ids);
	hmap_init(&v->adirty.ids);
	v->all = true;
	return v;
}

void view_free(struct view *v)
{
	if (v == NULL)
		return;
	item_clear(&v->nodes);
	act_clear(&v->actors);
	dirty_clear(&v->dirty);
	dirty_clear(&v->adirty);
	pthread_rwlock_destroy(&v->lock);
	free(v);
}
