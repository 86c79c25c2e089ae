/* report_svg — timeline.svg of a chaos run's report (report.h, docs/chaos.md
 * "Report"): drawn from the report object alone. Self-contained SVG 1.1: no
 * scripts, no external fonts, images or links; tooltips are <title> elements;
 * every text from the run is escaped. */
#include "report.h"

#include <stdarg.h>
#include <string.h>

typedef long long ms_t;

#define W 1200.0
#define X0 150.0 /* lane labels left of it */
#define X1 1180.0
#define MAXROWS 4 /* rows of the agent-fault lane before bands overlap */

static const char *const replica_colour[] = {"#4e79a7", "#b07aa1", "#76b7b2", "#9c755f", "#ff9da7"};
#define N_RCOL (sizeof(replica_colour) / sizeof(*replica_colour))
#define C_DOWN "#2b2b2b"
#define C_NATS "#8cd17d"
#define C_PG "#a0cbe8"
#define C_AGENT "#edc948"
#define C_DEATH "#555555"
#define C_FAILOVER "#2ca02c"
#define C_OK "#59a14f"
#define C_FAIL "#f28e2b"
#define C_INFO "#bab0ac"
#define C_VIOLATION "#d62728"

struct svg {
	FILE *f;
	json_t *rep;
	ms_t len; /* run length, ms (at least 1) */
	int n;	  /* replicas */
};

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static ms_t gi(json_t *o, const char *k, ms_t def)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (ms_t)json_integer_value(v) : def;
}

static int is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static double X(const struct svg *s, ms_t t)
{
	if (t < 0)
		t = 0;
	if (t > s->len)
		t = s->len;
	return X0 + (X1 - X0) * (double)t / (double)s->len;
}

/* Writes s as XML character data or attribute value: & < > " ' escaped, control
 * characters and the non-characters U+FFFE/U+FFFF (not allowed in XML 1.0) as a
 * space; at most max characters, cut on a UTF-8 boundary, "…" when cut. */
static void esc(FILE *f, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = 0;
	while (*p) {
		if (n == max) {
			fputs("\xe2\x80\xa6", f);
			return;
		}
		unsigned char c = *p;
		size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		for (size_t i = 1; i < len; i++)
			if (!p[i]) /* truncated sequence (not from jansson): stop */
				return;
		if (len == 3 && c == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))
			fputc(' ', f);
		else if (c == '&')
			fputs("&amp;", f);
		else if (c == '<')
			fputs("&lt;", f);
		else if (c == '>')
			fputs("&gt;", f);
		else if (c == '"')
			fputs("&quot;", f);
		else if (c == '\'')
			fputs("&apos;", f);
		else if (c < 0x20 || c == 0x7f)
			fputc(' ', f);
		else
			fwrite(p, 1, len, f);
		p += len;
		n++;
	}
}

/* printf into a buffer, for tooltips and labels that are then escaped. */
__attribute__((format(printf, 3, 4))) static const char *fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
	return buf;
}

static void secs(char *buf, size_t len, ms_t t)
{
	snprintf(buf, len, "%.1f s", (double)t / 1000.0);
}

/* A band [a, b) on a lane, its tooltip and (when it fits) its label. */
static void band(struct svg *s, ms_t a, ms_t b, double y, double h, const char *fill, const char *extra,
		 const char *label, const char *label_colour, const char *tip)
{
	double x = X(s, a), w = X(s, b) - x;
	if (w < 1.5)
		w = 1.5; /* a blip still shows */
	fprintf(s->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"%s><title>", x, y, w, h,
		fill, extra ? extra : "");
	esc(s->f, tip, 400);
	fputs("</title></rect>\n", s->f);
	if (label && (double)strlen(label) * 6.2 + 6 <= w) {
		/* a halo where the label sits on a hatch (ignored where paint-order is not known) */
		fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\"%s>", x + 3, y + h / 2 + 3.5,
			label_colour,
			strncmp(fill, "url(", 4) == 0 ? " stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"" : "");
		esc(s->f, label, 60);
		fputs("</text>\n", s->f);
	}
}

