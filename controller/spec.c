#include "spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jw.h"

/* ---- error messages ------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
 * Strict like jansson's own check, so a message always survives json_string(). */
static size_t spec_utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Messages echo user input and jansson's error text (which may quote raw bytes);
 * the API returns them inside JSON, so control bytes and invalid UTF-8 become '?'
 * and truncation never splits a character. */
static void spec_clean_copy(char *dst, size_t cap, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t n = strlen(src), o = 0;
	for (size_t i = 0; i < n;) {
		size_t l = spec_utf8_len(s + i, n - i);
		if (l == 0 || s[i] < 0x20 || s[i] == 0x7f) {
			if (o + 1 >= cap)
				break;
			dst[o++] = '?';
			i += l ? l : 1;
			continue;
		}
		if (o + l >= cap)
			break;
		memcpy(dst + o, s + i, l);
		o += l;
		i += l;
	}
	dst[o] = '\0';
}

__attribute__((format(printf, 3, 4))) static int spec_fail(struct spec_err *err, const char *code,
							    const char *fmt, ...)
{
	if (err == NULL)
		return -1;
	char tmp[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	snprintf(err->code, sizeof(err->code), "%s", code);
	spec_clean_copy(err->message, sizeof(err->message), tmp);
	return -1;
}

static int spec_oom(struct spec_err *err)
{
	return spec_fail(err, "out_of_memory", "out of memory");
}

/* A short excerpt of user text for a message: keeps messages bounded whatever
 * the input; cut at a character boundary. */
struct spec_quote {
	char s[56];
};

static struct spec_quote spec_q(const char *s)
{
	struct spec_quote q;
	size_t n = strlen(s), max = 40;
	if (n <= max) {
		memcpy(q.s, s, n + 1);
		return q;
	}
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--;
	memcpy(q.s, s, max);
	memcpy(q.s + max, "...", 4);
	return q;
}

/* ---- string rules -------------------------------------------------------- */

static bool spec_is_idchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static bool spec_name_chars(const char *s, size_t max)
{
	if (s == NULL)
		return false;
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= max || !spec_is_idchar((unsigned char)s[n]))
			return false;
	return n > 0 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

bool spec_id_valid(const char *s)
{
	return spec_name_chars(s, SPEC_ID_MAX);
}

bool spec_node_id_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= SPEC_TOKEN_MAX ||
		    !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return false;
	}
	return n > 0;
}

bool spec_region_valid(const char *s)
{
	return spec_name_chars(s, 64);
}

static bool spec_is_contract_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
	       c == '-';
}

bool spec_contract_valid(const char *s)
{
	if (s == NULL)
		return false;
	const char *colon = strchr(s, ':');
	size_t n = strlen(s);
	if (colon == NULL || colon == s || colon[1] == '\0' || n > 128)
		return false;
	for (const char *p = s; *p; p++)
		if (p != colon && !spec_is_contract_char((unsigned char)*p))
			return false;
	return true;
}

/* Code points, not bytes: limits are stated to users in characters. */
static size_t spec_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static bool spec_no_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool spec_text_valid(const char *s, size_t min, size_t max)
{
	size_t n = spec_chars(s);
	return n >= min && n <= max && spec_no_ctl(s);
}

/* Printable ASCII without spaces: OCI references and the like. */
static bool spec_ref_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 1024)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static bool spec_name_valid(const char *s)
{
	return spec_text_valid(s, 1, 256);
}

static bool spec_restriction_valid(const char *s)
{
	return spec_text_valid(s, 1, 128);
}

static bool spec_label_key_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if (n >= 63 || !(spec_is_idchar((unsigned char)s[n]) || s[n] == '/'))
			return false;
	return n > 0;
}

static bool spec_label_value_valid(const char *s)
{
	return spec_text_valid(s, 0, 255);
}

static bool spec_value_key_valid(const char *s)
{
	return spec_name_chars(s, 128);
}

static bool spec_value_value_valid(const char *s)
{
	return spec_text_valid(s, 0, 4096);
}

/* A rule for one kind of string, with the phrase that tells the user what it must be. */
struct spec_rule {
	bool (*valid)(const char *s);
	const char *what;
};

static const struct spec_rule rule_id = {
	spec_id_valid, "1 to 128 characters of A-Z a-z 0-9 . _ - (not '.' or '..')"};
