#include "hmap.h"

#include <stdlib.h>
#include <string.h>

static const char hmap_tomb_[1];
#define HMAP_TOMB (hmap_tomb_)

static uint32_t hmap_hash(const char *s)
{
	/* FNV-1a: short keys, good enough spread, no allocation. */
	uint32_t h = 2166136261u;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

void hmap_init(struct hmap *h)
{
	memset(h, 0, sizeof(*h));
}

void hmap_release(struct hmap *h)
{
	free(h->slots);
	memset(h, 0, sizeof(*h));
}

static struct hmap_slot *hmap_find(const struct hmap *h, const char *key, uint32_t hash)
{
	if (h->cap == 0)
		return NULL;
	size_t mask = h->cap - 1;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct hmap_slot *s = &h->slots[i];
		if (s->key == NULL)
			return NULL;
		if (s->key != HMAP_TOMB && s->hash == hash && strcmp(s->key, key) == 0)
			return s;
	}
}

void *hmap_get(const struct hmap *h, const char *key)
{
	struct hmap_slot *s = hmap_find(h, key, hmap_hash(key));
	return s ? s->value : NULL;
}

static int hmap_grow(struct hmap *h)
{
	size_t ncap = h->cap ? h->cap * 2 : 16;
	/* Only tombstones filled the table: rehash at the same size. */
	if (h->n * 2 < h->cap)
		ncap = h->cap;
	struct hmap_slot *ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -1;
	for (size_t i = 0; i < h->cap; i++) {
		struct hmap_slot *s = &h->slots[i];
		if (s->key == NULL || s->key == HMAP_TOMB)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key != NULL)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(h->slots);
	h->slots = ns;
	h->cap = ncap;
	h->used = h->n;
	return 0;
}

int hmap_put(struct hmap *h, const char *key, void *value)
{
	uint32_t hash = hmap_hash(key);
	struct hmap_slot *s = hmap_find(h, key, hash);
	if (s != NULL) {
		s->key = key;
		s->value = value;
		return 0;
	}
	if ((h->used + 1) * 4 > h->cap * 3 && hmap_grow(h) != 0)
		return -1;
	size_t mask = h->cap - 1;
	size_t i = hash & mask;
	while (h->slots[i].key != NULL && h->slots[i].key != HMAP_TOMB)
		i = (i + 1) & mask;
	if (h->slots[i].key == NULL)
		h->used++;
	h->slots[i].key = key;
	h->slots[i].hash = hash;
	h->slots[i].value = value;
	h->n++;
	return 0;
}

void *hmap_del(struct hmap *h, const char *key)
{
	struct hmap_slot *s = hmap_find(h, key, hmap_hash(key));
	if (s == NULL)
		return NULL;
	void *v = s->value;
	s->key = HMAP_TOMB;
	s->value = NULL;
	h->n--;
	return v;
}

void *hmap_next(const struct hmap *h, size_t *pos)
{
	while (*pos < h->cap) {
		struct hmap_slot *s = &h->slots[(*pos)++];
		if (s->key != NULL && s->key != HMAP_TOMB)
			return s->value;
	}
	return NULL;
}
