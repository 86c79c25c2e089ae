/* test_jw — the JSON text writer: exact output for the basics, escapes and
 * integer limits, nesting limits, and agreement with jansson (strict parse back,
 * equal values) on thousands of random documents. */
#include "jw.h"
#include "tap.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* w's text, then w emptied; "(oom)" when unusable. Valid until the next call;
 * text(NULL) frees the last one. */
static const char *text(struct jw *w)
{
	static char *last;
	free(last);
	last = w ? jw_take(w, NULL) : NULL;
	return last ? last : "(oom)";
}

static void test_basics(void)
{
	struct jw w;
	jw_init(&w);
	is_str(text(&w), "", "nothing written: empty text");

	jw_obj(&w);
	jw_obj_end(&w);
	is_str(text(&w), "{}", "empty object");
	jw_arr(&w);
	jw_arr_end(&w);
	is_str(text(&w), "[]", "empty array");

	jw_obj(&w);
	jw_key(&w, "a");
	jw_int(&w, 1);
	jw_key(&w, "b");
	jw_arr(&w);
	jw_str(&w, "x");
	jw_null(&w);
	jw_bool(&w, true);
	jw_bool(&w, false);
	jw_obj(&w);
	jw_obj_end(&w);
	jw_arr(&w);
	jw_arr_end(&w);
	jw_uint(&w, 7);
	jw_arr_end(&w);
	jw_key(&w, "c");
	jw_json(&w, "{\"k\":[1,2]}", 11);
	jw_key(&w, "d");
	jw_str(&w, NULL);
	jw_obj_end(&w);
	is_str(text(&w), "{\"a\":1,\"b\":[\"x\",null,true,false,{},[],7],\"c\":{\"k\":[1,2]},\"d\":null}",
	       "commas and keys placed at every depth");

	jw_arr(&w);
	jw_int(&w, INT64_MIN);
	jw_int(&w, INT64_MAX);
	jw_int(&w, 0);
	jw_int(&w, -1);
	jw_uint(&w, UINT64_MAX);
	jw_arr_end(&w);
	is_str(text(&w), "[-9223372036854775808,9223372036854775807,0,-1,18446744073709551615]",
	       "integer limits");

	/* Values written straight into the buffer get their commas like any other. */
	jw_arr(&w);
	jw_int(&w, 1);
	char *p = jw_value_room(&w, 3 * 20 + 4 + JW_QUOTED_MAX(3));
	p = JW_PUT(p, "[");
	p = jw_put_int(p, INT64_MIN);
	*p++ = ',';
	p = jw_put_uint(p, UINT64_MAX);
	*p++ = ',';
	p = jw_put_int(p, -7);
	*p++ = ',';
	p = jw_put_quoted(p, "a\"\x01");
	*p++ = ']';
	jw_value_done(&w, p);
	jw_null(&w);
	jw_arr_end(&w);
	is_str(text(&w), "[1,[-9223372036854775808,18446744073709551615,-7,\"a\\\"\\u0001\"],null]",
	       "jw_value_room and the jw_put_ helpers: the same text, commas placed around it");

	jw_arr(&w);
	jw_str(&w, "q\"b\\s/\n\t\x01\x1f\x7f é");
	jw_arr_end(&w);
	is_str(text(&w), "[\"q\\\"b\\\\s/\\u000a\\u0009\\u0001\\u001f\x7f é\"]",
	       "quote, backslash and control characters escaped; the rest as given");

	jw_obj(&w);
	jw_key(&w, "k\"ey");
	jw_str(&w, "");
	jw_obj_end(&w);
	is_str(text(&w), "{\"k\\\"ey\":\"\"}", "keys escaped too");

	json_t *t = json_pack("{s:[i,s,n]}", "t", 1, "two");
	jw_arr(&w);
	jw_tree(&w, t);
	jw_tree(&w, t);
	jw_arr_end(&w);
	json_decref(t);
	is_str(text(&w), "[{\"t\":[1,\"two\",null]},{\"t\":[1,\"two\",null]}]", "jansson values spliced in");

	for (int i = 0; i < JW_MAX_DEPTH; i++)
		jw_arr(&w);
	for (int i = 0; i < JW_MAX_DEPTH; i++)
		jw_arr_end(&w);
	ok(!w.oom && w.len == 2 * JW_MAX_DEPTH, "nesting up to JW_MAX_DEPTH works");
	jw_reset(&w);
	for (int i = 0; i <= JW_MAX_DEPTH; i++)
		jw_arr(&w);
	ok(w.oom, "deeper nesting marks the text unusable");
	is_str(text(&w), "(oom)", "... and jw_take gives NULL");

	jw_str(&w, "reuse");
	jw_reset(&w);
	jw_int(&w, 5);
	is_str(text(&w), "5", "jw_reset empties the writer for reuse");
	jw_free(&w);
}

/* ---- escapes at every position ------------------------------------------------ */

