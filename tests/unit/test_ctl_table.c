/* test_ctl_table — latticectl's tables (alignment, cleaning, widths) and how
 * values are shown in them (ages, sizes, JSON cells). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_fmt.h"
#include "ctl_table.h"
#include "tap.h"

static char *printed(const struct ctl_table *t, bool headers)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	ctl_table_print(t, f, headers);
	fclose(f);
	return buf;
}

static const char *age(int64_t s)
{
	static char b[32];
	ctl_fmt_age_secs(s, b, sizeof(b));
	return b;
}

static const char *cell(const char *json)
{
	static char out[256];
	json_t *j = json_loads(json, JSON_DECODE_ANY, NULL);
	char *s = ctl_fmt_json(j);
	snprintf(out, sizeof(out), "%s", s);
	free(s);
	json_decref(j);
	return out;
}

int main(void)
{
	tap_plan(38);

	/* Alignment: each column as wide as its widest cell, three spaces between, none at the end. */
	static const char *const h[] = {"ID", "REGION", "STATUS"};
	struct ctl_table *t = ctl_table_new(3, h);
	ctl_table_cell(t, "edge-1");
	ctl_table_cell(t, "eu-west");
	ctl_table_cell(t, "healthy");
	ctl_table_cell(t, "e2");
	ctl_table_cell(t, "");
	ctl_table_cellf(t, "%s,%s", "healthy", "cordoned");
	is_int(ctl_table_rows(t), 2, "two data rows");
	char *out = printed(t, true);
	is_str(out,
	       "ID       REGION    STATUS\n"
	       "edge-1   eu-west   healthy\n"
	       "e2       <none>    healthy,cordoned\n",
	       "columns padded to the widest cell + 3 spaces; an empty cell shows <none>; no trailing spaces");
	free(out);
	out = printed(t, false);
	is_str(out,
	       "edge-1   eu-west   healthy\n"
	       "e2       <none>    healthy,cordoned\n",
	       "without headers the widths come from the data alone");
	free(out);
	ctl_table_free(t);

	/* A header wider than its data sets the width. */
	static const char *const h2[] = {"A-LONG-HEADER", "B"};
	t = ctl_table_new(2, h2);
	ctl_table_cell(t, "x");
	ctl_table_cell(t, NULL);
	out = printed(t, true);
	is_str(out, "A-LONG-HEADER   B\nx               <none>\n", "a wide header sets its column's width; NULL is <none>");
	free(out);
	ctl_table_free(t);

	/* Cleaning: nothing from the server can break a row or reach the terminal raw. */
	char *c = ctl_clean("a\nb\tc\x1b[31md\x7f" "e");
	is_str(c, "a?b?c?[31md?e", "newline, tab, ESC and DEL become '?'");
	free(c);
	c = ctl_clean("\xc2\x9b" "x\xff\xfe" "y\xc3" "z");
	is_str(c, "?x??y?z", "a C1 control (U+009B) and bytes that are not UTF-8 become '?'");
	free(c);
	c = ctl_clean("\xc0\xaf" "\xed\xa0\x80" "ok");
	is_str(c, "?????ok", "an overlong form and a surrogate are not UTF-8 either (a '?' a byte)");
	free(c);
	c = ctl_clean("h\xc3\xa9llo \xe8\x8a\x82\xe7\x82\xb9");
	is_str(c, "h\xc3\xa9llo \xe8\x8a\x82\xe7\x82\xb9", "valid UTF-8 stays as it is");
	free(c);

	/* Widths a terminal shows. */
	is_int(ctl_width("abc"), 3, "ASCII: one column each");
	is_int(ctl_width("h\xc3\xa9"), 2, "é: one column");
	is_int(ctl_width("\xe8\x8a\x82\xe7\x82\xb9"), 4, "节点 (CJK): two columns each");
	is_int(ctl_width("e\xcc\x81"), 1, "e + a combining accent: one column");

	static const char *const h3[] = {"NAME", "X"};
	t = ctl_table_new(2, h3);
	ctl_table_cell(t, "\xe8\x8a\x82\xe7\x82\xb9-1"); /* 节点-1: 6 columns */
	ctl_table_cell(t, "a");
	ctl_table_cell(t, "node");
	ctl_table_cell(t, "b");
	out = printed(t, true);
	is_str(out,
	       "NAME     X\n"
	       "\xe8\x8a\x82\xe7\x82\xb9-1   a\n"
	       "node     b\n",
	       "wide characters are aligned by the columns they take, not their bytes");
	free(out);
	ctl_table_free(t);

	/* Streamed rows (events --watch): fixed widths, a longer cell pushes the rest. */
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	size_t w[] = {4, 3, 0};
	const char *r1[] = {"SEQ", "KIND", "X"}, *r2[] = {"12345", "", "y\nz"};
	ctl_table_stream_row(f, w, r1, 3);
	ctl_table_stream_row(f, w, r2, 3);
	fclose(f);
	is_str(buf, "SEQ    KIND   X\n12345   <none>   y?z\n", "streamed rows: padded to the widths, cleaned, <none> for empty");
	free(buf);

	/* Ages, as kubectl shows them. */
	is_str(age(-5), "0s", "age: clock skew shows 0s");
	is_str(age(45), "45s", "age 45 s");
	is_str(age(119), "119s", "age 119 s");
	is_str(age(192), "3m12s", "age 3 min 12 s");
	is_str(age(1500), "25m", "age 25 min");
	is_str(age(7500), "125m", "age 2 h 5 min: 125m (minutes up to 3 h)");
	is_str(age(14700), "4h5m", "age 4 h 5 min");
	is_str(age(30 * 3600), "30h", "age 30 h");
	is_str(age(3 * 86400 + 4 * 3600), "3d4h", "age 3 d 4 h");
	is_str(age(90 * 86400), "90d", "age 90 d");
	is_str(age(3 * 365 * 86400LL), "3y", "age 3 y");

	time_t tt;
	ok(ctl_parse_time("2026-01-31T12:00:00.000Z", &tt) == 0 && tt == 1769860800, "RFC 3339 with milliseconds and Z");
	ok(ctl_parse_time("2026-01-31T12:00:00+00:00", &tt) == 0 && tt == 1769860800, "... and with +00:00");
	ok(ctl_parse_time("2026-01-31T12:00:00+02:00", &tt) != 0 && ctl_parse_time("yesterday", &tt) != 0 &&
		   ctl_parse_time("2026-13-01T00:00:00Z", &tt) != 0,
	   "other offsets, words and month 13 are refused");
	char b[32];
	ctl_fmt_age("2026-01-31T12:00:00.000Z", 1769860800 + 61, b, sizeof(b));
	is_str(b, "61s", "the age of a time");
	ctl_fmt_age("garbage", 0, b, sizeof(b));
	is_str(b, "?", "... '?' when it does not parse");

	/* Sizes and durations. */
	ctl_fmt_mem(8192, b, sizeof(b));
	is_str(b, "8Gi", "8192 MiB: 8Gi");
	ctl_fmt_mem(384, b, sizeof(b));
	is_str(b, "384Mi", "384 MiB: 384Mi");
	ctl_fmt_ms(5000, b, sizeof(b));
	is_str(b, "5s", "5000 ms: 5s");
	ctl_fmt_ms(1500, b, sizeof(b));
	is_str(b, "1.5s", "1500 ms: 1.5s");

	/* JSON values as cells. */
	is_str(cell("{\"zone\":\"a\",\"gpu\":\"true\"}"), "gpu=true,zone=a", "a map: k=v in key order");
	is_str(cell("[\"wasmcloud:keyvalue\",\"wasmcloud:http\"]"), "wasmcloud:keyvalue,wasmcloud:http", "a list: a,b");
	is_str(cell("null"), "", "null: empty (the table shows <none>)");
	is_str(cell("[{\"a\":1}]"), "{\"a\":1}", "anything deeper: compact JSON");
	return tap_done();
}