static void lane_start(struct svg *s, const char *id, const char *cls, double y, double h, const char *label,
		       int shade)
{
	fprintf(s->f, "<g id=\"%s\" class=\"lane %s\">\n", id, cls);
	if (shade)
		fprintf(s->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" fill-opacity=\"0.045\"/>\n", X0, y,
			X1 - X0, h);
	fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">", X0 - 8,
		y + h / 2 + 4);
	esc(s->f, label, 40);
	fputs("</text>\n", s->f);
}

/* "2 | 1 3" for [["2"],["1","3"]]. */
static void groups_text(char *buf, size_t len, json_t *groups)
{
	size_t n = 0, i, j;
	json_t *g, *r;
	buf[0] = '\0';
	json_array_foreach(groups, i, g)
	{
		json_array_foreach(g, j, r)
		{
			if (n + 8 < len)
				n += (size_t)snprintf(buf + n, len - n, "%s%s", j ? " " : (i ? " | " : ""),
						      json_string_value(r) ? json_string_value(r) : "?");
		}
	}
}

static int in_array(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (is(json_string_value(v), s)) return 1;
	return 0;
}

/* Size of the largest group holding replica r (0: in none). */
static size_t group_of(json_t *groups, const char *r)
{
	size_t best = 0, i;
	json_t *g;
	json_array_foreach(groups, i, g) if (in_array(g, r) && json_array_size(g) > best) best = json_array_size(g);
	return best;
}

static void replica_lane(struct svg *s, int r, double y, double h)
{
	char id[32], label[64], tip[512], a[32], b[32], rs[16];
	snprintf(rs, sizeof(rs), "%d", r);
	snprintf(id, sizeof(id), "lane-r%d", r);
	snprintf(label, sizeof(label), "replica %d", r);
	lane_start(s, id, "replica", y, h, label, 1);
	const char *colour = replica_colour[(size_t)(r - 1) % N_RCOL];
	/* leader: from each leader line naming r to the next leader line */
	json_t *lines = json_object_get(json_object_get(s->rep, "leaders"), "lines");
	size_t i;
	json_t *l;
	json_array_foreach(lines, i, l)
	{
		if (gi(l, "replica", -1) != r)
			continue;
		ms_t t0 = gi(l, "t_ms", 0), t1 = gi(json_array_get(lines, i + 1), "t_ms", s->len);
		secs(a, sizeof(a), t0);
		secs(b, sizeof(b), t1);
		band(s, t0, t1, y + 3, h - 6, colour, NULL, "leader", "#fff",
		     fmt(tip, sizeof(tip), "replica %d leader (term %lld) from %s to %s", r, gi(l, "term", -1), a, b));
	}
	json_t *f;
	json_array_foreach(json_object_get(json_object_get(s->rep, "faults"), "list"), i, f)
	{
		ms_t t0 = gi(f, "start_ms", 0), t1 = gi(f, "end_ms", s->len);
		secs(a, sizeof(a), t0);
		secs(b, sizeof(b), t1);
		const char *kind = jstr(f, "f");
		json_t *groups = json_object_get(f, "groups");
		if (is(kind, "partition")) {
			const char *bridge = jstr(f, "bridge");
			const char *what = NULL;
			if (bridge)
				what = is(bridge, rs) ? NULL : "partial";
			else if (json_array_size(groups))
				what = group_of(groups, rs) * 2 <= (size_t)s->n ? "cut off" : NULL;
			else
				what = in_array(json_object_get(f, "targets"), rs) ? "cut off" : NULL;
			if (!what)
				continue;
			char g[128];
			groups_text(g, sizeof(g), groups);
			band(s, t0, t1, y, h, is(what, "partial") ? "url(#hatch-light)" : "url(#hatch)",
			     " stroke=\"#555\" stroke-width=\"0.5\"", what, "#000",
			     fmt(tip, sizeof(tip), "partition #%lld (%s): replica %d %s%s%s%s, %s to %s", gi(f, "id", -1),
				 jstr(f, "kind") ? jstr(f, "kind") : "?", r, what, g[0] ? "; groups " : "", g,
				 bridge ? " (bridge)" : "", a, b));
		} else if (is(kind, "kill_replica") && in_array(json_object_get(f, "targets"), rs)) {
			band(s, t0, t1, y + 2, h - 4, C_DOWN, NULL, "down", "#fff",
			     fmt(tip, sizeof(tip), "replica %d killed (kill -9, fault #%lld) from %s, restarted at %s", r,
				 gi(f, "id", -1), a, b));
		}
	}
	fputs("</g>\n", s->f);
}

