/* otree.c — AVL tree with parent pointers, so that removal and iteration need no
 * search and no stack. */
#include "otree.h"

static int otree_h(const struct otree_link *l)
{
	return l ? l->height : 0;
}

/* Recomputes l's height from its children; returns the old one. */
static int otree_fix(struct otree_link *l)
{
	int old = l->height, a = otree_h(l->left), b = otree_h(l->right);
	l->height = 1 + (a > b ? a : b);
	return old;
}

static void otree_replace_child(struct otree *t, struct otree_link *parent, struct otree_link *old,
				struct otree_link *new)
{
	if (!parent)
		t->root = new;
	else if (parent->left == old)
		parent->left = new;
	else
		parent->right = new;
}

static struct otree_link *otree_rotate_left(struct otree *t, struct otree_link *x)
{
	struct otree_link *y = x->right;
	x->right = y->left;
	if (y->left)
		y->left->parent = x;
	y->parent = x->parent;
	otree_replace_child(t, x->parent, x, y);
	y->left = x;
	x->parent = y;
	otree_fix(x);
	otree_fix(y);
	return y;
}

static struct otree_link *otree_rotate_right(struct otree *t, struct otree_link *x)
{
	struct otree_link *y = x->left;
	x->left = y->right;
	if (y->right)
		y->right->parent = x;
	y->parent = x->parent;
	otree_replace_child(t, x->parent, x, y);
	y->right = x;
	x->parent = y;
	otree_fix(x);
	otree_fix(y);
	return y;
}

/* Restores heights and balance from l up. A node whose height did not change and
 * needed no rotation leaves its ancestors as they were, so the walk stops there. */
static void otree_rebalance(struct otree *t, struct otree_link *l)
{
	while (l) {
		int old = otree_fix(l);
		int bal = otree_h(l->left) - otree_h(l->right);
		if (bal > 1) {
			if (otree_h(l->left->left) < otree_h(l->left->right))
				otree_rotate_left(t, l->left);
			l = otree_rotate_right(t, l);
		} else if (bal < -1) {
			if (otree_h(l->right->right) < otree_h(l->right->left))
				otree_rotate_right(t, l->right);
			l = otree_rotate_left(t, l);
		} else if (l->height == old) {
			return;
		}
		l = l->parent;
	}
}

void otree_init(struct otree *t, otree_cmp_fn cmp)
{
	t->root = NULL;
	t->cmp = cmp;
	t->n = 0;
}

void otree_insert(struct otree *t, struct otree_link *link)
{
	struct otree_link *parent = NULL, **at = &t->root;
	while (*at) {
		parent = *at;
		at = t->cmp(link, parent) < 0 ? &parent->left : &parent->right;
	}
	link->left = link->right = NULL;
	link->parent = parent;
	link->height = 1;
	/* A new leaf sits right before its parent (a left child) or right after. */
	if (parent == NULL) {
		link->prev = link->next = NULL;
	} else if (at == &parent->left) {
		link->next = parent;
		link->prev = parent->prev;
		if (parent->prev)
			parent->prev->next = link;
		parent->prev = link;
	} else {
		link->prev = parent;
		link->next = parent->next;
		if (parent->next)
			parent->next->prev = link;
		parent->next = link;
	}
	*at = link;
	t->n++;
	otree_rebalance(t, parent);
}

static struct otree_link *otree_min(struct otree_link *l)
{
	while (l->left)
		l = l->left;
	return l;
}

void otree_remove(struct otree *t, struct otree_link *link)
{
	struct otree_link *parent = link->parent, *fix;
	if (link->left && link->right) {
		/* Two children: the successor s (no left child) takes link's place. */
		struct otree_link *s = otree_min(link->right);
		if (s->parent == link) {
			fix = s;
		} else {
			fix = s->parent;
			fix->left = s->right;
			if (s->right)
				s->right->parent = fix;
			s->right = link->right;
			s->right->parent = s;
		}
		s->left = link->left;
		s->left->parent = s;
		s->parent = parent;
		s->height = link->height;
		otree_replace_child(t, parent, link, s);
	} else {
		struct otree_link *child = link->left ? link->left : link->right;
		if (child)
			child->parent = parent;
		otree_replace_child(t, parent, link, child);
		fix = parent;
	}
	if (link->prev)
		link->prev->next = link->next;
	if (link->next)
		link->next->prev = link->prev;
	/* A cleared link (height 0) is visibly out of every tree. */
	link->left = link->right = link->parent = link->prev = link->next = NULL;
	link->height = 0;
	t->n--;
	otree_rebalance(t, fix);
}

struct otree_link *otree_first(const struct otree *t)
{
	return t->root ? otree_min(t->root) : NULL;
}

struct otree_link *otree_next(const struct otree_link *link)
{
	return link->next;
}

struct otree_link *otree_lower_bound(const struct otree *t, const void *key, otree_keycmp_fn keycmp)
{
	struct otree_link *l = t->root, *best = NULL;
	while (l) {
		if (keycmp(key, l) <= 0) {
			best = l;
			l = l->left;
		} else {
			l = l->right;
		}
	}
	return best;
}

struct otree_link *otree_upper_bound(const struct otree *t, const void *key, otree_keycmp_fn keycmp)
{
	struct otree_link *l = t->root, *best = NULL;
	while (l) {
		if (keycmp(key, l) < 0) {
			best = l;
			l = l->left;
		} else {
			l = l->right;
		}
	}
	return best;
}
