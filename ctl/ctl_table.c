/* ctl_table — see ctl_table.h. */
#include "ctl_table.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_util.h"

#define GAP 3 /* spaces between columns, as kubectl */

struct ctl_table {
	size_t ncols;
	char **cells; /* row-major, owned; row 0 is the header */
	size_t ncells, cap;
};

/* Decodes one UTF-8 sequence at s (n bytes left). Its length, and *cp; 0 when
 * it is not a valid, shortest-form sequence of a scalar value. */
static size_t utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	size_t len;
	uint32_t c, min;
	if ((s[0] & 0xE0) == 0xC0)
		len = 2, c = s[0] & 0x1F, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		len = 3, c = s[0] & 0x0F, min = 0x800;
	else if ((s[0] & 0xF8) == 0xF0)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

char *ctl_clean(const char *s)
{
	if (!s)
		s = "";
	size_t n = strlen(s);
	char *out = ctl_xmalloc(n + 1);
	size_t w = 0;
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_next(p + i, n - i, &cp);
		if (l == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F)) {
			out[w++] = '?'; /* a control character (C0, DEL, C1) or not UTF-8 */
			i += l ? l : 1;
			continue;
		}
		memcpy(out + w, p + i, l);
		w += l;
		i += l;
	}
	out[w] = '\0';
	return out;
}

static int cp_width(uint32_t c)
{
	if ((c >= 0x0300 && c <= 0x036F) || (c >= 0x200B && c <= 0x200F) || (c >= 0xFE00 && c <= 0xFE0F))
		return 0; /* combining marks, zero-width spaces, variation selectors */
	if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0x303E) || (c >= 0x3041 && c <= 0x33FF) ||
	    (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0xA000 && c <= 0xA4CF) ||
	    (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) ||
	    (c >= 0xFF00 && c <= 0xFF60) || (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
	    (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD))
		return 2; /* East Asian wide and fullwidth, emoji */
	return 1;
}

size_t ctl_width(const char *s)
{
	size_t w = 0, n = strlen(s);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_next(p + i, n - i, &cp);
		if (l == 0) { /* not cleaned: count the byte */
			w++;
			i++;
			continue;
		}
		w += (size_t)cp_width(cp);
		i += l;
	}
	return w;
}

struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers)
{
	struct ctl_table *t = ctl_xmalloc(sizeof(*t));
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	for (size_t i = 0; i < ncols; i++)
		ctl_table_cell(t, headers[i]);
	return t;
}

void ctl_table_cell(struct ctl_table *t, const char *s)
{
	if (t->ncells == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = ctl_xrealloc(t->cells, t->cap * sizeof(*t->cells));
	}
	t->cells[t->ncells++] = ctl_clean(s && *s ? s : "<none>");
}

void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = ctl_xmalloc(n > 0 ? (size_t)n + 1 : 1);
	s[0] = '\0';
	if (n > 0) {
		va_start(ap, fmt);
		vsnprintf(s, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	ctl_table_cell(t, s);
	free(s);
}

size_t ctl_table_rows(const struct ctl_table *t)
{
	return t->ncells / t->ncols - 1;
}

static void pad(FILE *out, size_t n)
{
	while (n-- > 0)
		fputc(' ', out);
}

void ctl_table_print(const struct ctl_table *t, FILE *out, bool headers)
{
	size_t rows = t->ncells / t->ncols, first = headers ? 0 : 1;
	size_t *w = ctl_xmalloc(t->ncols * sizeof(*w));
	memset(w, 0, t->ncols * sizeof(*w));
	for (size_t r = first; r < rows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = ctl_width(t->cells[r * t->ncols + c]);
			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t r = first; r < rows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			fputs(s, out);
			if (c + 1 < t->ncols)
				pad(out, w[c] - ctl_width(s) + GAP);
		}
		fputc('\n', out);
	}
	free(w);
}

void ctl_table_free(struct ctl_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void ctl_table_stream_row(FILE *out, const size_t *widths, const char *const *cells, size_t n)
{
	for (size_t c = 0; c < n; c++) {
		char *s = ctl_clean(cells[c] && *cells[c] ? cells[c] : "<none>");
		fputs(s, out);
		if (c + 1 < n) {
			size_t cw = ctl_width(s);
			pad(out, (cw < widths[c] ? widths[c] - cw : 0) + GAP);
		}
		free(s);
	}
	fputc('\n', out);
	fflush(out);
}