/* JSON's escaping, byte by byte, as a reference for jw_put_quoted's word-wise scan. */
static size_t ref_quoted(char *out, const char *s)
{
	size_t n = 0;
	out[n++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			n += (size_t)sprintf(out + n, "\\%c", c);
		else if (c < 0x20)
			n += (size_t)sprintf(out + n, "\\u%04x", c);
		else
			out[n++] = (char)c;
	}
	out[n++] = '"';
	out[n] = '\0';
	return n;
}

/* Strings of 0..40 bytes of 'a' with one byte of interest at each position
 * (and two at once): every alignment of a stop in the 8-byte words. */
static void test_positions(void)
{
	static const unsigned char odd[] = {'"', '\\', 0x01, 0x1f, 0x20, 0x7f, 0x80, 0xe9, 0xff, '/'};
	int bad = 0, cases = 0, plain_bad = 0;
	char in[48], want[48 * 6 + 3], got[48 * 6 + 3];
	for (size_t len = 0; len <= 40; len++)
		for (size_t pos = 0; pos <= len; pos++)
			for (size_t k = 0; k < sizeof(odd); k++) {
				memset(in, 'a', len);
				in[len] = '\0';
				if (pos < len)
					in[pos] = (char)odd[k];
				if (len > 9)
					in[len - 1 - pos % 9] = (char)odd[(k + 3) % sizeof(odd)];
				size_t wn = ref_quoted(want, in);
				char *end = jw_put_quoted(got, in);
				bad += (size_t)(end - got) != wn || memcmp(got, want, wn) != 0;
				/* plain exactly when escaping changes nothing */
				plain_bad += jw_plain(in, strlen(in)) != (wn == strlen(in) + 2);
				cases++;
			}
	is_int(bad, 0, "jw_put_quoted escapes exactly as byte-wise JSON escaping, in %d strings with a stop at every position", cases);
	is_int(plain_bad, 0, "jw_plain says whether escaping changes the string, in the same %d strings", cases);
}

/* ---- random documents ------------------------------------------------------ */

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random string: ASCII with escapes, control characters and some UTF-8. */
static void rnd_str(char *buf, size_t cap)
{
	static const char *const pieces[] = {"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\x01",
					     "\x1f", "é", "€", "😀", "{", "]"};
	size_t len = 0, n = rnd() % 12;
	for (size_t i = 0; i < n; i++) {
		const char *p = pieces[rnd() % (sizeof(pieces) / sizeof(pieces[0]))];
		size_t pl = strlen(p);
		if (len + pl + 1 > cap)
			break;
		memcpy(buf + len, p, pl);
		len += pl;
	}
	buf[len] = '\0';
}

/* Writes a random value to w and builds the same value with jansson. */
static json_t *rnd_value(struct jw *w, int depth)
{
	char s[64];
	switch (rnd() % (depth < 4 ? 7 : 5)) {
	case 0: {
		int64_t v = (int64_t)rnd();
		if (rnd() % 2)
			v %= 1000;
		jw_int(w, v);
		return json_integer(v);
	}
	case 1:
		rnd_str(s, sizeof(s));
		jw_str(w, s);
		return json_string(s);
	case 2: {
		bool b = rnd() % 2;
		jw_bool(w, b);
		return json_boolean(b);
	}
	case 3:
		jw_null(w);
		return json_null();
	case 4: {
		json_t *t = json_pack("{s:i}", "x", (int)(rnd() % 100));
		jw_tree(w, t);
		return t;
	}
	case 5: {
		json_t *a = json_array();
		size_t n = rnd() % 5;
		jw_arr(w);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, rnd_value(w, depth + 1));
		jw_arr_end(w);
		return a;
	}
	default: {
		json_t *o = json_object();
		size_t n = rnd() % 5;
		jw_obj(w);
		for (size_t i = 0; i < n; i++) {
			rnd_str(s, sizeof(s));
			if (json_object_get(o, s))
				continue; /* keys stay unique, as the writer's callers keep them */
			jw_key(w, s);
			json_object_set_new(o, s, rnd_value(w, depth + 1));
		}
		jw_obj_end(w);
		return o;
	}
	}
}

static void test_random(void)
{
	struct jw w;
	jw_init(&w);
	int bad = 0, n = 3000;
	for (int i = 0; i < n; i++) {
		jw_reset(&w);
		json_t *want = rnd_value(&w, 0);
		json_error_t err;
		json_t *got = w.oom ? NULL : json_loadb(w.p, w.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &err);
		if (!got || !json_equal(got, want)) {
			if (bad++ == 0)
				tap_diag("document %d: %s (%s)", i, w.oom ? "oom" : w.p, got ? "differs" : err.text);
		}
		json_decref(got);
		json_decref(want);
	}
	is_int(bad, 0, "%d random documents: strict parsers read back exactly the written values", n);
	jw_free(&w);
}

/* jw_take_fit gives back the buffer's slack: a command's payload of ~150
 * bytes, kept for each of 100,000 pending commands, held 256. */
static size_t last_realloc;
static void *rec_realloc(void *p, size_t n)
{
	last_realloc = n;
	return realloc(p, n);
}