static const struct spec_rule rule_node_id = {
	spec_node_id_valid,
	"1 to 64 characters of A-Z a-z 0-9 _ - (a node id is a NATS subject token: no '.')"};
static const struct spec_rule rule_region = {
	spec_region_valid, "1 to 64 characters of A-Z a-z 0-9 . _ -"};
static const struct spec_rule rule_contract = {
	spec_contract_valid,
	"a contract 'namespace:name' in lowercase a-z 0-9 _ . - (at most 128 characters), "
	"e.g. wasmcloud:keyvalue"};
static const struct spec_rule rule_name = {
	spec_name_valid, "1 to 256 characters without control characters"};
static const struct spec_rule rule_ref = {
	spec_ref_valid, "1 to 1024 printable ASCII characters without spaces"};
static const struct spec_rule rule_link_name = {
	spec_value_key_valid, "1 to 128 characters of A-Z a-z 0-9 . _ - (not '.' or '..')"};
static const struct spec_rule rule_restriction = {
	spec_restriction_valid, "1 to 128 characters without control characters"};

/* A rule for a string map. */
struct spec_maprule {
	const struct spec_rule key, value;
	size_t max;
};

static const struct spec_maprule map_labels = {
	{spec_label_key_valid, "1 to 63 characters of A-Z a-z 0-9 . _ / -"},
	{spec_label_value_valid, "at most 255 characters without control characters"},
	SPEC_LABELS_MAX};
static const struct spec_maprule map_values = {
	{spec_value_key_valid, "1 to 128 characters of A-Z a-z 0-9 . _ -"},
	{spec_value_value_valid, "at most 4096 characters without control characters"},
	64};

/* ---- kvlist / strlist ---------------------------------------------------- */

void kvlist_free(struct kvlist *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].key);
		free(l->items[i].value);
	}
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* dst must own nothing; on failure it is left empty. */
int kvlist_copy(struct kvlist *dst, const struct kvlist *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n == 0)
		return 0;
	dst->items = calloc(src->n, sizeof(*dst->items));
	if (dst->items == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		dst->n = i + 1; /* so a partial copy frees cleanly */
		dst->items[i].key = strdup(src->items[i].key);
		dst->items[i].value = strdup(src->items[i].value);
		if (dst->items[i].key == NULL || dst->items[i].value == NULL) {
			kvlist_free(dst);
			return -1;
		}
	}
	return 0;
}

const char *kvlist_get(const struct kvlist *l, const char *key)
{
	/* Linear: lists are small (≤ 64) and this stays right even for a list built
	 * elsewhere that forgot to sort. */
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->items[i].key, key) == 0)
			return l->items[i].value;
	return NULL;
}

void strlist_free(struct strlist *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i]);
	free(l->items);
	memset(l, 0, sizeof(*l));
}

/* dst must own nothing; on failure it is left empty. */
int strlist_copy(struct strlist *dst, const struct strlist *src)
{
	memset(dst, 0, sizeof(*dst));
	if (src->n == 0)
		return 0;
	dst->items = calloc(src->n, sizeof(*dst->items));
	if (dst->items == NULL)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		dst->n = i + 1;
		dst->items[i] = strdup(src->items[i]);
		if (dst->items[i] == NULL) {
			strlist_free(dst);
			return -1;
		}
	}
	return 0;
}

bool strlist_has(const struct strlist *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++) /* linear, as in kvlist_get */
		if (strcmp(l->items[i], s) == 0)
			return true;
	return false;
}

