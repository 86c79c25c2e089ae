/* test_ovec — random puts, replaces and deletes checked against a presence
 * array: finds, walks from any key, the count, and the leaves' invariants
 * (none empty, each in order and after the one before, every two neighbours
 * over three quarters of a leaf, each leaf's lead that of its first key; keys
 * whose leads are equal and keys shorter than a lead); a build from unsorted items; a mass delete
 * leaves no run of sparse leaves. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ovec.h"
#include "tap.h"

#define KEYS 5000

struct item {
	int version;
	char key[32];
};

static const char *item_key(const void *it)
{
	return ((const struct item *)it)->key;
}

static struct item items[2][KEYS]; /* two versions of each key, for replaces */
static int present[KEYS];           /* 0: absent, else 1 + the version held */

static void names(void)
{
	for (int v = 0; v < 2; v++)
		for (int k = 0; k < KEYS; k++) {
			/* Sorts as k. Keys of even hundreds share their first 23
			 * bytes (leads equal: the full keys decide), those of odd
			 * hundreds are 8 bytes (leads padded with zeros). */
			snprintf(items[v][k].key, sizeof(items[v][k].key), "k%04d-%s%02d", k / 100,
				 k / 100 % 2 ? "" : "0123456789abcdef-", k % 100);
			items[v][k].version = v;
		}
}

/* A key's first 16 bytes as two big-endian numbers, zeros past its end. */
static struct ovec_lead lead_ref(const char *key)
{
	struct ovec_lead d = {0, 0};
	size_t len = strlen(key);
	for (size_t i = 0; i < 16; i++) {
		uint64_t b = i < len ? (unsigned char)key[i] : 0;
		if (i < 8)
			d.hi |= b << (8 * (7 - i));
		else
			d.lo |= b << (8 * (15 - i));
	}
	return d;
}

/* The leaves' shape and order, each leaf's lead, and the count. */
static bool check_shape(const struct ovec *o)
{
	size_t n = 0;
	const char *last = NULL;
	for (size_t i = 0; i < o->nleaf; i++) {
		const struct ovec_leaf *l = o->leaf[i];
		if (l->n == 0 || l->n > OVEC_LEAF)
			return false;
		struct ovec_lead want = lead_ref(item_key(l->item[0]));
		if (o->lead[i].hi != want.hi || o->lead[i].lo != want.lo)
			return false;
		if (i > 0 && o->nleaf > 1 && l->n + o->leaf[i - 1]->n <= OVEC_LEAF * 3 / 4)
			return false;
		for (size_t s = 0; s < l->n; s++) {
			const char *k = item_key(l->item[s]);
			if (last && strcmp(last, k) >= 0)
				return false;
			last = k;
		}
		n += l->n;
	}
	return n == o->n;
}

/* The leaves' counts and leads alone (cheap enough for every operation):
 * none empty, every two neighbours over three quarters of a leaf, each lead
 * that of the leaf's first key. */
static bool check_pairs(const struct ovec *o)
{
	for (size_t i = 0; i < o->nleaf; i++) {
		if (o->leaf[i]->n == 0 || (i > 0 && o->leaf[i]->n + o->leaf[i - 1]->n <= OVEC_LEAF * 3 / 4))
			return false;
		struct ovec_lead want = lead_ref(item_key(o->leaf[i]->item[0]));
		if (o->lead[i].hi != want.hi || o->lead[i].lo != want.lo)
			return false;
	}
	return true;
}

/* A walk from the start lists exactly the present keys, with their versions. */
static bool check_walk(const struct ovec *o)
{
	struct ovec_pos p = ovec_after(o, NULL);
	size_t run = 0;
	void *const *it = ovec_run(o, p, &run);
	for (int k = 0; k < KEYS; k++) {
		if (!present[k])
			continue;
		if (run == 0) {
			p.leaf++;
			p.slot = 0;
			it = ovec_run(o, p, &run);
			if (run == 0)
				return false;
		}
		const struct item *x = *it;
		if (x != &items[present[k] - 1][k])
			return false;
		it++;
		run--;
		p.slot++;
	}
	if (run != 0)
		return false;
	p.leaf++;
	p.slot = 0;
	ovec_run(o, p, &run);
	return run == 0;
}

/* ovec_after(key) for random keys, present or not, gives the next present one. */
static bool check_after(const struct ovec *o, int tries)
{
	for (int t = 0; t < tries; t++) {
		int k = rand() % KEYS;
		int want = k + 1;
		while (want < KEYS && !present[want])
			want++;
		size_t run = 0;
		void *const *it = ovec_run(o, ovec_after(o, items[0][k].key), &run);
		if (want == KEYS ? run != 0 : run == 0 || strcmp(item_key(*it), items[0][want].key) != 0)
			return false;
	}
	return true;
}

static bool check_find(const struct ovec *o)
{
	for (int k = 0; k < KEYS; k++) {
		void *want = present[k] ? &items[present[k] - 1][k] : NULL;
		if (ovec_find(o, items[0][k].key) != want)
			return false;
	}
	return true;
}

