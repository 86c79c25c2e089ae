/* pthread_rwlockattr_setkind_np: the loop thread (the only writer) must not
 * wait behind a stream of readers. */
#define _GNU_SOURCE
#include "view.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hmap.h"
#include "jw.h"
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
	char **nodes;               /* actors: the nodes of its placements */
	size_t nnodes;
};

/* Ids to render again (keys owned: the strdup'd id is also the value). */
struct dirty {
	struct hmap ids;
};

struct view {
	pthread_rwlock_t lock;
	struct otree trees[VIEW_KINDS]; /* lock */
	/* The applied index the trees reflect. Set under the write lock with a
	 * change; without one (an iteration that touched no node or actor) it
	 * moves on by itself: the trees are what they were at the new index too. */
	atomic_uint_fast64_t index;
	atomic_bool ready;
	/* loop thread only */
	struct dirty dirty[VIEW_KINDS];
	bool all; /* render everything again */
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
	for (size_t i = 0; i < it->nnodes; i++)
		free(it->nodes[i]);
	free(it->nodes);
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

static struct vitem *render_actor_item(const struct model_actor *a)
{
	struct vitem *it = calloc(1, sizeof(*it));
	if (it == NULL || (it->json = render_actor_text(a)) == NULL || (it->id = strdup(a->spec.id)) == NULL)
		goto fail;
	it->len = strlen(it->json);
	if (a->nplacements && (it->nodes = calloc(a->nplacements, sizeof(char *))) == NULL)
		goto fail;
	for (size_t i = 0; i < a->nplacements; i++) {
		const struct model_node *n = a->placements[i].node;
		if (n && (it->nodes[it->nnodes++] = strdup(n->spec.id)) == NULL)
			goto fail;
	}
	return it;
fail:
	item_free(it);
	return NULL;
}

static void mark(struct view *v, enum view_kind k, const char *id)
{
	if (v->all || id == NULL || hmap_get(&v->dirty[k].ids, id))
		return;
	char *key = strdup(id);
	if (key == NULL || hmap_put(&v->dirty[k].ids, key, key) != 0) {
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
				mark(v, VIEW_NODES, c->params[0]);
				break;
			case PROJ_ACTOR_UPSERT:
			case PROJ_ACTOR_DELETE:
			case PROJ_PLACEMENTS_SET:
				mark(v, VIEW_ACTORS, c->params[0]);
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

/* A new item for every id marked (NULL: gone from the model); the nodes an
 * actor leaves or joins are marked first, since their usage changes. */
struct change {
	enum view_kind k;
	const char *id; /* the dirty set's key (freed with it, after the change) */
	struct vitem *item;
};

static int build_changes(struct view *v, const struct model *m, struct change **out, size_t *nout)
{
	size_t pos = 0;
	char *id;
	/* Actors first: they mark nodes. */
	while ((id = hmap_next(&v->dirty[VIEW_ACTORS].ids, &pos)) != NULL) {
		const struct vitem *old = tree_find(&v->trees[VIEW_ACTORS], id);
		for (size_t i = 0; old && i < old->nnodes; i++)
			mark(v, VIEW_NODES, old->nodes[i]);
		const struct model_actor *a = model_actor_get(m, id);
		for (size_t i = 0; a && i < a->nplacements; i++)
			if (a->placements[i].node)
				mark(v, VIEW_NODES, a->placements[i].node->spec.id);
	}
	size_t n = v->dirty[VIEW_ACTORS].ids.n + v->dirty[VIEW_NODES].ids.n, k = 0;
	struct change *ch = n ? calloc(n, sizeof(*ch)) : NULL;
	if (n && ch == NULL)
		return -1;
	for (int kind = 0; kind < VIEW_KINDS; kind++) {
		pos = 0;
		while ((id = hmap_next(&v->dirty[kind].ids, &pos)) != NULL) {
			ch[k].k = (enum view_kind)kind;
			ch[k].id = id;
			if (kind == VIEW_NODES) {
				const struct model_node *nd = model_node_get(m, id);
				ch[k].item = nd ? render_node_item(nd) : NULL;
				if (nd && ch[k].item == NULL)
					goto oom;
			} else {
				const struct model_actor *a = model_actor_get(m, id);
				ch[k].item = a ? render_actor_item(a) : NULL;
				if (a && ch[k].item == NULL)
					goto oom;
			}
			k++;
		}
	}
	*out = ch;
	*nout = k;
	return 0;
oom:
	for (size_t i = 0; i <= k; i++)
		item_free(ch[i].item);
	free(ch);
	return -1;
}

/* Every node and actor of m into fresh trees. */
static int build_all(const struct model *m, struct otree trees[VIEW_KINDS])
{
	otree_init(&trees[VIEW_NODES], item_cmp);
	otree_init(&trees[VIEW_ACTORS], item_cmp);
	size_t pos = 0;
	const struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		struct vitem *it = render_node_item(n);
		if (it == NULL)
			return -1;
		otree_insert(&trees[VIEW_NODES], &it->link);
	}
	pos = 0;
	const struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL) {
		struct vitem *it = render_actor_item(a);
		if (it == NULL)
			return -1;
		otree_insert(&trees[VIEW_ACTORS], &it->link);
	}
	return 0;
}

void view_publish(struct view *v, const struct model *m, uint64_t index, bool replaying)
{
	if (replaying) {
		/* Entries PostgreSQL already held come without batches: whatever is
		 * noted now is covered by the whole build once the replay is done. */
		v->all = true;
		return;
	}
	if (v->all) {
		struct otree fresh[VIEW_KINDS];
		if (build_all(m, fresh) != 0) {
			for (int k = 0; k < VIEW_KINDS; k++)
				tree_clear(&fresh[k]);
			return; /* out of memory: still all to do; the old view stays */
		}
		struct otree old[VIEW_KINDS];
		pthread_rwlock_wrlock(&v->lock);
		memcpy(old, v->trees, sizeof(old));
		memcpy(v->trees, fresh, sizeof(fresh));
		atomic_store(&v->index, index);
		pthread_rwlock_unlock(&v->lock);
		atomic_store(&v->ready, true);
		for (int k = 0; k < VIEW_KINDS; k++) {
			tree_clear(&old[k]);
			dirty_clear(&v->dirty[k]);
		}
		v->all = false;
		return;
	}
	if (v->dirty[VIEW_NODES].ids.n == 0 && v->dirty[VIEW_ACTORS].ids.n == 0) {
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
		struct otree *t = &v->trees[ch[i].k];
		struct vitem *old = tree_find(t, ch[i].id);
		if (old)
			otree_remove(t, &old->link);
		if (ch[i].item)
			otree_insert(t, &ch[i].item->link);
		ch[i].item = old; /* freed below, outside the lock */
	}
	atomic_store(&v->index, index);
	pthread_rwlock_unlock(&v->lock);
	for (size_t i = 0; i < n; i++)
		item_free(ch[i].item);
	free(ch);
	for (int k = 0; k < VIEW_KINDS; k++)
		dirty_clear(&v->dirty[k]);
}

/* ---- reading (any thread) ----------------------------------------------------- */

bool view_ready(struct view *v)
{
	return v && atomic_load(&v->ready);
}

int view_get(struct view *v, enum view_kind k, const char *id, char **json, uint64_t *index)
{
	if (!view_ready(v))
		return -2;
	int rc = -1;
	pthread_rwlock_rdlock(&v->lock);
	const struct vitem *it = tree_find(&v->trees[k], id);
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

static bool matches(enum view_kind k, const struct vitem *it, const struct query_filter *f)
{
	if (k == VIEW_NODES) {
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
	if (f->node_id) {
		size_t i = 0;
		while (i < it->nnodes && strcmp(it->nodes[i], f->node_id) != 0)
			i++;
		return i < it->nnodes;
	}
	return true;
}

int view_list(struct view *v, enum view_kind k, const struct query_filter *f, char **json, uint64_t *index)
{
	if (!view_ready(v))
		return -2;
	int64_t limit = f->limit <= 0 ? QUERY_LIMIT_DEFAULT : f->limit > QUERY_LIMIT_MAX ? QUERY_LIMIT_MAX : f->limit;
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "items");
	jw_arr(&w);
	pthread_rwlock_rdlock(&v->lock);
	const struct otree *t = &v->trees[k];
	struct otree_link *l = f->after ? otree_upper_bound(t, f->after, item_keycmp) : otree_first(t);
	int64_t n = 0;
	const struct vitem *last = NULL;
	bool more = false;
	for (; l; l = otree_next(l)) {
		const struct vitem *it = otree_entry(l, struct vitem, link);
		if (!matches(k, it, f))
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
	for (int k = 0; k < VIEW_KINDS; k++) {
		otree_init(&v->trees[k], item_cmp);
		hmap_init(&v->dirty[k].ids);
	}
	v->all = true;
	return v;
}

void view_free(struct view *v)
{
	if (v == NULL)
		return;
	for (int k = 0; k < VIEW_KINDS; k++) {
		tree_clear(&v->trees[k]);
		dirty_clear(&v->dirty[k]);
	}
	pthread_rwlock_destroy(&v->lock);
	free(v);
}