json_t *kvlist_to_json(const struct kvlist *l)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (json_object_set_new(o, l->items[i].key, json_string(l->items[i].value)) != 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *strlist_to_json(const struct strlist *l)
{
	json_t *a = json_array();
	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < l->n; i++) {
		if (json_array_append_new(a, json_string(l->items[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

void kvlist_write(struct jw *w, const struct kvlist *l)
{
	jw_obj(w);
	for (size_t i = 0; i < l->n; i++) {
		jw_key(w, l->items[i].key);
		jw_str(w, l->items[i].value);
	}
	jw_obj_end(w);
}

void strlist_write(struct jw *w, const struct strlist *l)
{
	jw_arr(w);
	for (size_t i = 0; i < l->n; i++)
		jw_str(w, l->items[i]);
	jw_arr_end(w);
}

/* ---- body ---------------------------------------------------------------- */

int spec_parse_body(const char *buf, size_t len, json_t **out, struct spec_err *err)
{
	if (len > SPEC_BODY_MAX)
		return spec_fail(err, SPEC_E_INVALID_JSON, "request body is larger than %d bytes",
				 SPEC_BODY_MAX);
	if (buf == NULL)
		buf = "", len = 0;
	json_error_t jerr;
	/* DECODE_ANY so a scalar body gets the same message as an array; NULs inside
	 * strings are refused because JSON_ALLOW_NUL is not given. */
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (j == NULL) {
		/* jansson's own text names a flag the user cannot set. */
		const char *why = json_error_code(&jerr) == json_error_null_character
					  ? "NUL characters (\\u0000) are not allowed in strings"
					  : jerr.text;
		return spec_fail(err, SPEC_E_INVALID_JSON, "invalid JSON at line %d, column %d: %s",
				 jerr.line, jerr.column, why);
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return spec_fail(err, SPEC_E_INVALID_JSON, "request body must be a JSON object");
	}
	*out = j;
	return 0;
}

/* ---- field decoding ------------------------------------------------------ */

/* The object being decoded; prefix names nested objects in messages ("selector."). */
struct spec_ctx {
	const json_t *obj;
	const char *prefix;
	struct spec_err *err;
};

static int spec_check_object(const json_t *j, struct spec_err *err)
{
	if (!json_is_object(j))
		return spec_fail(err, SPEC_E_INVALID_JSON, "request body must be a JSON object");
	return 0;
}

/* Unknown fields first, so a typo is reported as such and not as a missing field. */
static int spec_check_keys(const struct spec_ctx *c, const char *const *known)
{
	const char *key;
	size_t klen;
	json_t *v;
	/* jansson's iterator API is not const-qualified; nothing is modified. */
	json_object_keylen_foreach((json_t *)c->obj, key, klen, v) {
		const char *const *k = known;
		/* A key with a NUL inside (only in hand-built objects) is no known name. */
		while (*k && (klen != strlen(key) || strcmp(*k, key) != 0))
			k++;
		if (*k == NULL)
			return spec_fail(c->err, SPEC_E_UNKNOWN_FIELD, "unknown field '%s%s'",
					 c->prefix, spec_q(key).s);
	}
	return 0;
}

/* Returns 1 when present (v set), 0 when absent and optional, -1 on error. */
static int spec_field(const struct spec_ctx *c, const char *key, bool required, json_t **v)
{
	*v = json_object_get(c->obj, key);
	if (*v != NULL)
		return 1;
	if (required)
		return spec_fail(c->err, SPEC_E_MISSING_FIELD, "field '%s%s' is required", c->prefix,
				 key);
	return 0;
}

/* A string's bytes, or NULL when it holds a NUL (possible in objects not built by
 * spec_parse_body). */
static const char *spec_str(const json_t *v)
{
	const char *s = json_string_value(v);
	if (s == NULL || strlen(s) != json_string_length(v))
		return NULL;
	return s;
}

static int spec_get_int(const struct spec_ctx *c, const char *key, bool required, int64_t min,
			int64_t max, int64_t *out, bool *present)
{
	json_t *v;
	int r = spec_field(c, key, required, &v);
	if (present)
		*present = r == 1;
	if (r <= 0)
		return r;
	if (!json_is_integer(v))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD, "field '%s%s' must be an integer",
				 c->prefix, key);
	json_int_t x = json_integer_value(v);
	if (x < min || x > max)
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field '%s%s' must be between %lld and %lld", c->prefix, key,
				 (long long)min, (long long)max);
	*out = x;
	return 1;
}

/* *out receives a new string when present; it must own nothing before. */
static int spec_get_str(const struct spec_ctx *c, const char *key, bool required,
			const struct spec_rule *rule, char **out)
{
	json_t *v;
	int r = spec_field(c, key, required, &v);
	if (r <= 0)
		return r;
	if (!json_is_string(v))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD, "field '%s%s' must be a string",
				 c->prefix, key);
	const char *s = spec_str(v);
	if (s == NULL || !rule->valid(s))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD, "field '%s%s' must be %s", c->prefix,
				 key, rule->what);
	if ((*out = strdup(s)) == NULL)
		return spec_oom(c->err);
	return 1;
}

static int spec_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int spec_cmp_kv(const void *a, const void *b)
{
	return strcmp(((const struct kv *)a)->key, ((const struct kv *)b)->key);
}

/* Absent leaves *out empty. */
static int spec_get_list(const struct spec_ctx *c, const char *key, const struct spec_rule *rule,
			 struct strlist *out)
{
	json_t *v;
	int r = spec_field(c, key, false, &v);
	if (r <= 0)
		return r;
	if (!json_is_array(v))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field '%s%s' must be an array of strings", c->prefix, key);
	size_t n = json_array_size(v);
	if (n > SPEC_LIST_MAX)
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field '%s%s' must have at most %d entries", c->prefix, key,
				 SPEC_LIST_MAX);
	if (n == 0)
		return 1;
	if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
		return spec_oom(c->err);
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		if (!json_is_string(e))
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' must be an array of strings (entry %zu is not)",
					 c->prefix, key, i);
		const char *s = spec_str(e);
		if (s == NULL || !rule->valid(s))
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' entry '%s' is invalid: must be %s", c->prefix,
					 key, s ? spec_q(s).s : "", rule->what);
		if ((out->items[i] = strdup(s)) == NULL)
			return spec_oom(c->err);
		out->n = i + 1;
	}
	qsort(out->items, out->n, sizeof(*out->items), spec_cmp_str);
	for (size_t i = 1; i < out->n; i++)
		if (strcmp(out->items[i - 1], out->items[i]) == 0)
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' lists '%s' more than once", c->prefix, key,
					 spec_q(out->items[i]).s);
	return 1;
}

