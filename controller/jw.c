/* jw — see jw.h. */
#include "jw.h"

#include <stdlib.h>
#include <string.h>

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
}

void jw_init_alloc(struct jw *w, void *(*realloc_fn)(void *, size_t), void (*free_fn)(void *))
{
	jw_init(w);
	w->realloc_fn = realloc_fn;
	w->free_fn = free_fn;
}

static void jw_release(struct jw *w, void *p)
{
	if (w->free_fn)
		w->free_fn(p);
	else
		free(p);
}

void jw_reset(struct jw *w)
{
	w->len = 0;
	if (w->p)
		w->p[0] = '\0';
	w->comma = 0;
	w->depth = 0;
	w->after_key = false;
	w->oom = false;
}

void jw_free(struct jw *w)
{
	if (w->p)
		jw_release(w, w->p);
	jw_init_alloc(w, w->realloc_fn, w->free_fn);
}

char *jw_take(struct jw *w, size_t *len)
{
	if (!w->p)
		jw_raw(w, "", 0); /* nothing written: still a (empty) text */
	char *p = w->p;
	size_t n = w->len;
	if (w->oom) {
		jw_free(w);
		p = NULL;
		n = 0;
	} else {
		jw_init_alloc(w, w->realloc_fn, w->free_fn);
	}
	if (len)
		*len = n;
	return p;
}

char *jw_take_fit(struct jw *w, size_t *len)
{
	size_t cap = w->cap, n = 0;
	void *(*realloc_fn)(void *, size_t) = w->realloc_fn ? w->realloc_fn : realloc;
	char *p = jw_take(w, &n);
	if (p && cap - (n + 1) >= 32) {
		char *q = realloc_fn(p, n + 1);
		if (q) /* else keep the larger buffer */
			p = q;
	}
	if (len)
		*len = n;
	return p;
}

/* Room for n more bytes and the NUL; false when out of memory. */
static bool jw_room(struct jw *w, size_t n)
{
	if (w->oom)
		return false;
	if (w->cap - w->len < n + 1) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap - w->len < n + 1)
			cap *= 2;
		char *np = w->realloc_fn ? w->realloc_fn(w->p, cap) : realloc(w->p, cap);
		if (np == NULL) {
			w->oom = true;
			return false;
		}
		w->p = np;
		w->cap = cap;
	}
	return true;
}

void jw_reserve(struct jw *w, size_t n)
{
	(void)jw_room(w, n);
}

void jw_raw(struct jw *w, const char *s, size_t n)
{
	if (!jw_room(w, n))
		return;
	memcpy(w->p + w->len, s, n);
	w->len += n;
	w->p[w->len] = '\0';
}

static inline void jw_c(struct jw *w, char c)
{
	if (!w->oom && w->cap - w->len >= 2) {
		w->p[w->len++] = c;
		w->p[w->len] = '\0';
		return;
	}
	jw_raw(w, &c, 1);
}

/* Before a value or a key: the comma its container needs. */
static void jw_sep(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	uint64_t bit = (uint64_t)1 << w->depth;
	if (w->comma & bit)
		jw_c(w, ',');
	w->comma |= bit;
}

static void jw_open(struct jw *w, char c)
{
	jw_sep(w);
	if (w->depth >= JW_MAX_DEPTH) {
		w->oom = true;
		return;
	}
	w->depth++;
	w->comma &= ~((uint64_t)1 << w->depth);
	jw_c(w, c);
}

static void jw_close(struct jw *w, char c)
{
	if (w->depth > 0)
		w->depth--;
	jw_c(w, c);
}

void jw_obj(struct jw *w)
{
	jw_open(w, '{');
}

void jw_obj_end(struct jw *w)
{
	jw_close(w, '}');
}

void jw_arr(struct jw *w)
{
	jw_open(w, '[');
}

void jw_arr_end(struct jw *w)
{
	jw_close(w, ']');
}

/* Bytes that end a run of plain string bytes: NUL (the end), control
 * characters, '"' and '\\'. */
static const bool jw_stop[256] = {
	[0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
	[0x07] = 1, [0x08] = 1, [0x09] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1,
	[0x0e] = 1, [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1,
	[0x15] = 1, [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1,
	[0x1c] = 1, [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, ['"'] = 1,  ['\\'] = 1,
};

/* Whether any of the 8 bytes in x is a control character, '"' or '\\'
 * (Hacker's Delight "has a byte less than" and "has a zero byte"). */
static inline bool jw_word_stops(uint64_t x)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
	uint64_t lt = (x - ones * 0x20) & ~x;
	uint64_t zq = (q - ones) & ~q, zb = (b - ones) & ~b;
	return ((lt | zq | zb) & highs) != 0;
}

bool jw_plain(const char *s, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, s + i, 8);
		if (jw_word_stops(x))
			break;
	}
	for (; i < n; i++)
		if (jw_stop[(unsigned char)s[i]])
			return false;
	return true;
}

char *jw_put_quoted(char *p, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s), i = 0;
	*p++ = '"';
	while (i < n) {
		/* Eight plain bytes at a time: names and ids rarely need escapes. */
		if (n - i >= 8) {
			uint64_t x;
			memcpy(&x, s + i, 8);
			if (!jw_word_stops(x)) {
				memcpy(p, &x, 8);
				p += 8;
				i += 8;
				continue;
			}
		}
		unsigned char ch = (unsigned char)s[i++];
		if (!jw_stop[ch]) {
			*p++ = (char)ch;
			continue;
		}
		*p++ = '\\';
		if (ch < 0x20) {
			memcpy(p, "u00", 3);
			p[3] = hex[ch >> 4];
			p[4] = hex[ch & 15];
			p += 5;
		} else {
			*p++ = (char)ch;
		}
	}
	*p++ = '"';
	return p;
}

