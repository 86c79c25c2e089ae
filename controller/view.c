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
#include "otree.h"
#include "proj.h"
#include "query.h"
#include "render.h"

/* One object as the API shows it, with what list filters look at. Owned by
 * its tree; immutable once published (a change publishes a new item). */
struct vitem {
	struct otree_link link;
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
	struct otree nodes; /* lock */
	/* The applied index the trees reflect. Set under the write lock with a
	 * change; without one (an iteration that touched no node or actor) it
	 * moves on by itself: the trees are what they were at the new index too. */
	atomic_uint_fast64_t index;
	atomic_bool ready;
	/* loop thread only */
	struct dirty dirty; /* node ids to render again */
	bool all;           /* render every node again */
};

static int item_cmp(const struct otree_link *a, const struct otree_link *b)
{
	return strcmp(otree_entry(a, struct vitem, link)->id, otree_entry(b, struct vitem, link)->id);
}

static int item_keycmp(const void *key, const struct otree_link *b)
{
	return strcmp(key, otree_entry(b, struct vitem, link)->id);
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

static struct vitem *tree_find(const struct otree *t, const char *id)
{
	struct otree_link *l = otree_lower_bound(t, id, item_keycmp);
	struct vitem *it = l ? otree_entry(l, struct vitem, link) : NULL;
	return it && strcmp(it->id, id) == 0 ? it : NULL;
}

static void tree_clear(struct otree *t)
{
	struct otree_link *l;
	while ((l = otree_first(t)) != NULL) {
		otree_remove(t, l);
		item_free(otree_entry(l, struct vitem, link));
	}
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

static void mark(struct view *v, const char *id)
{
	if (v->all || id == NULL || hmap_get(&v->dirty.ids, id))
		return;
	char *key = strdup(id);
	if (key == NULL || hmap_put(&v->dirty.ids, key, key) != 0) {
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
				mark(v, c->params[0]);
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

/* A new item for every node marked (NULL: gone from the model). */
struct change {
	const char *id; /* the dirty set's key (freed with it, after the change) */
	struct vitem *item;
};

static int build_changes(struct view *v, const struct model *m, struct change **out, size_t *nout)
{
	size_t n = v->dirty.ids.n, k = 0, pos = 0;
	struct change *ch = n ? calloc(n, sizeof(*ch)) : NULL;
	const char *id;
	if (n && ch == NULL)
		return -1;
	while ((id = hmap_next(&v->dirty.ids, &pos)) != NULL) {
		const struct model_node *nd = model_node_get(m, id);
		ch[k].id = id;
		ch[k].item = nd ? render_node_item(nd) : NULL;
		if (nd && ch[k].item == NULL) {
			for (size_t i = 0; i < k; i++)
				item_free(ch[i].item);
			free(ch);
			return -1;
		}
		k++;
	}
	*out = ch;
	*nout = k;
	return 0;
}

/* Every node of m into a fresh tree. */
static int build_all(const struct model *m, struct otree *tree)
{
	otree_init(tree, item_cmp);
	size_t pos = 0;
	const struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		struct vitem *it = render_node_item(n);
		if (it == NULL)
			return -1;
		otree_insert(tree, &it->link);
	}
	return 0;
}

void view_publish(struct view *v, struct model *m, uint64_t index, bool replaying)
{
	/* Nodes whose usage changed (an actor placed, moved, resized, gone). */
	struct model_node **touched;
	bool all;
	size_t nt = model_take_touched(m, &touched, &all);
	v->all |= all;
	for (size_t i = 0; i < nt && !v->all; i++)
		mark(v, touched[i]->spec.id);
	if (replaying) {
		/* Entries PostgreSQL already held come without batches: whatever is
		 * noted now is covered by the whole build once the replay is done. */
		v->all = true;
		return;
	}
	if (v->all) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		struct otree fresh;
		if (build_all(m, &fresh) != 0) {
			tree_clear(&fresh);
			return; /* out of memory: still all to do; the old view stays */
		}
		pthread_rwlock_wrlock(&v->lock);
		struct otree old = v->nodes;
		v->nodes = fresh;
		atomic_store(&v->index, index);
		pthread_rwlock_unlock(&v->lock);
		atomic_store(&v->ready, true);
		tree_clear(&old);
		dirty_clear(&v->dirty);
		v->all = false;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		log_info("read view built at index %llu: %zu nodes in %.1f ms on the loop thread",
			 (unsigned long long)index, v->nodes.n,
			 (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
		return;
	}
	if (v->dirty.ids.n == 0) {
		if (atomic_load(&v->ready))
			atomic_store(&v->index, index);
		return;
	}
	struct change *ch = NULL;
	size_t n = 0;
	if (build_changes(v, m, &ch, &n) != 0) {
		v->all = true; /* try again whole at the next iteration */
		return;
	}
	pthread_rwlock_wrlock(&v->lock);
	for (size_t i = 0; i < n; i++) {
		struct vitem *old = tree_find(&v->nodes, ch[i].id);
		if (old)
			otree_remove(&v->nodes, &old->link);
		if (ch[i].item)
			otree_insert(&v->nodes, &ch[i].item->link);
		ch[i].item = old; /* freed below, outside the lock */
	}
	atomic_store(&v->index, index);
	pthread_rwlock_unlock(&v->lock);
	for (size_t i = 0; i < n; i++)
		item_free(ch[i].item);
	free(ch);
	dirty_clear(&v->dirty);
}

/* ---- reading (any thread) ----------------------------------------------------- */

bool view_ready(struct view *v)
{
	return v && atomic_load(&v->ready);
}

bool view_serves(enum view_kind k)
{
	return k == VIEW_NODES;
}

int view_get(struct view *v, enum view_kind k, const char *id, char **json, uint64_t *index)
{
	if (!view_ready(v) || !view_serves(k))
		return -2;
	int rc = -1;
	pthread_rwlock_rdlock(&v->lock);
	const struct vitem *it = tree_find(&v->nodes, id);
	if (it) {
		char *copy = malloc(it->len + 1);
		if (copy) {
			memcpy(copy, it->json, it->len + 1);
			*json = copy;
			*index = atomic_load(&v->index);
			rc = 0;
		} else {
			rc = -2;
		}
	}
	pthread_rwlock_unlock(&v->lock);
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

int view_list(struct view *v, enum view_kind k, const struct query_filter *f, char **json, uint64_t *index)
{
	if (!view_ready(v) || !view_serves(k))
		return -2;
	int64_t limit = f->limit <= 0 ? QUERY_LIMIT_DEFAULT : f->limit > QUERY_LIMIT_MAX ? QUERY_LIMIT_MAX : f->limit;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "items");
	jw_arr(&w);
	pthread_rwlock_rdlock(&v->lock);
	const struct otree *t = &v->nodes;
	struct otree_link *l = f->after ? otree_upper_bound(t, f->after, item_keycmp) : otree_first(t);
	int64_t n = 0;
	const struct vitem *last = NULL;
	bool more = false;
	for (; l; l = otree_next(l)) {
		const struct vitem *it = otree_entry(l, struct vitem, link);
		if (!matches(it, f))
			continue;
		if (n == limit) {
			more = true;
			break;
		}
		jw_json(&w, it->json, it->len);
		last = it;
		n++;
	}
	jw_arr_end(&w);
	jw_key(&w, "next");
	jw_str(&w, more && last ? last->id : NULL);
	*index = atomic_load(&v->index);
	pthread_rwlock_unlock(&v->lock);
	jw_obj_end(&w);
	*json = jw_take(&w, NULL);
	jw_free(&w);
	return *json ? 0 : -2;
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
	otree_init(&v->nodes, item_cmp);
	hmap_init(&v->dirty.ids);
	v->all = true;
	return v;
}

void view_free(struct view *v)
{
	if (v == NULL)
		return;
	tree_clear(&v->nodes);
	dirty_clear(&v->dirty);
	pthread_rwlock_destroy(&v->lock);
	free(v);
}