/* Absent leaves *out empty. Keys of a jansson object are already unique. */
static int spec_get_map(const struct spec_ctx *c, const char *key, const struct spec_maprule *rule,
			struct kvlist *out)
{
	json_t *v;
	int r = spec_field(c, key, false, &v);
	if (r <= 0)
		return r;
	if (!json_is_object(v))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field '%s%s' must be an object of string values", c->prefix, key);
	size_t n = json_object_size(v);
	if (n > rule->max)
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field '%s%s' must have at most %zu entries", c->prefix, key,
				 rule->max);
	if (n == 0)
		return 1;
	if ((out->items = calloc(n, sizeof(*out->items))) == NULL)
		return spec_oom(c->err);
	const char *k;
	size_t klen;
	json_t *e;
	json_object_keylen_foreach(v, k, klen, e) {
		/* A NUL inside a key (only in hand-built objects) would make two keys equal. */
		if (klen != strlen(k) || !rule->key.valid(k))
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' key '%s' is invalid: must be %s", c->prefix,
					 key, spec_q(k).s, rule->key.what);
		if (!json_is_string(e))
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' value of '%s' must be a string", c->prefix, key,
					 spec_q(k).s);
		const char *s = spec_str(e);
		if (s == NULL || !rule->value.valid(s))
			return spec_fail(c->err, SPEC_E_INVALID_FIELD,
					 "field '%s%s' value of '%s' must be %s", c->prefix, key,
					 spec_q(k).s, rule->value.what);
		struct kv *kv = &out->items[out->n];
		kv->key = strdup(k);
		kv->value = strdup(s);
		out->n++; /* counted before the check, so free releases a half-made pair */
		if (kv->key == NULL || kv->value == NULL)
			return spec_oom(c->err);
	}
	qsort(out->items, out->n, sizeof(*out->items), spec_cmp_kv);
	return 1;
}

/* name defaults to the id; without an id the server fills it in later. */
static int spec_default_name(char **name, const char *id, struct spec_err *err)
{
	if (*name != NULL || id == NULL)
		return 0;
	if ((*name = strdup(id)) == NULL)
		return spec_oom(err);
	return 0;
}

/* ---- encoding ------------------------------------------------------------ */

/* Sets key to v (stealing it); a NULL v (failed allocation) marks the object bad. */
static void spec_put(json_t *o, const char *key, json_t *v, bool *bad)
{
	if (json_object_set_new(o, key, v) != 0)
		*bad = true;
}

