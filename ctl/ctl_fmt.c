/* ctl_fmt — see ctl_fmt.h. */
#include "ctl_fmt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"

static int digits(const char *s, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int ctl_parse_time(const char *s, time_t *t)
{
	int y, mo, d, h, mi, se;
	if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
	    digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) ||
	    s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
		return -1;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -1;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (!((strcmp(p, "Z") == 0 || strcmp(p, "z") == 0 || strcmp(p, "+00:00") == 0)))
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = se};
	*t = timegm(&tm);
	return 0;
}

void ctl_fmt_age_secs(int64_t s, char *out, size_t n)
{
	if (s < 0)
		s = 0;
	const int64_t M = 60, H = 3600, D = 86400;
	if (s < 2 * M)
		snprintf(out, n, "%llds", (long long)s);
	else if (s < 10 * M)
		snprintf(out, n, "%lldm%llds", (long long)(s / M), (long long)(s % M));
	else if (s < 3 * H)
		snprintf(out, n, "%lldm", (long long)(s / M));
	else if (s < 8 * H)
		snprintf(out, n, "%lldh%lldm", (long long)(s / H), (long long)(s % H / M));
	else if (s < 2 * D)
		snprintf(out, n, "%lldh", (long long)(s / H));
	else if (s < 8 * D)
		snprintf(out, n, "%lldd%lldh", (long long)(s / D), (long long)(s % D / H));
	else if (s < 2 * 365 * D)
		snprintf(out, n, "%lldd", (long long)(s / D));
	else
		snprintf(out, n, "%lldy", (long long)(s / (365 * D)));
}

void ctl_fmt_age(const char *rfc3339, time_t now, char *out, size_t n)
{
	time_t t;
	if (!rfc3339 || !*rfc3339)
		snprintf(out, n, "<none>");
	else if (ctl_parse_time(rfc3339, &t) != 0)
		snprintf(out, n, "?");
	else
		ctl_fmt_age_secs((int64_t)(now - t), out, n);
}

void ctl_fmt_ms(int64_t ms, char *out, size_t n)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(out, n, "%lldms", (long long)ms);
	else if (ms < 60000 && ms % 1000 == 0)
		snprintf(out, n, "%llds", (long long)(ms / 1000));
	else if (ms < 60000)
		snprintf(out, n, "%lld.%llds", (long long)(ms / 1000), (long long)(ms % 1000 / 100));
	else
		ctl_fmt_age_secs(ms / 1000, out, n);
}

void ctl_fmt_cpu(int64_t m, char *out, size_t n)
{
	snprintf(out, n, "%lldm", (long long)m);
}

void ctl_fmt_mem(int64_t mb, char *out, size_t n)
{
	if (mb >= 1024 && mb % 1024 == 0)
		snprintf(out, n, "%lldGi", (long long)(mb / 1024));
	else
		snprintf(out, n, "%lldMi", (long long)mb);
}

static void scalar(struct ctl_buf *b, const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: ctl_buf_add(b, json_string_value(v), json_string_length(v)); break;
	case JSON_INTEGER: ctl_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); break;
	case JSON_REAL: ctl_buf_printf(b, "%g", json_real_value(v)); break;
	case JSON_TRUE: ctl_buf_puts(b, "true"); break;
	case JSON_FALSE: ctl_buf_puts(b, "false"); break;
	case JSON_NULL: break;
	default: {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s)
			ctl_buf_puts(b, s);
		free(s);
	}
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

char *ctl_fmt_json(const json_t *v)
{
	struct ctl_buf b = {0};
	ctl_buf_add(&b, "", 0);
	if (!v)
		return b.s;
	if (json_is_array(v)) {
		size_t i;
		const json_t *e;
		json_array_foreach(v, i, e) {
			if (i)
				ctl_buf_puts(&b, ",");
			scalar(&b, e);
		}
	} else if (json_is_object(v)) {
		size_t n = json_object_size(v), i = 0;
		const char **keys = ctl_xmalloc((n ? n : 1) * sizeof(*keys));
		const char *k;
		const json_t *e;
		json_object_foreach((json_t *)v, k, e) keys[i++] = k;
		qsort(keys, n, sizeof(*keys), cmp_str);
		for (i = 0; i < n; i++) {
			ctl_buf_printf(&b, "%s%s=", i ? "," : "", keys[i]);
			scalar(&b, json_object_get(v, keys[i]));
		}
		free(keys);
	} else {
		scalar(&b, v);
	}
	return b.s;
}

const char *ctl_jstr(const json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : "";
}

int64_t ctl_jint(const json_t *obj, const char *key, int64_t dflt)
{
	const json_t *v = json_object_get(obj, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}