static const char *first_target(json_t *f)
{
	const char *t = json_string_value(json_array_get(json_object_get(f, "targets"), 0));
	return t ? t : "?";
}

static void infra_lane(struct svg *s, const char *id, const char *label, const char *kind, const char *colour,
		       double y, double h)
{
	char tip[512], a[32], b[32], what[96];
	lane_start(s, id, "infra", y, h, label, 1);
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(json_object_get(s->rep, "faults"), "list"), i, f)
	{
		if (!is(jstr(f, "f"), kind))
			continue;
		ms_t t0 = gi(f, "start_ms", 0), t1 = gi(f, "end_ms", s->len);
		secs(a, sizeof(a), t0);
		secs(b, sizeof(b), t1);
		if (is(kind, "pg"))
			fmt(what, sizeof(what), "%s %s", first_target(f),
			    json_is_true(json_object_get(f, "kill")) || (jstr(f, "detail") && strstr(jstr(f, "detail"), "kill -9"))
				    ? "kill -9"
				    : "restart");
		else
			fmt(what, sizeof(what), "restart");
		band(s, t0, t1, y + 2, h - 4, colour, NULL, what, "#000",
		     fmt(tip, sizeof(tip), "%s %s (fault #%lld): down from %s, up at %s", is(kind, "pg") ? "PostgreSQL" : "nats-server",
			 what, gi(f, "id", -1), a, b));
	}
	fputs("</g>\n", s->f);
}

static int agent_fault(const char *kind)
{
	return !is(kind, "kill_replica") && !is(kind, "partition") && !is(kind, "pg") && !is(kind, "nats_restart");
}

/* Rows of the agent-fault lane: greedy, each band in the first row free at its start. */
static int agent_rows(struct svg *s, int *row_of, size_t nfaults)
{
	ms_t end[MAXROWS] = {0};
	int rows = 1;
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(json_object_get(s->rep, "faults"), "list"), i, f)
	{
		if (i >= nfaults)
			break;
		row_of[i] = -1;
		if (!agent_fault(jstr(f, "f")))
			continue;
		int r = 0;
		while (r < MAXROWS - 1 && end[r] > gi(f, "start_ms", 0))
			r++;
		row_of[i] = r;
		end[r] = gi(f, "end_ms", s->len);
		if (r + 1 > rows)
			rows = r + 1;
	}
	return rows;
}

static void agent_lane(struct svg *s, const int *row_of, int rows, double y, double rowh)
{
	char tip[512], a[32], b[32], label[96], list[200];
	lane_start(s, "lane-agents", "agents", y, rowh * rows, "agent faults", 1);
	size_t i, j;
	json_t *f, *t;
	json_array_foreach(json_object_get(json_object_get(s->rep, "faults"), "list"), i, f)
	{
		if (row_of[i] < 0)
			continue;
		json_t *targets = json_object_get(f, "targets");
		size_t nt = json_array_size(targets), n = 0;
		list[0] = '\0';
		json_array_foreach(targets, j, t)
		{
			if (j == 6) {
				snprintf(list + n, sizeof(list) - n, ", ...");
				break;
			}
			if (n + 40 < sizeof(list))
				n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s", j ? ", " : "",
						      json_string_value(t) ? json_string_value(t) : "?");
		}
		ms_t t0 = gi(f, "start_ms", 0), t1 = gi(f, "end_ms", s->len);
		secs(a, sizeof(a), t0);
		secs(b, sizeof(b), t1);
		fmt(label, sizeof(label), "%s \xc3\x97%zu", jstr(f, "f"), nt);
		band(s, t0, t1, y + row_of[i] * rowh + 2, rowh - 4, C_AGENT, " stroke=\"#b8972a\" stroke-width=\"0.5\"", label,
		     "#000",
		     fmt(tip, sizeof(tip), "%s #%lld: %zu node%s (%s) from %s to %s%s", jstr(f, "f"), gi(f, "id", -1), nt,
			 nt == 1 ? "" : "s", list, a, b, json_is_true(json_object_get(f, "ended")) ? "" : " (never ended)"));
	}
	fputs("</g>\n", s->f);
}

