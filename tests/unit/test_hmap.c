/* test_hmap — put/get/replace/del, growth, tombstone churn and iteration. */
#include "hmap.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define BIG 150000 /* past 100k keys */
#define LIVE 100   /* live keys during churn */
#define CHURN 1000000

static void test_basics(void)
{
	struct hmap h;
	hmap_init(&h);
	size_t pos = 0;
	ok(hmap_get(&h, "a") == NULL && hmap_del(&h, "a") == NULL && hmap_next(&h, &pos) == NULL,
	   "empty map: get, del and next find nothing");

	int one = 1, two = 2, three = 3;
	ok(hmap_put(&h, "a", &one) == 0 && hmap_put(&h, "b", &two) == 0, "put two keys");
	ok(hmap_get(&h, "a") == &one && hmap_get(&h, "b") == &two, "get returns each value");
	ok(hmap_get(&h, "c") == NULL && hmap_get(&h, "") == NULL, "get misses absent keys");
	is_int(h.n, 2, "two live entries");

	/* Replace with an equal key in another buffer: the map must now borrow the new
	 * buffer, so the old one can go away with its old value. */
	char *k1 = strdup("a");
	char k2[] = "a";
	ok(hmap_put(&h, k1, &three) == 0 && hmap_get(&h, "a") == &three, "replace changes the value");
	is_int(h.n, 2, "replace keeps the count");
	ok(hmap_put(&h, k2, &one) == 0, "replace again with another key buffer");
	free(k1);
	ok(hmap_get(&h, "a") == &one, "lookup still works after the first key buffer is freed");

	ok(hmap_del(&h, "a") == &one, "del returns the value");
	ok(hmap_get(&h, "a") == NULL && hmap_del(&h, "a") == NULL, "deleted key is gone");
	is_int(h.n, 1, "one live entry left");
	ok(hmap_get(&h, "b") == &two, "other key survives the delete");
	ok(hmap_put(&h, "a", &three) == 0 && hmap_get(&h, "a") == &three && h.n == 2,
	   "a deleted key can be put again");
	ok(hmap_put(&h, "", &one) == 0 && hmap_get(&h, "") == &one, "the empty string is a key");

	hmap_release(&h);
	ok(h.slots == NULL && h.cap == 0 && h.n == 0 && h.used == 0, "release zeroes the map");
	ok(hmap_get(&h, "b") == NULL, "a released map is empty and usable");
	hmap_release(&h);
}

static void test_growth(void)
{
	struct hmap h;
	hmap_init(&h);
	char(*keys)[16] = malloc(sizeof(*keys) * BIG);
	int *vals = malloc(sizeof(*vals) * BIG);
	int put_ok = 1;
	for (int i = 0; i < BIG; i++) {
		snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
		vals[i] = i;
		put_ok &= hmap_put(&h, keys[i], &vals[i]) == 0;
	}
	ok(put_ok, "put %d keys", BIG);
	is_int(h.n, BIG, "count is %d", BIG);
	ok((h.cap & (h.cap - 1)) == 0 && h.used * 4 <= h.cap * 3,
	   "capacity %zu is a power of two, load at most 3/4", h.cap);
	int get_ok = 1;
	for (int i = 0; i < BIG; i++)
		get_ok &= hmap_get(&h, keys[i]) == &vals[i];
	ok(get_ok, "every key maps to its own value");
	ok(hmap_get(&h, "key-150000") == NULL && hmap_get(&h, "key--1") == NULL,
	   "absent keys miss in a big map");

	/* Delete the odd keys; the even ones must stay reachable across tombstones. */
	int del_ok = 1;
	for (int i = 1; i < BIG; i += 2)
		del_ok &= hmap_del(&h, keys[i]) == &vals[i];
	ok(del_ok, "delete every odd key");
	is_int(h.n, BIG / 2, "half left");
	get_ok = 1;
	for (int i = 0; i < BIG; i++)
		get_ok &= hmap_get(&h, keys[i]) == (i % 2 ? NULL : &vals[i]);
	ok(get_ok, "even keys found, odd keys gone");

	/* Iteration visits each live value exactly once. */
	unsigned char *seen = calloc(BIG, 1);
	size_t pos = 0, visits = 0;
	int once = 1;
	for (int *v; (v = hmap_next(&h, &pos)) != NULL; visits++) {
		once &= *v % 2 == 0 && seen[*v] == 0;
		seen[*v]++;
	}
	is_int(visits, BIG / 2, "iteration makes one visit per live entry");
	ok(once, "iteration visits only live values, none twice");
	ok(hmap_next(&h, &pos) == NULL, "next stays at the end");

	hmap_release(&h);
	free(seen);
	free(vals);
	free(keys);
}

/* A sliding window of LIVE keys: each step deletes the oldest and puts a new one,
 * so tombstones pile up unless the map cleans them. */
static void test_churn(void)
{
	struct hmap h;
	hmap_init(&h);
	static char keys[LIVE][24];
	static long vals[LIVE];
	for (int i = 0; i < LIVE; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%d", i);
		vals[i] = i;
		hmap_put(&h, keys[i], &vals[i]);
	}
	int step_ok = 1, bounded = 1, all_ok = 1;
	size_t max_cap = 0;
	for (long n = LIVE; n < LIVE + CHURN; n++) {
		int slot = (int)(n % LIVE);
		step_ok &= hmap_del(&h, keys[slot]) == &vals[slot];
		char old[24];
		memcpy(old, keys[slot], sizeof(old));
		snprintf(keys[slot], sizeof(keys[slot]), "k%ld", n);
		vals[slot] = n;
		step_ok &= hmap_put(&h, keys[slot], &vals[slot]) == 0;
		step_ok &= hmap_get(&h, old) == NULL && h.n == LIVE;
		if (h.cap > max_cap)
			max_cap = h.cap;
		bounded &= h.cap <= 4 * 256 && h.used <= h.cap;
		if (n % 99991 == 0)
			for (int i = 0; i < LIVE; i++)
				all_ok &= hmap_get(&h, keys[i]) == &vals[i];
	}
	ok(step_ok, "%d delete/put cycles: each delete finds its key, each put succeeds",
	   CHURN);
	ok(bounded, "capacity stays bounded under churn (max %zu for %d live)", max_cap, LIVE);
	for (int i = 0; i < LIVE; i++)
		all_ok &= hmap_get(&h, keys[i]) == &vals[i];
	ok(all_ok, "all live keys found during and after churn");
	is_int(h.n, LIVE, "count is still %d", LIVE);

	size_t pos = 0, visits = 0;
	int mine = 1;
	unsigned char seen[LIVE] = {0};
	for (long *v; (v = hmap_next(&h, &pos)) != NULL; visits++) {
		mine &= v >= vals && v < vals + LIVE && *v >= CHURN && !seen[v - vals];
		if (v >= vals && v < vals + LIVE)
			seen[v - vals] = 1;
	}
	ok(visits == LIVE && mine, "iteration after churn visits the %d newest values", LIVE);
	hmap_release(&h);
}

int main(void)
{
	tap_plan(33);
	test_basics();
	test_growth();
	test_churn();
	return tap_done();
}
