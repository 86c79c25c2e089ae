/* ctl_util — latticectl's memory and string helpers.
 *
 * A command line has nothing sensible to do when memory runs out, so the x*
 * functions print "latticectl: out of memory" and exit 1 instead of
 * returning NULL: callers need no error path for it. A ctl_buf is a growable,
 * always NUL-terminated string owned by whoever declared it (ctl_buf_free). */
#ifndef LATTICE_CTL_UTIL_H
#define LATTICE_CTL_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

void *ctl_xmalloc(size_t n);
void *ctl_xrealloc(void *p, size_t n);
char *ctl_xstrdup(const char *s);
char *ctl_xstrndup(const char *s, size_t n);

struct ctl_buf {
	char *s;    /* "" until something is added; NULL only before the first add */
	size_t len, cap;
};

void ctl_buf_add(struct ctl_buf *b, const char *s, size_t n);
void ctl_buf_puts(struct ctl_buf *b, const char *s);
__attribute__((format(printf, 2, 3))) void ctl_buf_printf(struct ctl_buf *b, const char *fmt, ...);
/* The string so far ("" when nothing was added); stays owned by b. */
const char *ctl_buf_str(const struct ctl_buf *b);
void ctl_buf_reset(struct ctl_buf *b);
void ctl_buf_free(struct ctl_buf *b);

/* Appends s percent-encoded for a URL path segment or query value: every byte
 * but A-Z a-z 0-9 - . _ ~ becomes %XX. */
void ctl_buf_urlenc(struct ctl_buf *b, const char *s);

/* Parses a whole decimal integer in [min, max]. 0, or -1. */
int ctl_parse_int(const char *s, long long min, long long max, long long *out);

/* A duration: "30s", "500ms", "2m", "1h", or a plain number of seconds.
 * Sets *ms; 0, or -1 when it is not one (or over a day, or zero). */
int ctl_parse_duration(const char *s, long long *ms);

/* Reads a whole file ("-": standard input) into a malloc'd NUL-terminated
 * string. NULL with err set on failure. */
char *ctl_read_file(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