/* s as a JSON string, without the comma bookkeeping. */
static void jw_quoted(struct jw *w, const char *s)
{
	size_t n = strlen(s);
	if (!jw_room(w, JW_QUOTED_MAX(n)))
		return;
	char *end = jw_put_quoted(w->p + w->len, s);
	w->len = (size_t)(end - w->p);
	w->p[w->len] = '\0';
}

void jw_key(struct jw *w, const char *k)
{
	jw_sep(w);
	jw_quoted(w, k);
	jw_c(w, ':');
	w->after_key = true;
}

void jw_str_plain(struct jw *w, const char *s, size_t n)
{
	jw_sep(w);
	if (!jw_room(w, n + 2))
		return;
	char *p = w->p + w->len;
	p[0] = '"';
	memcpy(p + 1, s, n);
	p[n + 1] = '"';
	p[n + 2] = '\0';
	w->len += n + 2;
}

void jw_key_lit(struct jw *w, const char *quoted_colon, size_t n)
{
	jw_sep(w);
	jw_raw(w, quoted_colon, n);
	w->after_key = true;
}

void jw_str(struct jw *w, const char *s)
{
	if (s == NULL) {
		jw_null(w);
		return;
	}
	jw_sep(w);
	jw_quoted(w, s);
}

/* "00".."99": two digits per division (a page of actors writes ~1,000
 * numbers). */
static const char jw_digits2[] = "00010203040506070809101112131415161718192021222324"
				 "25262728293031323334353637383940414243444546474849"
				 "50515253545556575859606162636465666768697071727374"
				 "75767778798081828384858687888990919293949596979899";

char *jw_put_uint(char *p, uint64_t v)
{
	/* Most numbers in an API object are one or two digits (priority,
	 * replicas, instance, generation): no division, no copy. */
	if (v < 10) {
		*p = (char)('0' + v);
		return p + 1;
	}
	if (v < 100) {
		memcpy(p, jw_digits2 + 2 * v, 2);
		return p + 2;
	}
	size_t n = 3;
	for (uint64_t t = 1000; n < 20 && v >= t; t *= 10)
		n++;
	char *end = p + n, *q = end;
	while (v >= 100) {
		unsigned r = (unsigned)(v % 100);
		v /= 100;
		q -= 2;
		memcpy(q, jw_digits2 + 2 * r, 2);
	}
	if (v >= 10) {
		q -= 2;
		memcpy(q, jw_digits2 + 2 * v, 2);
	} else {
		*--q = (char)('0' + v);
	}
	return end;
}

char *jw_put_int(char *p, int64_t v)
{
	if (v >= 0)
		return jw_put_uint(p, (uint64_t)v);
	*p++ = '-';
	return jw_put_uint(p, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too: 19 digits */
}

void jw_uint(struct jw *w, uint64_t v)
{
	jw_sep(w);
	if (!jw_room(w, 20))
		return;
	w->len = (size_t)(jw_put_uint(w->p + w->len, v) - w->p);
	w->p[w->len] = '\0';
}

void jw_int(struct jw *w, int64_t v)
{
	jw_sep(w);
	if (!jw_room(w, 20))
		return;
	w->len = (size_t)(jw_put_int(w->p + w->len, v) - w->p);
	w->p[w->len] = '\0';
}

char *jw_value_room(struct jw *w, size_t max)
{
	jw_sep(w);
	return jw_room(w, max) ? w->p + w->len : NULL;
}

void jw_value_done(struct jw *w, char *end)
{
	w->len = (size_t)(end - w->p);
	w->p[w->len] = '\0';
}

void jw_bool(struct jw *w, bool v)
{
	jw_sep(w);
	jw_raw(w, v ? "true" : "false", v ? 4 : 5);
}

void jw_null(struct jw *w)
{
	jw_sep(w);
	jw_raw(w, "null", 4);
}

void jw_json(struct jw *w, const char *text, size_t n)
{
	jw_sep(w);
	jw_raw(w, text, n);
}

static int jw_dump_cb(const char *buf, size_t size, void *data)
{
	struct jw *w = data;
	jw_raw(w, buf, size);
	return w->oom ? -1 : 0;
}

void jw_tree(struct jw *w, const json_t *j)
{
	jw_sep(w);
	if (j == NULL || json_dump_callback(j, jw_dump_cb, w, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
		w->oom = true;
}

void jw_tree_new(struct jw *w, json_t *j)
{
	jw_tree(w, j);
	json_decref(j);
}
