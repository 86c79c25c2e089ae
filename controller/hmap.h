/* hmap — string-keyed open-addressing hash map.
 *
 * Keys are borrowed: the caller keeps each key alive (usually it lives inside the
 * value) until the entry is deleted. Values are borrowed too; the map never frees
 * them. Not thread-safe. */
#ifndef LATTICE_HMAP_H
#define LATTICE_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_slot {
	const char *key; /* NULL: empty; HMAP_TOMB: deleted */
	uint32_t hash;
	void *value;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap;  /* power of two, 0 before the first put */
	size_t n;    /* live entries */
	size_t used; /* live + tombstones */
};

void hmap_init(struct hmap *h);
/* Frees the table, not the keys or values. */
void hmap_release(struct hmap *h);
void *hmap_get(const struct hmap *h, const char *key);
/* Inserts or replaces. Returns 0, or -1 when out of memory (map unchanged). */
int hmap_put(struct hmap *h, const char *key, void *value);
/* Removes and returns the value, or NULL when absent. */
void *hmap_del(struct hmap *h, const char *key);
/* Iteration: start with *pos = 0; returns the next value or NULL at the end.
 * The map must not change during an iteration. Order is unspecified. */
void *hmap_next(const struct hmap *h, size_t *pos);

#endif
