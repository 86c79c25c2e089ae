/* ovec — see ovec.h. */
#include "ovec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void ovec_init(struct ovec *o, ovec_key_fn key)
{
	memset(o, 0, sizeof(*o));
	o->key = key;
}

void ovec_clear(struct ovec *o)
{
	for (size_t i = 0; i < o->nleaf; i++)
		free(o->leaf[i]);
	free(o->leaf);
	free(o->lead);
	ovec_init(o, o->key);
}

static struct ovec_lead lead_of(const char *key)
{
	unsigned char b[16] = {0};
	for (size_t i = 0; i < sizeof(b) && key[i]; i++)
		b[i] = (unsigned char)key[i];
	struct ovec_lead d = {0, 0};
	for (size_t i = 0; i < 8; i++) {
		d.hi = d.hi << 8 | b[i];
		d.lo = d.lo << 8 | b[8 + i];
	}
	return d;
}

/* leaf[i]'s first key changed (or the leaf is new at i). */
static void set_lead(struct ovec *o, size_t i)
{
	o->lead[i] = lead_of(o->key(o->leaf[i]->item[0]));
}

/* A new leaf l at position i of the array (which has room). */
static void leaf_insert(struct ovec *o, size_t i, struct ovec_leaf *l)
{
	memmove(o->leaf + i + 1, o->leaf + i, (o->nleaf - i) * sizeof(*o->leaf));
	memmove(o->lead + i + 1, o->lead + i, (o->nleaf - i) * sizeof(*o->lead));
	o->leaf[i] = l;
	o->nleaf++;
	set_lead(o, i);
}

/* Leaf i out of the array (not freed). */
static void leaf_remove(struct ovec *o, size_t i)
{
	memmove(o->leaf + i, o->leaf + i + 1, (o->nleaf - i - 1) * sizeof(*o->leaf));
	memmove(o->lead + i, o->lead + i + 1, (o->nleaf - i - 1) * sizeof(*o->lead));
	o->nleaf--;
}

/* qsort's comparison has no context: the key function of the ovec being built. */
static _Thread_local ovec_key_fn sort_key;

static int sort_cmp(const void *a, const void *b)
{
	return strcmp(sort_key(*(void *const *)a), sort_key(*(void *const *)b));
}

/* Room for one more leaf in the array; false when out of memory. */
static int leaf_room(struct ovec *o)
{
	if (o->nleaf < o->cap)
		return 0;
	size_t cap = o->cap ? o->cap * 2 : 8;
	struct ovec_leaf **l = realloc(o->leaf, cap * sizeof(*l));
	if (l == NULL)
		return -1;
	o->leaf = l;
	struct ovec_lead *d = realloc(o->lead, cap * sizeof(*d));
	if (d == NULL)
		return -1; /* the leaves' array grew, the cap did not: harmless */
	o->lead = d;
	o->cap = cap;
	return 0;
}

int ovec_build(struct ovec *o, void **items, size_t n)
{
	sort_key = o->key;
	qsort(items, n, sizeof(*items), sort_cmp);
	/* Three quarters full: the next inserts rarely split. */
	const size_t fill = OVEC_LEAF * 3 / 4;
	for (size_t i = 0; i < n; i += fill) {
		struct ovec_leaf *l = malloc(sizeof(*l));
		if (l == NULL || leaf_room(o) != 0) {
			free(l);
			ovec_clear(o);
			return -1;
		}
		l->n = n - i < fill ? n - i : fill;
		memcpy(l->item, items + i, l->n * sizeof(*items));
		leaf_insert(o, o->nleaf, l);
	}
	o->n = n;
	return 0;
}

/* The leaf where key belongs: the last whose first key is not after it (the
 * first leaf when key sorts before everything). nleaf must be > 0. The leads
 * decide without reading a leaf or an item, unless they are equal. */
static size_t leaf_of(const struct ovec *o, const char *key)
{
	const struct ovec_lead k = lead_of(key);
	size_t lo = 0, hi = o->nleaf; /* answer in [lo, hi) */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		const struct ovec_lead *m = &o->lead[mid];
		bool before;
		if (k.hi != m->hi)
			before = k.hi < m->hi;
		else if (k.lo != m->lo)
			before = k.lo < m->lo;
		else
			before = strcmp(key, o->key(o->leaf[mid]->item[0])) < 0;
		if (before)
			hi = mid;
		else
			lo = mid;
	}
	return lo;
}

/* The first slot of l whose key is not before key (l->n when none); *eq
 * whether that one's key is key. */
