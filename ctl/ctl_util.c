/* ctl_util — see ctl_util.h. */
#include "ctl_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(void)
{
	fputs("latticectl: out of memory\n", stderr);
	exit(1);
}

void *ctl_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *ctl_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *ctl_xstrdup(const char *s)
{
	return ctl_xstrndup(s, strlen(s));
}

char *ctl_xstrndup(const char *s, size_t n)
{
	char *p = ctl_xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void ctl_buf_add(struct ctl_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t nc = b->cap ? b->cap : 64;
		while (nc < b->len + n + 1)
			nc *= 2;
		b->s = ctl_xrealloc(b->s, nc);
		b->cap = nc;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void ctl_buf_puts(struct ctl_buf *b, const char *s)
{
	ctl_buf_add(b, s, strlen(s));
}

void ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	ctl_buf_add(b, "", 0); /* makes room for the NUL at least */
	if (b->len + (size_t)n + 1 > b->cap) {
		size_t nc = b->cap;
		while (nc < b->len + (size_t)n + 1)
			nc *= 2;
		b->s = ctl_xrealloc(b->s, nc);
		b->cap = nc;
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *ctl_buf_str(const struct ctl_buf *b)
{
	return b->s ? b->s : "";
}

void ctl_buf_reset(struct ctl_buf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

void ctl_buf_free(struct ctl_buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

void ctl_buf_urlenc(struct ctl_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '.' || *p == '_' || *p == '~') {
			ctl_buf_add(b, (const char *)p, 1);
		} else {
			char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
			ctl_buf_add(b, e, 3);
		}
	}
}

int ctl_parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s)
		return -1;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max)
		return -1;
	/* strtoll takes leading spaces and '+': a flag value should not */
	if (*s == ' ' || *s == '\t' || *s == '+')
		return -1;
	*out = v;
	return 0;
}

int ctl_parse_duration(const char *s, long long *ms)
{
	if (!s || !*s || !(*s >= '0' && *s <= '9'))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || v > 86400000ULL)
		return -1;
	unsigned long long mul;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else
		return -1;
	if (v == 0 || v * mul > 86400000ULL)
		return -1;
	*ms = (long long)(v * mul);
	return 0;
}

char *ctl_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	bool std = strcmp(path, "-") == 0;
	FILE *f = std ? stdin : fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	struct ctl_buf b = {0};
	char chunk[8192];
	size_t n;
	ctl_buf_add(&b, "", 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > max) {
			snprintf(err, errlen, "%s is over %zu bytes", std ? "standard input" : path, max);
			ctl_buf_free(&b);
			if (!std)
				fclose(f);
			return NULL;
		}
		ctl_buf_add(&b, chunk, n);
	}
	int bad = ferror(f);
	int e = errno;
	if (!std)
		fclose(f);
	if (bad) {
		snprintf(err, errlen, "cannot read %s: %s", std ? "standard input" : path, strerror(e));
		ctl_buf_free(&b);
		return NULL;
	}
	if (len)
		*len = b.len;
	return b.s;
}
