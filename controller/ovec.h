/* ovec — an ordered set of items keyed by a string (their id), kept as
 * sorted runs of pointers: leaves of up to OVEC_LEAF pointers, in order, and
 * an array of the leaves.
 *
 * For the read view's 100,000 actors: a page is 100 consecutive pointers in
 * one or two leaves, so a walk reads its items' addresses without touching
 * the items and can fetch them from memory all at once (a tree's walk loads
 * each item to find the next: a cache miss per item, one after the other).
 * Lookups are binary searches: first over the leaves, by the leading 16
 * bytes of each leaf's first key kept beside the array of leaves (no item read
 * unless those are equal), then within the leaf (log2(OVEC_LEAF) item keys);
 * an insert or delete moves at most a leaf's pointers, and a split or merge
 * the array of leaves (n / OVEC_LEAF pointers). Neighbouring leaves are
 * merged when they fit in three quarters of one, so every two of them hold
 * more than that: over 3/8 of the slots are in use, whatever was deleted.
 *
 * Items are the caller's: an ovec holds pointers and never frees them. Not
 * thread-safe. */
#ifndef LATTICE_OVEC_H
#define LATTICE_OVEC_H

#include <stddef.h>
#include <stdint.h>

#define OVEC_LEAF 128

struct ovec_leaf {
	size_t n;
	void *item[OVEC_LEAF];
};

/* The item's key (a NUL-terminated string inside the item). */
typedef const char *(*ovec_key_fn)(const void *item);

/* A key's first 16 bytes (zeros past its end) as two big-endian numbers:
 * leads compare as the keys do, unless equal (then the keys must be). */
struct ovec_lead {
	uint64_t hi, lo;
};

struct ovec {
	struct ovec_leaf **leaf; /* nleaf leaves, each with n >= 1 items, in order */
	struct ovec_lead *lead;  /* lead[i]: of leaf[i]'s first key (cap of them) */
	size_t nleaf, cap;
	size_t n; /* items */
	ovec_key_fn key;
};

/* A place in the order: item `slot` of leaf `leaf`; leaf == nleaf at the end. */
struct ovec_pos {
	size_t leaf, slot;
};

void ovec_init(struct ovec *o, ovec_key_fn key);
/* Frees the leaves (not the items); o is empty again. */
void ovec_clear(struct ovec *o);
/* An empty o filled with n items of distinct keys, in any order (items is
 * sorted in place). Returns 0, or -1 when out of memory (o left empty). */
int ovec_build(struct ovec *o, void **items, size_t n);
/* The item of that key, or NULL. */
void *ovec_find(const struct ovec *o, const char *key);
/* Adds item, or replaces the item of its key (then *old is that item, else
 * NULL). Returns 0, or -1 when out of memory (o unchanged). */
int ovec_put(struct ovec *o, void *item, void **old);
/* Removes the item of that key and returns it (NULL: none). */
void *ovec_del(struct ovec *o, const char *key);
/* The place of the first item after key (NULL: the first item). */
struct ovec_pos ovec_after(const struct ovec *o, const char *key);
/* The items from pos to the end of its leaf: *n of them (0 at the end). The
 * next run starts at {pos.leaf + 1, 0}. */
static inline void *const *ovec_run(const struct ovec *o, struct ovec_pos pos, size_t *n)
{
	if (pos.leaf >= o->nleaf || pos.slot >= o->leaf[pos.leaf]->n) {
		*n = 0;
		return NULL;
	}
	*n = o->leaf[pos.leaf]->n - pos.slot;
	return o->leaf[pos.leaf]->item + pos.slot;
}

#endif