static size_t slot_of(const struct ovec *o, const struct ovec_leaf *l, const char *key, int *eq)
{
	size_t lo = 0, hi = l->n;
	*eq = 0;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(key, o->key(l->item[mid]));
		if (c == 0) {
			*eq = 1;
			return mid;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

void *ovec_find(const struct ovec *o, const char *key)
{
	if (o->nleaf == 0)
		return NULL;
	const struct ovec_leaf *l = o->leaf[leaf_of(o, key)];
	int eq;
	size_t s = slot_of(o, l, key, &eq);
	return eq ? l->item[s] : NULL;
}

/* Leaf i and i + 1 into i (they fit). */
static void merge(struct ovec *o, size_t i)
{
	struct ovec_leaf *a = o->leaf[i], *b = o->leaf[i + 1];
	memcpy(a->item + a->n, b->item, b->n * sizeof(void *));
	a->n += b->n;
	free(b);
	leaf_remove(o, i + 1);
}

/* Keeps every two neighbouring leaves above three quarters of a leaf between
 * them: merges leaf li with a neighbour while the two fit in that (room left
 * for inserts). Called for each leaf that shrank (a delete, a split): only
 * pairs with such a leaf can have fallen to it. */
static void rebalance(struct ovec *o, size_t li)
{
	const size_t most = OVEC_LEAF * 3 / 4;
	if (li >= o->nleaf)
		li = o->nleaf ? o->nleaf - 1 : 0;
	while (o->nleaf > 1) {
		if (li + 1 < o->nleaf && o->leaf[li]->n + o->leaf[li + 1]->n <= most) {
			merge(o, li);
		} else if (li > 0 && o->leaf[li - 1]->n + o->leaf[li]->n <= most) {
			merge(o, li - 1);
			li--;
		} else {
			break;
		}
	}
}

int ovec_put(struct ovec *o, void *item, void **old)
{
	const char *key = o->key(item);
	*old = NULL;
	if (o->nleaf == 0) {
		struct ovec_leaf *l = malloc(sizeof(*l));
		if (l == NULL || leaf_room(o) != 0) {
			free(l);
			return -1;
		}
		l->n = 1;
		l->item[0] = item;
		leaf_insert(o, 0, l);
		o->n = 1;
		return 0;
	}
	size_t li = leaf_of(o, key);
	struct ovec_leaf *l = o->leaf[li];
	int eq;
	size_t s = slot_of(o, l, key, &eq);
	if (eq) {
		*old = l->item[s];
		l->item[s] = item;
		return 0;
	}
	bool split = l->n == OVEC_LEAF;
	if (split) {
		/* Split in halves; the new one goes after l. */
		struct ovec_leaf *r = malloc(sizeof(*r));
		if (r == NULL || leaf_room(o) != 0) {
			free(r);
			return -1;
		}
		size_t half = OVEC_LEAF / 2;
		r->n = l->n - half;
		memcpy(r->item, l->item + half, r->n * sizeof(void *));
		l->n = half;
		leaf_insert(o, li + 1, r);
		if (s > half) {
			l = r;
			s -= half;
		}
	}
	memmove(l->item + s + 1, l->item + s, (l->n - s) * sizeof(void *));
	l->item[s] = item;
	l->n++;
	o->n++;
	if (s == 0) /* only in the first leaf (a key before every other), never in a split's right half */
		set_lead(o, li);
	if (split) {
		/* Each half may now fit with its outer neighbour (a leaf of a few
		 * items was fine beside a full one). */
		rebalance(o, li + 1);
		rebalance(o, li);
	}
	return 0;
}

void *ovec_del(struct ovec *o, const char *key)
{
	if (o->nleaf == 0)
		return NULL;
	size_t li = leaf_of(o, key);
	struct ovec_leaf *l = o->leaf[li];
	int eq;
	size_t s = slot_of(o, l, key, &eq);
	if (!eq)
		return NULL;
	void *item = l->item[s];
	memmove(l->item + s, l->item + s + 1, (l->n - s - 1) * sizeof(void *));
	l->n--;
	o->n--;
	if (l->n == 0) {
		free(l);
		leaf_remove(o, li);
	} else if (s == 0) {
		set_lead(o, li);
	}
	rebalance(o, li);
	return item;
}

struct ovec_pos ovec_after(const struct ovec *o, const char *key)
{
	struct ovec_pos p = {0, 0};
	if (key == NULL || o->nleaf == 0)
		return p;
	p.leaf = leaf_of(o, key);
	int eq;
	p.slot = slot_of(o, o->leaf[p.leaf], key, &eq);
	if (eq)
		p.slot++;
	if (p.slot == o->leaf[p.leaf]->n) {
		p.leaf++;
		p.slot = 0;
	}
	return p;
}
