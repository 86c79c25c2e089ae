/* test_jw — the JSON text writer: exact output for the basics, escapes and
 * integer limits, nesting limits, and agreement with jansson (strict parse back,
 * equal values) on thousands of random documents. */
#include "jw.h"
#include "tap.h"

#include <stdint.h>
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

int main(void)
{
	tap_plan(18);
	test_fit();
	test_key_lit();
	test_basics();
	test_random();
	text(NULL);
	return tap_done();
}