static void triangle(struct svg *s, double x, double y, const char *fill, const char *cls, const char *tip)
{
	fprintf(s->f, "<path class=\"%s\" d=\"M%.1f %.1fl-5 -8h10z\" fill=\"%s\"><title>", cls, x, y + 4, fill);
	esc(s->f, tip, 600);
	fputs("</title></path>\n", s->f);
}

static void diamond(struct svg *s, double x, double y, const char *fill, const char *cls, const char *tip)
{
	fprintf(s->f, "<path class=\"%s\" d=\"M%.1f %.1fl5 5l-5 5l-5 -5z\" fill=\"%s\"><title>", cls, x, y - 5, fill);
	esc(s->f, tip, 600);
	fputs("</title></path>\n", s->f);
}

static void deaths_lane(struct svg *s, double y, double h)
{
	char tip[512], a[32];
	lane_start(s, "lane-deaths", "deaths", y, h, "node deaths", 1);
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(json_object_get(s->rep, "detection"), "list"), i, d)
	{
		if (!json_is_integer(json_object_get(d, "unhealthy_ms")))
			continue;
		secs(a, sizeof(a), gi(d, "unhealthy_ms", 0));
		triangle(s, X(s, gi(d, "unhealthy_ms", 0)), y + h / 2, C_DEATH, "death",
			 fmt(tip, sizeof(tip), "%s unhealthy at %s: detected %lld ms after %s #%lld started", jstr(d, "node"), a,
			     gi(d, "detection_ms", 0), jstr(d, "f"), gi(d, "fault", -1)));
	}
	fputs("</g>\n", s->f);
}

static void failover_lane(struct svg *s, double y, double h)
{
	char tip[512], a[32];
	lane_start(s, "lane-failovers", "failovers", y, h, "failovers", 1);
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(json_object_get(s->rep, "failover"), "nodes"), i, d)
	{
		if (!json_is_integer(json_object_get(d, "last_ms")))
			continue;
		ms_t last = gi(d, "last_ms", 0);
		secs(a, sizeof(a), last);
		ms_t start = last;
		json_t *f;
		size_t j;
		json_array_foreach(json_object_get(json_object_get(s->rep, "faults"), "list"), j, f)
		{
			if (gi(f, "id", -2) == gi(d, "fault", -3))
				start = gi(f, "start_ms", last);
		}
		diamond(s, X(s, last), y + h / 2, C_FAILOVER, "failover",
			fmt(tip, sizeof(tip), "%s: %lld of %lld displaced instance%s running elsewhere by %s (%lld ms after the fault)",
			    jstr(d, "node"), gi(d, "moved", 0), gi(d, "displaced", 0), gi(d, "displaced", 0) == 1 ? "" : "s", a,
			    last - start));
	}
	fputs("</g>\n", s->f);
}

