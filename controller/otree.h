/* otree — intrusive ordered set (AVL tree).
 *
 * The caller embeds a struct otree_link in its objects and supplies a total order.
 * Nothing is allocated: insert/remove only relink. O(log n) insert, remove, lower
 * bound; O(1) next: each link also holds its neighbours in order, so a walk
 * (a page of a list) touches one object per step, not the path between them.
 * Not thread-safe. */
#ifndef LATTICE_OTREE_H
#define LATTICE_OTREE_H

#include <stddef.h>

struct otree_link {
	struct otree_link *left, *right, *parent;
	struct otree_link *prev, *next; /* in order */
	int height;
};

/* <0, 0, >0 as a sorts before, equal to, after b. Must be a total order. */
typedef int (*otree_cmp_fn)(const struct otree_link *a, const struct otree_link *b);
/* Compares a search key with a linked object. */
typedef int (*otree_keycmp_fn)(const void *key, const struct otree_link *b);

struct otree {
	struct otree_link *root;
	otree_cmp_fn cmp;
	size_t n;
};

void otree_init(struct otree *t, otree_cmp_fn cmp);
/* link must not be in any tree; an equal element must not be present. */
void otree_insert(struct otree *t, struct otree_link *link);
/* link must be in t. */
void otree_remove(struct otree *t, struct otree_link *link);
struct otree_link *otree_first(const struct otree *t);
struct otree_link *otree_next(const struct otree_link *link);
/* First element not before key, or NULL. */
struct otree_link *otree_lower_bound(const struct otree *t, const void *key, otree_keycmp_fn keycmp);
/* First element strictly after key, or NULL. */
struct otree_link *otree_upper_bound(const struct otree *t, const void *key, otree_keycmp_fn keycmp);

#define otree_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