int main(void)
{
	tap_plan(15);
	srand(7);
	names();
	struct ovec o;
	ovec_init(&o, item_key);
	ok(ovec_find(&o, "k000001") == NULL && ovec_del(&o, "x") == NULL, "empty: nothing found, nothing deleted");
	size_t run = 1;
	ovec_run(&o, ovec_after(&o, NULL), &run);
	ok(run == 0, "empty: an empty walk");

	/* Random puts (new, or replacing with the other version) and deletes. */
	bool ok_ops = true, shape = true, walks = true, pairs = true;
	int n = 0;
	for (int round = 0; round < 60000 && ok_ops; round++) {
		int k = rand() % KEYS;
		int op = rand() % 100;
		/* Grow to most keys first, then shrink to few, then churn. */
		int grow = round < 20000 ? 70 : round < 40000 ? 25 : 50;
		if (op < grow) {
			int v = rand() % 2;
			void *old = (void *)1;
			ok_ops = ovec_put(&o, &items[v][k], &old) == 0 &&
				 old == (present[k] ? (void *)&items[present[k] - 1][k] : NULL);
			n += !present[k];
			present[k] = 1 + v;
		} else {
			void *got = ovec_del(&o, items[0][k].key);
			ok_ops = got == (present[k] ? (void *)&items[present[k] - 1][k] : NULL);
			n -= present[k] != 0;
			present[k] = 0;
		}
		ok_ops = ok_ops && o.n == (size_t)n;
		pairs = pairs && check_pairs(&o);
		if (round % 97 == 0) {
			shape = shape && check_shape(&o);
			walks = walks && check_walk(&o) && check_after(&o, 20);
		}
	}
	ok(ok_ops, "60,000 random puts, replaces and deletes: each returns the item it replaced or removed");
	ok(shape && pairs, "leaves never empty, in order, every two neighbours over three quarters of a leaf, leads right (after every operation)");
	ok(walks, "walks list exactly the present items in order; after(key) starts at the next one");
	ok(check_find(&o), "every key found, or not, as present");

	/* Delete all but every 100th key: the leaves merge down. */
	for (int k = 0; k < KEYS; k++)
		if (k % 100 != 0) {
			ovec_del(&o, items[0][k].key);
			present[k] = 0;
		} else if (!present[k]) {
			void *old;
			ovec_put(&o, &items[0][k], &old);
			present[k] = 1;
		}
	ok(o.n == KEYS / 100 && check_shape(&o), "after a mass delete: %zu items in %zu leaves", o.n, o.nleaf);
	ok(o.nleaf == 1, "... one leaf (50 items fit)");
	ok(check_walk(&o) && check_find(&o), "... and they are the ones found and walked");
	ovec_clear(&o);
	ok(o.n == 0 && o.nleaf == 0, "cleared");

	/* A build from unsorted items. */
	void **all = malloc(KEYS * sizeof(*all));
	for (int k = 0; k < KEYS; k++) {
		all[k] = &items[1][k];
		present[k] = 2;
	}
	for (int k = KEYS - 1; k > 0; k--) {
		int j = rand() % (k + 1);
		void *t = all[k];
		all[k] = all[j];
		all[j] = t;
	}
	ok(ovec_build(&o, all, KEYS) == 0 && o.n == KEYS, "built from %d shuffled items", KEYS);
	ok(check_shape(&o) && check_walk(&o) && check_find(&o) && check_after(&o, 500),
	   "... in order, each found, walks from any key right");
	void *old = NULL;
	ok(ovec_put(&o, &items[0][17], &old) == 0 && old == &items[1][17] && ovec_find(&o, items[0][17].key) == &items[0][17],
	   "a put after the build replaces its key's item");
	ovec_clear(&o);

	/* A split next to a small leaf: built as 96 / 96 / 1, then inserts
	 * into the middle split it; a half must not stay beside the 1. */
	for (int k = 0; k < KEYS; k++)
		present[k] = 0;
	for (int k = 0; k < 193; k++) {
		all[k] = &items[0][k * 2];
		present[k * 2] = 1;
	}
	ok(ovec_build(&o, all, 193) == 0 && o.nleaf == 3 && o.leaf[2]->n == 1, "built as 96 / 96 / 1");
	bool split_ok = true;
	for (int k = 0; k < 40; k++) {
		int key = 2 * (100 + k) + 1; /* between the middle leaf's keys */
		void *old2;
		split_ok = split_ok && ovec_put(&o, &items[0][key], &old2) == 0 && check_pairs(&o);
		present[key] = 1;
	}
	ok(split_ok && check_shape(&o) && check_walk(&o), "inserts that split the middle leaf: %zu leaves, neighbours still over 3/4 of a leaf",
	   o.nleaf);
	free(all);
	ovec_clear(&o);
	return tap_done();
}
