/* test_otree — random inserts/removes checked against a presence array. */
#include <stdbool.h>
#include <stdlib.h>

#include "otree.h"
#include "tap.h"

#define KEYS 2000

struct item {
	int key;
	struct otree_link link;
};

static int item_cmp(const struct otree_link *a, const struct otree_link *b)
{
	int x = otree_entry(a, struct item, link)->key, y = otree_entry(b, struct item, link)->key;
	return (x > y) - (x < y);
}

static int item_keycmp(const void *key, const struct otree_link *b)
{
	int x = *(const int *)key, y = otree_entry(b, struct item, link)->key;
	return (x > y) - (x < y);
}

/* Returns the height of the subtree, or -1 when a link, height or balance is wrong. */
static int check_subtree(const struct otree_link *l, const struct otree_link *parent)
{
	if (!l)
		return 0;
	if (l->parent != parent)
		return -1;
	int a = check_subtree(l->left, l), b = check_subtree(l->right, l);
	if (a < 0 || b < 0 || a - b > 1 || b - a > 1)
		return -1;
	int h = 1 + (a > b ? a : b);
	return l->height == h ? h : -1;
}

static int item_key(const struct otree_link *l)
{
	return otree_entry(l, struct item, link)->key;
}

/* In-order walk must list exactly the present keys, ascending, each link's
 * prev naming the one before it. */
static bool check_order(const struct otree *t, const bool *present)
{
	const struct otree_link *l = otree_first(t), *last = NULL;
	size_t n = 0;
	for (int k = 0; k < KEYS; k++) {
		if (!present[k])
			continue;
		if (!l || item_key(l) != k || l->prev != last)
			return false;
		last = l;
		l = otree_next(l);
		n++;
	}
	return l == NULL && n == t->n;
}

static bool check_bounds(const struct otree *t, const bool *present)
{
	for (int k = -1; k <= KEYS; k++) {
		int lb = -1, ub = -1;
		for (int j = k < 0 ? 0 : k; j < KEYS; j++)
			if (present[j]) {
				lb = j;
				break;
			}
		for (int j = k + 1 < 0 ? 0 : k + 1; j < KEYS; j++)
			if (present[j]) {
				ub = j;
				break;
			}
		const struct otree_link *l = otree_lower_bound(t, &k, item_keycmp);
		const struct otree_link *u = otree_upper_bound(t, &k, item_keycmp);
		if ((l ? item_key(l) : -1) != lb || (u ? item_key(u) : -1) != ub)
			return false;
	}
	return true;
}

int main(void)
{
	static struct item items[KEYS];
	static bool present[KEYS];
	struct otree t;
	int rounds = 6;

	tap_plan(8 + rounds * 4 + 2);
	srand(12345);
	otree_init(&t, item_cmp);
	for (int k = 0; k < KEYS; k++)
		items[k].key = k;

	int k0 = 5;
	ok(otree_first(&t) == NULL, "empty tree has no first");
	ok(otree_lower_bound(&t, &k0, item_keycmp) == NULL, "empty tree: no lower bound");
	otree_insert(&t, &items[5].link);
	ok(otree_first(&t) == &items[5].link && otree_next(&items[5].link) == NULL,
	   "one element: first, then end");
	otree_remove(&t, &items[5].link);
	ok(t.root == NULL && t.n == 0, "removing the only element empties the tree");
	ok(items[5].link.height == 0 && items[5].link.parent == NULL, "removed link is cleared");

	/* Ascending inserts are the classic degenerate case: the height must stay
	 * logarithmic (AVL: < 1.45 log2(n+2)). */
	for (int k = 0; k < 1023; k++)
		otree_insert(&t, &items[k].link);
	is_int(check_subtree(t.root, NULL), 10, "1023 ascending inserts give a perfect tree of height 10");
	for (int k = 0; k < 1023; k++)
		otree_remove(&t, &items[k].link);
	is_int(t.n, 0, "all removed");
	ok(t.root == NULL, "root cleared");

	for (int r = 0; r < rounds; r++) {
		int ops = 20000, bad_struct = 0, bad_count = 0;
		for (int i = 0; i < ops; i++) {
			int k = rand() % KEYS;
			/* Rounds alternate between filling up and draining. */
			bool ins = (rand() % 100) < (r % 2 ? 30 : 70);
			if (ins && !present[k]) {
				otree_insert(&t, &items[k].link);
				present[k] = true;
			} else if (!ins && present[k]) {
				otree_remove(&t, &items[k].link);
				present[k] = false;
			}
			if (i % 10 == 0 && check_subtree(t.root, NULL) < 0)
				bad_struct++;
		}
		size_t n = 0;
		for (int k = 0; k < KEYS; k++)
			n += present[k];
		if (n != t.n)
			bad_count++;
		int h = check_subtree(t.root, NULL);
		is_int(bad_struct, 0, "round %d: links, heights and balance stay valid", r);
		ok(h >= 0 && !bad_count, "round %d: %zu elements, height %d", r, t.n, h);
		ok(check_order(&t, present), "round %d: iteration is the sorted key set", r);
		ok(check_bounds(&t, present), "round %d: lower/upper bound for every key", r);
	}

	for (int k = 0; k < KEYS; k++)
		if (present[k]) {
			otree_remove(&t, &items[k].link);
			present[k] = false;
		}
	is_int(t.n, 0, "emptied");
	ok(check_order(&t, present), "empty iteration");
	return tap_done();
}