/* Completed operations per bin, stacked ok / fail / info, scaled to the busiest bin. */
static void workload_lane(struct svg *s, double y, double h)
{
	static const char *const what[] = {"ok", "fail", "info"};
	static const char *const colour[] = {C_OK, C_FAIL, C_INFO};
	lane_start(s, "lane-workload", "workload", y, h, "ops completed", 1);
	json_t *tl = json_object_get(json_object_get(s->rep, "workload"), "timeline");
	ms_t bin = gi(tl, "bin_ms", 1000);
	size_t nb = json_array_size(json_object_get(tl, "ok"));
	ms_t top = 0;
	for (size_t b = 0; b < nb; b++) {
		ms_t sum = 0;
		for (int k = 0; k < 3; k++)
			sum += (ms_t)json_integer_value(json_array_get(json_object_get(tl, what[k]), b));
		if (sum > top)
			top = sum;
	}
	for (size_t b = 0; b < nb && top > 0; b++) {
		ms_t c[3], sum = 0;
		for (int k = 0; k < 3; k++)
			sum += c[k] = (ms_t)json_integer_value(json_array_get(json_object_get(tl, what[k]), b));
		if (!sum)
			continue;
		ms_t t0 = (ms_t)b * bin, t1 = t0 + bin;
		double x = X(s, t0), w = X(s, t1) - x - 0.5, base = y + h - 1;
		if (w < 0.5)
			w = 0.5;
		fprintf(s->f, "<g><title>%.0f-%.0f s: %lld ok, %lld fail, %lld info</title>\n", (double)t0 / 1000.0,
			(double)t1 / 1000.0, c[0], c[1], c[2]);
		for (int k = 0; k < 3; k++) {
			if (!c[k])
				continue;
			double bh = (h - 4) * (double)c[k] / (double)top;
			base -= bh;
			fprintf(s->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, base, w,
				bh, colour[k]);
		}
		fputs("</g>\n", s->f);
	}
	fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" fill=\"#777\" text-anchor=\"end\">top: %lld per %.0f s</text>\n",
		X0 - 8, y + h / 2 + 15, top, (double)bin / 1000.0);
	fputs("</g>\n", s->f);
}

static void violation_lane(struct svg *s, double y, double h, double top, double bottom)
{
	char tip[700], key[128];
	lane_start(s, "lane-violations", "violations", y, h, "violations", 1);
	size_t i, j;
	json_t *v, *t;
	json_array_foreach(json_object_get(json_object_get(s->rep, "violations"), "list"), i, v)
	{
		json_t *k = json_object_get(v, "key");
		if (json_is_string(k))
			snprintf(key, sizeof(key), "%s", json_string_value(k));
		else if (json_is_integer(k))
			snprintf(key, sizeof(key), "%lld", (long long)json_integer_value(k));
		else
			key[0] = '\0';
		fmt(tip, sizeof(tip), "%s%s%s: %s", jstr(v, "check"), key[0] ? " " : "", key,
		    jstr(v, "message") ? jstr(v, "message") : "");
		if (json_is_integer(json_object_get(v, "t_ms")))
			fprintf(s->f,
				"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-opacity=\"0.35\" "
				"stroke-dasharray=\"3 3\"/>\n",
				X(s, gi(v, "t_ms", 0)), top, X(s, gi(v, "t_ms", 0)), bottom, C_VIOLATION);
		if (!json_array_size(json_object_get(v, "evidence_t")))
			triangle(s, X1 - 4, y + h / 2, C_VIOLATION, "violation", tip);
		json_array_foreach(json_object_get(v, "evidence_t"), j, t)
			triangle(s, X(s, (ms_t)json_integer_value(t)), y + h / 2, C_VIOLATION, "violation", tip);
	}
	fputs("</g>\n", s->f);
}