static void test_fit(void)
{
	struct jw w;
	jw_init_alloc(&w, rec_realloc, free);
	jw_obj(&w);
	jw_key(&w, "actor_id");
	jw_str(&w, "a1");
	jw_obj_end(&w);
	size_t n = 0;
	char *t = jw_take_fit(&w, &n);
	is_str(t, "{\"actor_id\":\"a1\"}", "jw_take_fit: the text");
	ok(n == strlen("{\"actor_id\":\"a1\"}") && last_realloc == n + 1,
	   "... in a buffer cut to its length (%zu bytes asked for, %zu long)", last_realloc, n);
	free(t);
	jw_free(&w);
}

/* JW_KEY writes what jw_key writes, commas included; jw_reserve grows the
 * buffer once, and what follows fits without another realloc. */
static void test_key_lit(void)
{
	struct jw a, b;
	jw_init(&a);
	jw_init(&b);
	jw_obj(&a);
	jw_obj(&b);
	jw_key(&a, "id");
	JW_KEY(&b, "id");
	jw_str(&a, "x");
	jw_str(&b, "x");
	jw_key(&a, "memory_required_mb");
	JW_KEY(&b, "memory_required_mb");
	jw_obj(&a);
	jw_obj(&b);
	jw_key(&a, "k");
	JW_KEY(&b, "k");
	jw_int(&a, 1);
	jw_int(&b, 1);
	jw_obj_end(&a);
	jw_obj_end(&b);
	jw_key(&a, "t");
	JW_KEY(&b, "t");
	jw_arr(&a);
	jw_arr(&b);
	jw_str(&a, "2026-12-04T03:24:49.123Z");
	jw_str_plain(&b, "2026-12-04T03:24:49.123Z", 24);
	jw_str(&a, "running");
	jw_str_plain(&b, "running", 7);
	jw_arr_end(&a);
	jw_arr_end(&b);
	jw_obj_end(&a);
	jw_obj_end(&b);
	char *ta = jw_take(&a, NULL), *tb = jw_take(&b, NULL);
	is_str(tb, "{\"id\":\"x\",\"memory_required_mb\":{\"k\":1},\"t\":[\"2026-12-04T03:24:49.123Z\",\"running\"]}",
	       "JW_KEY, jw_str_plain: keys and strings with their commas");
	ok(ta && tb && strcmp(ta, tb) == 0, "... the same text as jw_key's and jw_str's");
	free(ta);
	free(tb);
	jw_free(&a);
	jw_free(&b);

	struct jw w;
	jw_init_alloc(&w, rec_realloc, free);
	last_realloc = 0;
	jw_reserve(&w, 10000);
	size_t first = last_realloc;
	last_realloc = 0;
	jw_arr(&w);
	for (int i = 0; i < 1000; i++)
		jw_int(&w, 12345678);
	jw_arr_end(&w);
	ok(first >= 10001 && last_realloc == 0 && w.len == 2 + 1000 * 9 - 1,
	   "jw_reserve: one allocation of %zu bytes, none for the 8,999 bytes after", first);
	jw_free(&w);
}

/* jw_put_uint/jw_put_int against snprintf: every power of ten and its
 * neighbours (each digit count's edges), both limits, and random values. */
static void test_put_numbers(void)
{
	char got[32], want[32];
	int bad = 0, n = 0;
	uint64_t p10 = 1;
	for (int e = 0; e < 20; e++, p10 *= 10) {
		uint64_t vs[] = {p10 - 1, p10, p10 + 1, p10 * 2 - 1, p10 * 9 + p10 - 1};
		for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++) {
			*jw_put_uint(got, vs[i]) = '\0';
			snprintf(want, sizeof(want), "%llu", (unsigned long long)vs[i]);
			bad += strcmp(got, want) != 0;
			*jw_put_int(got, -(int64_t)(vs[i] & INT64_MAX)) = '\0';
			snprintf(want, sizeof(want), "%lld", -(long long)(vs[i] & INT64_MAX));
			bad += strcmp(got, want) != 0;
			n += 2;
		}
	}
	srand(11);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = (uint64_t)rand() << 42 ^ (uint64_t)rand() << 21 ^ (uint64_t)rand();
		v >>= rand() % 64;
		*jw_put_uint(got, v) = '\0';
		snprintf(want, sizeof(want), "%llu", (unsigned long long)v);
		bad += strcmp(got, want) != 0;
		*jw_put_int(got, (int64_t)v) = '\0';
		snprintf(want, sizeof(want), "%lld", (long long)(int64_t)v);
		bad += strcmp(got, want) != 0;
		n += 2;
	}
	ok(bad == 0, "jw_put_uint/jw_put_int equal snprintf for %d values (every digit count's edges, random): %d differ",
	   n, bad);
}

int main(void)
{
	tap_plan(22);
	test_put_numbers();
	test_fit();
	test_key_lit();
	test_basics();
	test_positions();
	test_random();
	text(NULL);
	return tap_done();
}