static json_t *spec_done(json_t *o, bool bad)
{
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- node ---------------------------------------------------------------- */

void spec_node_free(struct node_spec *s)
{
	if (s == NULL)
		return;
	free(s->id);
	free(s->region);
	kvlist_free(&s->labels);
	memset(s, 0, sizeof(*s));
}

int spec_node_from_json(const json_t *j, struct node_spec *out, struct spec_err *err)
{
	static const char *const known[] = {"id",	 "region",   "labels",	    "cpu_capacity",
					    "memory_mb", "cpu_used", "memory_used_mb", "actor_count",
					    NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct node_spec s = {0};
	if (spec_check_keys(&c, known) < 0 || spec_get_str(&c, "id", true, &rule_node_id, &s.id) < 0 ||
	    spec_get_str(&c, "region", true, &rule_region, &s.region) < 0 ||
	    spec_get_map(&c, "labels", &map_labels, &s.labels) < 0 ||
	    spec_get_int(&c, "cpu_capacity", false, 0, SPEC_CPU_MAX, &s.cpu_capacity, NULL) < 0 ||
	    spec_get_int(&c, "memory_mb", false, 0, SPEC_MEMORY_MAX, &s.memory_mb, NULL) < 0 ||
	    spec_get_int(&c, "cpu_used", false, 0, SPEC_CPU_MAX, &s.cpu_used, NULL) < 0 ||
	    spec_get_int(&c, "memory_used_mb", false, 0, SPEC_MEMORY_MAX, &s.memory_used_mb,
			 NULL) < 0 ||
	    spec_get_int(&c, "actor_count", false, 0, SPEC_ACTOR_COUNT_MAX, &s.actor_count, NULL) <
		    0)
		goto fail;
	if (s.cpu_capacity > 0 && s.cpu_used > s.cpu_capacity) {
		spec_fail(err, SPEC_E_INVALID_FIELD,
			  "field 'cpu_used' must not exceed cpu_capacity (%lld)",
			  (long long)s.cpu_capacity);
		goto fail;
	}
	if (s.memory_mb > 0 && s.memory_used_mb > s.memory_mb) {
		spec_fail(err, SPEC_E_INVALID_FIELD,
			  "field 'memory_used_mb' must not exceed memory_mb (%lld)",
			  (long long)s.memory_mb);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	spec_node_free(&s);
	return -1;
}

json_t *spec_node_to_json(const struct node_spec *s)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool bad = false;
	spec_put(o, "id", json_string(s->id), &bad);
	spec_put(o, "region", json_string(s->region), &bad);
	spec_put(o, "labels", kvlist_to_json(&s->labels), &bad);
	spec_put(o, "cpu_capacity", json_integer(s->cpu_capacity), &bad);
	spec_put(o, "memory_mb", json_integer(s->memory_mb), &bad);
	spec_put(o, "cpu_used", json_integer(s->cpu_used), &bad);
	spec_put(o, "memory_used_mb", json_integer(s->memory_used_mb), &bad);
	spec_put(o, "actor_count", json_integer(s->actor_count), &bad);
	return spec_done(o, bad);
}

/* ---- actor --------------------------------------------------------------- */

const char *spec_strategy_name(enum actor_strategy s)
{
	return s == STRATEGY_ROUND_ROBIN ? "round_robin" : "resources";
}

void spec_actor_free(struct actor_spec *s)
{
	if (s == NULL)
		return;
	free(s->id);
	free(s->name);
	free(s->module);
	free(s->preferred_region);
	kvlist_free(&s->constraints);
	strlist_free(&s->contracts);
	memset(s, 0, sizeof(*s));
}

static int spec_get_strategy(const struct spec_ctx *c, enum actor_strategy *out)
{
	json_t *v;
	int r = spec_field(c, "strategy", false, &v);
	if (r <= 0)
		return r;
	const char *s = json_string_value(v);
	if (s != NULL && strcmp(s, "resources") == 0)
		*out = STRATEGY_RESOURCES;
	else if (s != NULL && strcmp(s, "round_robin") == 0)
		*out = STRATEGY_ROUND_ROBIN;
	else
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field 'strategy' must be \"resources\" or \"round_robin\"");
	return 1;
}

/* "" means no preference, so it is accepted besides a valid region; never NULL. */
static int spec_get_pref_region(const struct spec_ctx *c, char **out)
{
	json_t *v = json_object_get(c->obj, "preferred_region");
	if (v != NULL && !(json_is_string(v) && json_string_length(v) == 0))
		return spec_get_str(c, "preferred_region", false, &rule_region, out);
	if ((*out = strdup("")) == NULL)
		return spec_oom(c->err);
	return v != NULL;
}

int spec_actor_from_json(const json_t *j, struct actor_spec *out, struct spec_err *err)
{
	static const char *const known[] = {
		"id",	   "name",	       "module",	   "cpu_required",
		"memory_required_mb", "preferred_region", "constraints", "priority",
		"max_latency_ms",     "replicas",	       "strategy",	   "contracts",
		NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct actor_spec s = {0};
	s.replicas = 1;
	s.strategy = STRATEGY_RESOURCES;
	if (spec_check_keys(&c, known) < 0 || spec_get_str(&c, "id", false, &rule_id, &s.id) < 0 ||
	    spec_get_str(&c, "name", false, &rule_name, &s.name) < 0 ||
	    spec_get_str(&c, "module", true, &rule_ref, &s.module) < 0 ||
	    spec_get_int(&c, "cpu_required", true, 0, SPEC_CPU_MAX, &s.cpu_required, NULL) < 0 ||
	    spec_get_int(&c, "memory_required_mb", true, 0, SPEC_MEMORY_MAX, &s.memory_required_mb,
			 NULL) < 0 ||
	    spec_get_pref_region(&c, &s.preferred_region) < 0 ||
	    spec_get_map(&c, "constraints", &map_labels, &s.constraints) < 0 ||
	    spec_get_int(&c, "priority", false, 0, 255, &s.priority, NULL) < 0 ||
	    spec_get_int(&c, "max_latency_ms", false, 0, SPEC_LATENCY_MAX, &s.max_latency_ms,
			 NULL) < 0 ||
	    spec_get_int(&c, "replicas", false, 1, SPEC_REPLICAS_MAX, &s.replicas, NULL) < 0 ||
	    spec_get_strategy(&c, &s.strategy) < 0 ||
	    spec_get_list(&c, "contracts", &rule_contract, &s.contracts) < 0 ||
	    spec_default_name(&s.name, s.id, err) < 0) {
		spec_actor_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

void spec_actor_write(struct jw *w, const struct actor_spec *s)
{
	jw_obj(w);
	spec_actor_fields(w, s);
	jw_obj_end(w);
}

void spec_actor_fields(struct jw *w, const struct actor_spec *s)
{
	if (s->id) {
		jw_key(w, "id");
		jw_str(w, s->id);
	}
	if (s->name) {
		jw_key(w, "name");
		jw_str(w, s->name);
	}
	jw_key(w, "module");
	if (s->module == NULL)
		w->oom = true; /* as spec_actor_to_json: no document without a module */
	jw_str(w, s->module);
	jw_key(w, "cpu_required");
	jw_int(w, s->cpu_required);
	jw_key(w, "memory_required_mb");
	jw_int(w, s->memory_required_mb);
	jw_key(w, "preferred_region");
	jw_str(w, s->preferred_region ? s->preferred_region : "");
	jw_key(w, "constraints");
	kvlist_write(w, &s->constraints);
	jw_key(w, "priority");
	jw_int(w, s->priority);
	jw_key(w, "max_latency_ms");
	jw_int(w, s->max_latency_ms);
	jw_key(w, "replicas");
	jw_int(w, s->replicas);
	jw_key(w, "strategy");
	jw_str(w, spec_strategy_name(s->strategy));
	jw_key(w, "contracts");
	strlist_write(w, &s->contracts);
}

/* One encoder: the tree is the written text, parsed. */
json_t *spec_actor_to_json(const struct actor_spec *s)
{
	struct jw w;
	jw_init(&w);
	spec_actor_write(&w, s);
	size_t n;
	char *text = jw_take(&w, &n);
	json_t *j = text ? json_loadb(text, n, 0, NULL) : NULL;
	free(text);
	return j;
}

/* ---- actor patch --------------------------------------------------------- */

int spec_actor_patch_from_json(const json_t *j, struct actor_patch *out, struct spec_err *err)
{
	static const char *const known[] = {"replicas", "cpu_required", "memory_required_mb", NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct actor_patch p = {0};
	if (spec_check_keys(&c, known) < 0 ||
	    spec_get_int(&c, "replicas", false, 1, SPEC_REPLICAS_MAX, &p.replicas,
			 &p.has_replicas) < 0 ||
	    spec_get_int(&c, "cpu_required", false, 0, SPEC_CPU_MAX, &p.cpu_required,
			 &p.has_cpu_required) < 0 ||
	    spec_get_int(&c, "memory_required_mb", false, 0, SPEC_MEMORY_MAX,
			 &p.memory_required_mb, &p.has_memory_required_mb) < 0)
		return -1;
	if (!p.has_replicas && !p.has_cpu_required && !p.has_memory_required_mb)
		return spec_fail(err, SPEC_E_MISSING_FIELD,
				 "nothing to change: give replicas, cpu_required or "
				 "memory_required_mb");
	*out = p;
	return 0;
}

json_t *spec_actor_patch_to_json(const struct actor_patch *p)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool bad = false;
	if (p->has_replicas)
		spec_put(o, "replicas", json_integer(p->replicas), &bad);
	if (p->has_cpu_required)
		spec_put(o, "cpu_required", json_integer(p->cpu_required), &bad);
	if (p->has_memory_required_mb)
		spec_put(o, "memory_required_mb", json_integer(p->memory_required_mb), &bad);
	return spec_done(o, bad);
}

/* ---- provider ------------------------------------------------------------ */

void spec_provider_free(struct provider_spec *s)
{
	if (s == NULL)
		return;
	free(s->id);
	free(s->contract_id);
	free(s->image);
	strlist_free(&s->nodes);
	memset(s, 0, sizeof(*s));
}

int spec_provider_from_json(const json_t *j, struct provider_spec *out, struct spec_err *err)
{
	static const char *const known[] = {"id", "contract_id", "image", "nodes", NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct provider_spec s = {0};
	if (spec_check_keys(&c, known) < 0 || spec_get_str(&c, "id", false, &rule_id, &s.id) < 0 ||
	    spec_get_str(&c, "contract_id", true, &rule_contract, &s.contract_id) < 0 ||
	    spec_get_str(&c, "image", true, &rule_ref, &s.image) < 0 ||
	    spec_get_list(&c, "nodes", &rule_id, &s.nodes) < 0) {
		spec_provider_free(&s);
		return -1;
	}
	*out = s;
	return 0;
}

json_t *spec_provider_to_json(const struct provider_spec *s)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool bad = false;
	if (s->id)
		spec_put(o, "id", json_string(s->id), &bad);
	spec_put(o, "contract_id", json_string(s->contract_id), &bad);
	spec_put(o, "image", json_string(s->image), &bad);
	spec_put(o, "nodes", strlist_to_json(&s->nodes), &bad);
	return spec_done(o, bad);
}

/* ---- link ---------------------------------------------------------------- */

void spec_link_free(struct link_spec *s)
{
	if (s == NULL)
		return;
	free(s->id);
	free(s->actor_id);
	free(s->provider_id);
	free(s->contract_id);
	free(s->link_name);
	kvlist_free(&s->values);
	memset(s, 0, sizeof(*s));
}

int spec_link_from_json(const json_t *j, struct link_spec *out, struct spec_err *err)
{
	static const char *const known[] = {"id",	  "actor_id",	 "provider_id",
					    "contract_id", "link_name",	 "values",
					    "timeout_ms",  "retry_count", "retry_delay_ms",
					    NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct link_spec s = {0};
	s.timeout_ms = 5000;
	s.retry_count = 3;
	s.retry_delay_ms = 1000;
	if (spec_check_keys(&c, known) < 0 || spec_get_str(&c, "id", false, &rule_id, &s.id) < 0 ||
	    spec_get_str(&c, "actor_id", true, &rule_id, &s.actor_id) < 0 ||
	    spec_get_str(&c, "provider_id", true, &rule_id, &s.provider_id) < 0 ||
	    spec_get_str(&c, "contract_id", true, &rule_contract, &s.contract_id) < 0 ||
	    spec_get_str(&c, "link_name", false, &rule_link_name, &s.link_name) < 0 ||
	    spec_get_map(&c, "values", &map_values, &s.values) < 0 ||
	    spec_get_int(&c, "timeout_ms", false, 0, SPEC_TIMEOUT_MAX, &s.timeout_ms, NULL) < 0 ||
	    spec_get_int(&c, "retry_count", false, 0, SPEC_RETRY_MAX, &s.retry_count, NULL) < 0 ||
	    spec_get_int(&c, "retry_delay_ms", false, 0, SPEC_TIMEOUT_MAX, &s.retry_delay_ms,
			 NULL) < 0)
		goto fail;
	if (s.link_name == NULL && (s.link_name = strdup("default")) == NULL) {
		spec_oom(err);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	spec_link_free(&s);
	return -1;
}

json_t *spec_link_to_json(const struct link_spec *s)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	bool bad = false;
	if (s->id)
		spec_put(o, "id", json_string(s->id), &bad);
	spec_put(o, "actor_id", json_string(s->actor_id), &bad);
	spec_put(o, "provider_id", json_string(s->provider_id), &bad);
	spec_put(o, "contract_id", json_string(s->contract_id), &bad);
	spec_put(o, "link_name", json_string(s->link_name ? s->link_name : "default"), &bad);
	spec_put(o, "values", kvlist_to_json(&s->values), &bad);
	spec_put(o, "timeout_ms", json_integer(s->timeout_ms), &bad);
	spec_put(o, "retry_count", json_integer(s->retry_count), &bad);
	spec_put(o, "retry_delay_ms", json_integer(s->retry_delay_ms), &bad);
	return spec_done(o, bad);
}

/* ---- policy -------------------------------------------------------------- */

void spec_policy_free(struct policy_spec *s)
{
	if (s == NULL)
		return;
	free(s->policy_id);
	strlist_free(&s->allowed_contracts);
	strlist_free(&s->denied_contracts);
	strlist_free(&s->network_restrictions);
	strlist_free(&s->sel_regions);
	kvlist_free(&s->sel_labels);
	memset(s, 0, sizeof(*s));
}

static int spec_get_selector(const struct spec_ctx *c, struct policy_spec *s)
{
	static const char *const known[] = {"regions", "labels", NULL};
	json_t *v;
	int r = spec_field(c, "selector", false, &v);
	if (r <= 0)
		return r;
	if (!json_is_object(v))
		return spec_fail(c->err, SPEC_E_INVALID_FIELD,
				 "field 'selector' must be an object like "
				 "{\"regions\": [...], \"labels\": {...}}");
	struct spec_ctx sc = {v, "selector.", c->err};
	if (spec_check_keys(&sc, known) < 0 ||
	    spec_get_list(&sc, "regions", &rule_region, &s->sel_regions) < 0 ||
	    spec_get_map(&sc, "labels", &map_labels, &s->sel_labels) < 0)
		return -1;
	return 1;
}

int spec_policy_from_json(const json_t *j, struct policy_spec *out, struct spec_err *err)
{
	static const char *const known[] = {"policy_id",	    "allowed_contracts",
					    "denied_contracts",	    "max_actor_memory_mb",
					    "network_restrictions", "selector",
					    NULL};
	if (spec_check_object(j, err) != 0)
		return -1;
	struct spec_ctx c = {j, "", err};
	struct policy_spec s = {0};
	if (spec_check_keys(&c, known) < 0 ||
	    spec_get_str(&c, "policy_id", false, &rule_id, &s.policy_id) < 0 ||
	    spec_get_list(&c, "allowed_contracts", &rule_contract, &s.allowed_contracts) < 0 ||
	    spec_get_list(&c, "denied_contracts", &rule_contract, &s.denied_contracts) < 0 ||
	    spec_get_int(&c, "max_actor_memory_mb", false, 0, SPEC_MEMORY_MAX,
			 &s.max_actor_memory_mb, NULL) < 0 ||
	    spec_get_list(&c, "network_restrictions", &rule_restriction,
			  &s.network_restrictions) < 0 ||
	    spec_get_selector(&c, &s) < 0)
		goto fail;
	for (size_t i = 0; i < s.allowed_contracts.n; i++) {
		const char *k = s.allowed_contracts.items[i];
		if (strlist_has(&s.denied_contracts, k)) {
			spec_fail(err, SPEC_E_INVALID_FIELD,
				  "contract '%s' is in both allowed_contracts and "
				  "denied_contracts",
				  spec_q(k).s);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	spec_policy_free(&s);
	return -1;
}

json_t *spec_policy_to_json(const struct policy_spec *s)
{
	json_t *o = json_object(), *sel = json_object();
	if (o == NULL || sel == NULL) {
		json_decref(o);
		json_decref(sel);
		return NULL;
	}
	bool bad = false;
	spec_put(sel, "regions", strlist_to_json(&s->sel_regions), &bad);
	spec_put(sel, "labels", kvlist_to_json(&s->sel_labels), &bad);
	if (s->policy_id)
		spec_put(o, "policy_id", json_string(s->policy_id), &bad);
	spec_put(o, "allowed_contracts", strlist_to_json(&s->allowed_contracts), &bad);
	spec_put(o, "denied_contracts", strlist_to_json(&s->denied_contracts), &bad);
	spec_put(o, "max_actor_memory_mb", json_integer(s->max_actor_memory_mb), &bad);
	spec_put(o, "network_restrictions", strlist_to_json(&s->network_restrictions), &bad);
	spec_put(o, "selector", sel, &bad);
	return spec_done(o, bad);
}