static void axis(struct svg *s, double top, double y)
{
	static const ms_t steps[] = {1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200};
	ms_t step = steps[sizeof(steps) / sizeof(*steps) - 1];
	for (size_t i = 0; i < sizeof(steps) / sizeof(*steps); i++)
		if (s->len / 1000 / steps[i] <= 12) {
			step = steps[i];
			break;
		}
	fprintf(s->f, "<g id=\"axis\" font-size=\"11\" fill=\"#333\" text-anchor=\"middle\">\n");
	fprintf(s->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", X0, y, X1, y);
	for (ms_t sec = 0; sec * 1000 <= s->len; sec += step) {
		double x = X(s, sec * 1000);
		fprintf(s->f,
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
			"<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
			"<text x=\"%.1f\" y=\"%.1f\">%llds</text>\n",
			x, top, x, y, x, y, x, y + 5, x, y + 17, sec);
	}
	fprintf(s->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">time since the start</text>\n</g>\n", X0 - 16,
		y + 17);
}

/* One swatch and its label at (*x, *y), wrapping to a new row at the right edge;
 * draw 0 only lays out (the picture's height is known before it is drawn). */
static void legend_item(struct svg *s, int draw, double *x, double *y, const char *swatch, const char *label)
{
	double w = 26 + (double)strlen(label) * 6.2;
	if (*x + w > X1 && *x > 20) {
		*x = 20;
		*y += 20;
	}
	if (draw) {
		fprintf(s->f, "<g transform=\"translate(%.1f,%.1f)\">%s<text x=\"18\" y=\"10\">", *x, *y, swatch);
		esc(s->f, label, 40);
		fputs("</text></g>\n", s->f);
	}
	*x += w;
}

/* Returns the y below the legend. */
static double legend(struct svg *s, double y, int draw)
{
	char sw[256], label[32];
	double x = 20;
	if (draw)
		fputs("<g id=\"legend\" font-size=\"11\" fill=\"#333\">\n", s->f);
	for (int r = 1; r <= s->n; r++) {
		snprintf(sw, sizeof(sw), "<rect width=\"14\" height=\"12\" fill=\"%s\"/>", replica_colour[(size_t)(r - 1) % N_RCOL]);
		snprintf(label, sizeof(label), "replica %d leader", r);
		legend_item(s, draw, &x, &y, sw, label);
	}
	static const char *const items[][2] = {
		{"<rect width=\"14\" height=\"12\" fill=\"" C_DOWN "\"/>", "replica down (kill -9)"},
		{"<rect width=\"14\" height=\"12\" fill=\"url(#hatch)\" stroke=\"#555\"/>", "cut off (partition)"},
		{"<rect width=\"14\" height=\"12\" fill=\"url(#hatch-light)\" stroke=\"#555\"/>", "partial (bridge partition)"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_NATS "\"/>", "nats-server down"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_PG "\"/>", "PostgreSQL down"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_AGENT "\"/>", "agent fault (kind \xc3\x97 nodes)"},
		{"<path d=\"M7 10l-5 -8h10z\" fill=\"" C_DEATH "\"/>", "node unhealthy"},
		{"<path d=\"M7 1l5 5l-5 5l-5 -5z\" fill=\"" C_FAILOVER "\"/>", "failover done (last instance)"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_OK "\"/>", "ops ok"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_FAIL "\"/>", "ops fail"},
		{"<rect width=\"14\" height=\"12\" fill=\"" C_INFO "\"/>", "ops info (unknown)"},
		{"<path d=\"M7 10l-5 -8h10z\" fill=\"" C_VIOLATION "\"/>", "violation (at its evidence)"},
		{"<rect width=\"14\" height=\"12\" fill=\"#e8f0fb\"/>", "settle period"},
	};
	for (size_t i = 0; i < sizeof(items) / sizeof(*items); i++)
		legend_item(s, draw, &x, &y, items[i][0], items[i][1]);
	if (draw)
		fputs("</g>\n", s->f);
	return y + 20;
}

int report_svg(FILE *f, json_t *rep)
{
	struct svg s = {f, rep, gi(json_object_get(rep, "run"), "length_ms", 0),
			(int)gi(json_object_get(rep, "run"), "replicas", 3)};
	if (s.len < 1000)
		s.len = 1000;
	if (s.n < 1 || s.n > 64)
		s.n = s.n < 1 ? 1 : 64;
	size_t nf = json_array_size(json_object_get(json_object_get(rep, "faults"), "list"));
	int *rows = calloc(nf + 1, sizeof(*rows));
	if (!rows)
		return -1;
	rows[0] = agent_rows(&s, rows + 1, nf);
	double lane = 24, gap = 4, rowh = 18, y = 76;
	double agents_h = rowh * rows[0];
	/* lanes: replicas, nats, pg, agent faults, deaths, failovers, workload, violations */
	double bottom = y + s.n * (lane + gap) + 2 * (22 + gap) + agents_h + gap + 2 * (22 + gap) + 44 + gap + 22 + gap;
	double height = legend(&s, bottom + 34, 0) + 4;

	ms_t nv = gi(json_object_get(rep, "violations"), "total", 0);
	char buf[256], a[32];
	fprintf(f,
		"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%.0f\" height=\"%.0f\" "
		"viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n",
		W, height, W, height);
	fputs("<title>", f);
	fputs("lattice chaos run: ", f);
	esc(f, jstr(rep, "scenario"), 80);
	fputs("</title>\n<defs>\n"
	      "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
	      "<rect width=\"6\" height=\"6\" fill=\"#ffffff\" fill-opacity=\"0.55\"/>"
	      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#444\" stroke-width=\"2.5\"/></pattern>\n"
	      "<pattern id=\"hatch-light\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
	      "<rect width=\"6\" height=\"6\" fill=\"#ffffff\" fill-opacity=\"0.4\"/>"
	      "<line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#888\" stroke-width=\"1\"/></pattern>\n"
	      "</defs>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n",
	      f);
	fprintf(f, "<text x=\"%.1f\" y=\"30\" font-size=\"18\" font-weight=\"bold\" fill=\"#222\">lattice chaos run: ", X0);
	esc(f, jstr(rep, "scenario"), 60);
	fprintf(f, " <tspan fill=\"%s\">", nv ? C_VIOLATION : C_FAILOVER);
	if (nv)
		fprintf(f, "\xe2\x80\x94 %lld violation%s</tspan></text>\n", nv, nv == 1 ? "" : "s");
	else
		fputs("\xe2\x80\x94 no violations</tspan></text>\n", f);
	json_t *det = json_object_get(rep, "detection"), *fo = json_object_get(rep, "failover");
	secs(a, sizeof(a), s.len);
	fprintf(f, "<text x=\"%.1f\" y=\"52\" font-size=\"12\" fill=\"#555\">", X0);
	esc(f,
	    fmt(buf, sizeof(buf),
		"%s, %lld agents, %lld replicas, %lld faults; detection p50 %lld ms, failover max %lld ms (%lld displaced); "
		"%lld leader changes",
		a, gi(json_object_get(rep, "run"), "agents", 0), (ms_t)s.n, gi(json_object_get(rep, "faults"), "total", 0),
		gi(det, "p50_ms", 0), gi(fo, "max_ms", 0), gi(fo, "displaced", 0),
		gi(json_object_get(rep, "leaders"), "changes", 0)),
	    300);
	fputs("</text>\n", f);

	/* The settle period (markers), lightly, behind every lane. */
	json_t *mk = json_object_get(json_object_get(rep, "run"), "markers");
	double top = y;
	ms_t settle_from = gi(mk, "faults_end", -1) > gi(mk, "workload_end", -1) ? gi(mk, "faults_end", -1)
										 : gi(mk, "workload_end", -1);
	if (settle_from >= 0 && gi(mk, "settled", -1) > settle_from) {
		double x = X(&s, settle_from);
		fprintf(f,
			"<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#e8f0fb\"><title>settle period: %.1f "
			"s to %.1f s</title></rect>\n"
			"<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#557\">settle</text>\n",
			x, top - 8, X(&s, gi(mk, "settled", 0)) - x, bottom - top + 8, (double)settle_from / 1000.0,
			(double)gi(mk, "settled", 0) / 1000.0, x + 3, top - 1);
	}
	for (int r = 1; r <= s.n; r++, y += lane + gap)
		replica_lane(&s, r, y, lane);
	infra_lane(&s, "lane-nats", "nats-server", "nats_restart", C_NATS, y, 22);
	y += 22 + gap;
	infra_lane(&s, "lane-pg", "PostgreSQL", "pg", C_PG, y, 22);
	y += 22 + gap;
	agent_lane(&s, rows + 1, rows[0], y, rowh);
	y += agents_h + gap;
	deaths_lane(&s, y, 22);
	y += 22 + gap;
	failover_lane(&s, y, 22);
	y += 22 + gap;
	workload_lane(&s, y, 44);
	y += 44 + gap;
	violation_lane(&s, y, 22, top, y + 22);
	y += 22 + gap;
	free(rows);
	axis(&s, top, y + 2);
	legend(&s, y + 34, 1);
	fputs("</svg>\n", f);
	return ferror(f) ? -1 : 0;
}
