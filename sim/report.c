/* report — see report.h; the figures are defined in docs/chaos.md "Report".
 * report_build computes every figure into one JSON object (report.json); the
 * summary and the picture (report_svg.c) are drawn from that object alone, so
 * what a person sees is always what report.json says. */
#include "report.h"

#include "hist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef long long ms_t;

/* ---- small helpers ---------------------------------------------------------- */

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static int jint(json_t *o, const char *k, ms_t *out)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return 0;
	*out = (ms_t)json_integer_value(v);
	return 1;
}

static ms_t jint_or(json_t *o, const char *k, ms_t def)
{
	ms_t v;
	return jint(o, k, &v) ? v : def;
}

static int is(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* A growing array of ms values. */
struct vec {
	ms_t *v;
	size_t n, cap;
};

static void vec_push(struct vec *v, ms_t x)
{
	if (v->n == v->cap) {
		size_t nc = v->cap ? v->cap * 2 : 64;
		ms_t *nv = realloc(v->v, nc * sizeof(*nv));
		if (!nv)
			abort(); /* a report of a few MB: no way to go on without memory */
		v->v = nv;
		v->cap = nc;
	}
	v->v[v->n++] = x;
}

static int cmp_ms(const void *a, const void *b)
{
	ms_t x = *(const ms_t *)a, y = *(const ms_t *)b;
	return x < y ? -1 : x > y;
}

/* Nearest rank: the value at rank ceil(p/100 * n) of the sorted values (1-based),
 * so every percentile is a value that was measured. v is sorted. */
static ms_t pct(const struct vec *v, int p)
{
	size_t rank = ((size_t)p * v->n + 99) / 100;
	return v->v[rank ? rank - 1 : 0];
}

/* Sets p50_ms, p99_ms, max_ms (null when there is no value) on o. Sorts v. */
static void set_stats(json_t *o, struct vec *v)
{
	if (v->n)
		qsort(v->v, v->n, sizeof(*v->v), cmp_ms);
	json_object_set_new(o, "p50_ms", v->n ? json_integer(pct(v, 50)) : json_null());
	json_object_set_new(o, "p99_ms", v->n ? json_integer(pct(v, 99)) : json_null());
	json_object_set_new(o, "max_ms", v->n ? json_integer(v->v[v->n - 1]) : json_null());
}

static void count_in(json_t *counts, const char *key)
{
	json_t *c = json_object_get(counts, key);
	json_object_set_new(counts, key, json_integer(c ? json_integer_value(c) + 1 : 1));
}

/* Appends line (borrowed) to index[key] (an array made on first use). */
static void index_add(json_t *index, const char *key, json_t *line)
{
	json_t *a = json_object_get(index, key);
	if (!a) {
		a = json_array();
		json_object_set_new(index, key, a);
	}
	json_array_append(a, line);
}

static void inst_key(char *buf, size_t len, const char *actor, ms_t inst)
{
	snprintf(buf, len, "%s\n%lld", actor, inst);
}

static int array_has_str(json_t *arr, const char *s)
{
	size_t i;
	json_t *v;
	json_array_foreach(arr, i, v) if (is(json_string_value(v), s)) return 1;
	return 0;
}

/* ---- faults ----------------------------------------------------------------- */

/* Agent faults whose nodes stop heartbeating, so the leader must find them
 * unhealthy and move their actors (flap_agents is left out: a node that comes
 * back before the heartbeat timeout is not supposed to be detected; slow_acks
 * keeps heartbeating). */
static int detect_kind(const char *f)
{
	return is(f, "kill_agents") || is(f, "crash_agents") || is(f, "cut_agents");
}

struct fault {
	json_t *line; /* the start line (borrowed from the history) */
	const char *f;
	ms_t id, start, end;
	int ended;
};

/* The faults of the history, in start order; *n set. Ends are paired by id; a
 * fault without an end lasts to run_end. Skipped faults are counted in skipped. */
static struct fault *collect_faults(json_t *history, ms_t run_end, size_t *n, json_t *skipped)
{
	struct fault *v = calloc(json_array_size(history) + 1, sizeof(*v));
	if (!v)
		abort();
	size_t i, k = 0;
	json_t *l;
	json_array_foreach(history, i, l)
	{
		if (!is(jstr(l, "type"), "nemesis"))
			continue;
		const char *phase = jstr(l, "phase");
		ms_t id = jint_or(l, "id", -1);
		if (is(phase, "start")) {
			v[k] = (struct fault){l, jstr(l, "f") ? jstr(l, "f") : "?", id, jint_or(l, "t", 0), run_end, 0};
			k++;
		} else if (is(phase, "end") && id >= 0) {
			for (size_t j = k; j-- > 0;)
				if (v[j].id == id && !v[j].ended) {
					v[j].end = jint_or(l, "t", run_end);
					v[j].ended = 1;
					break;
				}
		} else if (is(phase, "skipped")) {
			json_t *s = json_object();
			json_object_set_new(s, "t_ms", json_integer(jint_or(l, "t", 0)));
			json_object_set_new(s, "f", json_string(jstr(l, "f") ? jstr(l, "f") : "?"));
			if (jstr(l, "reason"))
				json_object_set_new(s, "reason", json_string(jstr(l, "reason")));
			else if (jstr(l, "detail"))
				json_object_set_new(s, "reason", json_string(jstr(l, "detail")));
			json_array_append_new(skipped, s);
		}
	}
	*n = k;
	return v;
}

static json_t *fault_json(const struct fault *f)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(f->id));
	json_object_set_new(o, "f", json_string(f->f));
	json_object_set_new(o, "start_ms", json_integer(f->start));
	json_object_set_new(o, "end_ms", json_integer(f->end));
	json_object_set_new(o, "ended", json_boolean(f->ended));
	json_t *targets = json_object_get(f->line, "targets");
	json_object_set_new(o, "targets", json_is_array(targets) ? json_deep_copy(targets) : json_array());
	const char *keys[] = {"groups", "bridge", "kind", "which", "kill", "disk", "detail"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		json_t *v = json_object_get(f->line, keys[i]);
		if (v)
			json_object_set_new(o, keys[i], json_deep_copy(v));
	}
	return o;
}

/* ---- the report ------------------------------------------------------------- */

struct idx {
	json_t *status;	 /* node -> observe node_status lines */
	json_t *applied; /* node -> agent applied actor_start/actor_stop lines */
	json_t *starts;	 /* "actor\ninstance" -> applied actor_start lines with status ok */
	json_t *shrinks; /* actor -> invokes of delete and scale (they may remove an instance) */
};

static void build_index(json_t *history, struct idx *x)
{
	x->status = json_object();
	x->applied = json_object();
	x->starts = json_object();
	x->shrinks = json_object();
	size_t i;
	json_t *l;
	char key[512];
	json_array_foreach(history, i, l)
	{
		const char *type = jstr(l, "type"), *f = jstr(l, "f"), *node = jstr(l, "node");
		if (is(type, "invoke") && (is(f, "delete") || is(f, "scale")) && jstr(l, "key"))
			index_add(x->shrinks, jstr(l, "key"), l);
		if (!node)
			continue;
		if (is(type, "observe") && is(f, "node_status") && jstr(l, "status"))
			index_add(x->status, node, l);
		if (!is(type, "agent") || !is(f, "applied"))
			continue;
		const char *kind = jstr(l, "kind"), *actor = jstr(l, "actor");
		if (!actor || !(is(kind, "actor_start") || is(kind, "actor_stop")))
			continue;
		index_add(x->applied, node, l);
		if (is(kind, "actor_start") && is(jstr(l, "status"), "ok")) {
			inst_key(key, sizeof(key), actor, jint_or(l, "instance", 0));
			index_add(x->starts, key, l);
		}
	}
}

static void free_index(struct idx *x)
{
	json_decref(x->status);
	json_decref(x->applied);
	json_decref(x->starts);
	json_decref(x->shrinks);
}

/* Whether the workload asked to delete the actor, or to scale it to no more
 * than inst replicas, between from and to (to < 0: any time after from): its
 * instance may be gone on purpose, not displaced. */
static int removed_by_workload(struct idx *x, const char *actor, ms_t inst, ms_t from, ms_t to)
{
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(x->shrinks, actor), i, l)
	{
		ms_t t = jint_or(l, "t", 0);
		if (t < from || (to >= 0 && t >= to))
			continue;
		if (is(jstr(l, "f"), "delete"))
			return 1;
		json_t *r = json_object_get(json_object_get(l, "value"), "replicas");
		if (json_is_integer(r) && json_integer_value(r) <= inst)
			return 1;
	}
	return 0;
}

/* The first replica of final.json that is alive and has a commands table: the
 * one whose tables the report counts (live replicas are identical, or the
 * checker says otherwise). */
static json_t *ref_replica(json_t *final)
{
	size_t i;
	json_t *r;
	json_array_foreach(json_object_get(final, "replicas"), i, r)
	{
		if (json_is_true(json_object_get(r, "alive")) &&
		    json_is_array(json_object_get(json_object_get(r, "tables"), "commands")))
			return r;
	}
	return NULL;
}

/* Detection of node N for fault k: the first node_status "unhealthy" of N at or
 * after the start, before the next fault that targets N starts. */
static json_t *detect_one(const struct fault *fv, size_t nf, size_t k, const char *node, struct idx *x, struct vec *d)
{
	const struct fault *F = &fv[k];
	ms_t limit = -1;
	for (size_t j = k + 1; j < nf && limit < 0; j++)
		if (fv[j].start > F->start && array_has_str(json_object_get(fv[j].line, "targets"), node))
			limit = fv[j].start;
	json_t *o = json_object();
	json_object_set_new(o, "node", json_string(node));
	json_object_set_new(o, "fault", json_integer(F->id));
	json_object_set_new(o, "f", json_string(F->f));
	json_object_set_new(o, "start_ms", json_integer(F->start));
	const char *before = NULL;
	ms_t found = -1;
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(x->status, node), i, l)
	{
		ms_t t = jint_or(l, "t", 0);
		if (t < F->start) {
			before = jstr(l, "status");
			continue;
		}
		if (limit >= 0 && t >= limit)
			break;
		if (is(jstr(l, "status"), "unhealthy")) {
			found = t;
			break;
		}
	}
	if (is(before, "unhealthy")) {
		/* Already unhealthy (an earlier fault): nothing to detect. */
		json_object_set_new(o, "already_unhealthy", json_true());
		found = -1;
	}
	json_object_set_new(o, "unhealthy_ms", found >= 0 ? json_integer(found) : json_null());
	json_object_set_new(o, "detection_ms", found >= 0 ? json_integer(found - F->start) : json_null());
	if (found >= 0)
		vec_push(d, found - F->start);
	return o;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The instances running on node at time t: the last actor_start/actor_stop the
 * node applied (status ok) at or before t, per instance; a start = running.
 * Returns an object key -> [actor, instance], or NULL when the node applied
 * nothing by then (the caller falls back on final.json). */
static json_t *running_at(struct idx *x, const char *node, ms_t t)
{
	json_t *run = json_object();
	int any = 0;
	size_t i;
	json_t *l;
	char key[512];
	json_array_foreach(json_object_get(x->applied, node), i, l)
	{
		if (jint_or(l, "t", 0) > t)
			break;
		any = 1;
		if (!is(jstr(l, "status"), "ok"))
			continue;
		const char *actor = jstr(l, "actor");
		ms_t inst = jint_or(l, "instance", 0);
		inst_key(key, sizeof(key), actor, inst);
		if (is(jstr(l, "kind"), "actor_start"))
			json_object_set_new(run, key, json_pack("[sI]", actor, (json_int_t)inst));
		else
			json_object_del(run, key);
	}
	if (!any) {
		json_decref(run);
		return NULL;
	}
	return run;
}

/* Fallback when the history has no agent line of the node: the instances the
 * lattice's failovers of that node reassigned, and the placements still on it
 * if it is dead at the end (final.json of the reference replica). */
static json_t *running_from_final(json_t *final, json_t *ref, const char *node)
{
	json_t *run = json_object();
	char key[512];
	json_t *tables = json_object_get(ref, "tables");
	size_t i, j;
	json_t *fo, *a;
	json_array_foreach(json_object_get(tables, "failovers"), i, fo)
	{
		if (!is(jstr(fo, "node_id"), node))
			continue;
		json_array_foreach(json_object_get(fo, "assignments"), j, a)
		{
			const char *actor = jstr(a, "actor_id");
			if (!actor)
				continue;
			ms_t inst = jint_or(a, "instance", 0);
			inst_key(key, sizeof(key), actor, inst);
			json_object_set_new(run, key, json_pack("[sI]", actor, (json_int_t)inst));
		}
	}
	if (array_has_str(json_object_get(final, "dead_nodes"), node)) {
		json_array_foreach(json_object_get(tables, "placements"), i, a)
		{
			const char *actor = jstr(a, "actor_id");
			if (!actor || !is(jstr(a, "node_id"), node))
				continue;
			ms_t inst = jint_or(a, "instance", 0);
			inst_key(key, sizeof(key), actor, inst);
			json_object_set_new(run, key, json_pack("[sI]", actor, (json_int_t)inst));
		}
	}
	return run;
}

/* Displaced instances of node for fault F and their failovers: appended to
 * list, failover times to fv; returns the node's summary (displaced, moved,
 * last_ms = when the last one started elsewhere). */
static json_t *failover_one(const struct fault *F, const char *node, struct idx *x, json_t *final, json_t *ref,
			    json_t *list, struct vec *fov)
{
	const char *source = "history";
	json_t *run = running_at(x, node, F->start);
	if (!run) {
		run = running_from_final(final, ref, node);
		source = "final";
	}
	/* Sorted keys: the same report for the same inputs. */
	size_t n = json_object_size(run), k = 0;
	const char **keys = calloc(n + 1, sizeof(*keys));
	if (!keys)
		abort();
	const char *key;
	json_t *v;
	json_object_foreach(run, key, v) keys[k++] = key;
	qsort(keys, n, sizeof(*keys), cmp_str);
	json_t *targets = json_object_get(F->line, "targets");
	ms_t last = -1;
	size_t moved = 0, removed = 0;
	for (k = 0; k < n; k++) {
		json_t *ai = json_object_get(run, keys[k]);
		const char *actor = json_string_value(json_array_get(ai, 0));
		ms_t inst = (ms_t)json_integer_value(json_array_get(ai, 1));
		/* when it last started there, and its first start elsewhere after the fault */
		ms_t since = 0, next = -1;
		size_t i;
		json_t *l;
		json_array_foreach(json_object_get(x->starts, keys[k]), i, l)
		{
			ms_t t = jint_or(l, "t", 0);
			const char *on = jstr(l, "node");
			if (t <= F->start && is(on, node))
				since = t;
			if (next < 0 && t >= F->start && !is(on, node) && !array_has_str(targets, on))
				next = t;
		}
		if (removed_by_workload(x, actor, inst, since, next)) {
			removed++; /* deleted or scaled down by the workload: not displaced */
			continue;
		}
		json_t *o = json_object();
		json_object_set_new(o, "actor", json_string(actor));
		json_object_set_new(o, "instance", json_integer(inst));
		json_object_set_new(o, "node", json_string(node));
		json_object_set_new(o, "fault", json_integer(F->id));
		json_object_set_new(o, "source", json_string(source));
		json_object_set_new(o, "start_ms", json_integer(F->start));
		json_t *to = json_null(), *at = json_null(), *ms = json_null();
		json_array_foreach(json_object_get(x->starts, keys[k]), i, l)
		{
			ms_t t = jint_or(l, "t", 0);
			const char *on = jstr(l, "node");
			if (t < F->start || is(on, node) || array_has_str(targets, on))
				continue;
			to = json_string(on);
			at = json_integer(t);
			ms = json_integer(t - F->start);
			vec_push(fov, t - F->start);
			if (t > last)
				last = t;
			moved++;
			break;
		}
		json_object_set_new(o, "to_node", to);
		json_object_set_new(o, "started_ms", at);
		json_object_set_new(o, "failover_ms", ms);
		json_array_append_new(list, o);
	}
	free(keys);
	json_t *s = json_object();
	json_object_set_new(s, "node", json_string(node));
	json_object_set_new(s, "fault", json_integer(F->id));
	json_object_set_new(s, "displaced", json_integer((json_int_t)(n - removed)));
	json_object_set_new(s, "removed", json_integer((json_int_t)removed));
	json_object_set_new(s, "moved", json_integer((json_int_t)moved));
	json_object_set_new(s, "last_ms", last >= 0 ? json_integer(last) : json_null());
	json_decref(run);
	return s;
}

/* Counts the commands of one replica: from its commands_summary (the
 * collector's counts of every command), or else from its rows (a final.json
 * without one holds every command). */
static json_t *commands_section(json_t *ref)
{
	json_t *o = json_object(), *by = json_object();
	ms_t sent = 0, acked = 0, retried = 0, failed = 0, superseded = 0;
	size_t i;
	json_t *c, *sum = json_object_get(ref, "commands_summary");
	if (json_is_object(sum)) {
		const char *st;
		json_t *n;
		json_object_foreach(json_object_get(sum, "by_status"), st, n)
		{
			ms_t k = json_integer_value(n);
			acked += is(st, "acked") ? k : 0;
			failed += is(st, "failed") ? k : 0;
			superseded += is(st, "superseded") ? k : 0;
			json_object_set_new(by, st, json_integer(k));
		}
		sent = jint_or(sum, "total", 0);
		retried = jint_or(sum, "retried", 0);
	} else {
		json_array_foreach(json_object_get(json_object_get(ref, "tables"), "commands"), i, c)
		{
			const char *st = jstr(c, "status");
			sent++;
			acked += is(st, "acked");
			failed += is(st, "failed");
			superseded += is(st, "superseded");
			retried += jint_or(c, "attempts", 1) > 1;
			count_in(by, st ? st : "?");
		}
	}
	json_object_set_new(o, "replica", ref ? json_integer(jint_or(ref, "replica", 0)) : json_null());
	json_object_set_new(o, "sent", json_integer(sent));
	json_object_set_new(o, "acked", json_integer(acked));
	json_object_set_new(o, "retried", json_integer(retried));
	json_object_set_new(o, "failed", json_integer(failed));
	json_object_set_new(o, "superseded", json_integer(superseded));
	json_object_set_new(o, "by_status", by);
	return o;
}

/* Leader lines: the first leader is the election at start, each later line
 * naming another replica or term is a change; time with no agreed leader after
 * the first one is no_leader_ms. */
static json_t *leaders_section(json_t *history, ms_t run_end)
{
	json_t *o = json_object(), *list = json_array(), *changes = json_array();
	ms_t prev_r = -1, prev_term = -1, none_since = -1, none_ms = 0, none_max = 0;
	int seen = 0;
	size_t i;
	json_t *l;
	json_array_foreach(history, i, l)
	{
		if (!is(jstr(l, "type"), "observe") || !is(jstr(l, "f"), "leader"))
			continue;
		ms_t t = jint_or(l, "t", 0), r, term = jint_or(l, "term", -1);
		int has = jint(l, "replica", &r);
		json_t *e = json_object();
		json_object_set_new(e, "t_ms", json_integer(t));
		json_object_set_new(e, "replica", has ? json_integer(r) : json_null());
		json_object_set_new(e, "term", term >= 0 ? json_integer(term) : json_null());
		json_array_append(list, e);
		if (has) {
			if (seen && (r != prev_r || term != prev_term))
				json_array_append(changes, e);
			if (none_since >= 0) {
				none_ms += t - none_since;
				if (t - none_since > none_max)
					none_max = t - none_since;
				none_since = -1;
			}
			seen = 1;
			prev_r = r;
			prev_term = term;
		} else if (seen && none_since < 0) {
			none_since = t;
		}
		json_decref(e);
	}
	if (none_since >= 0) {
		none_ms += run_end - none_since;
		if (run_end - none_since > none_max)
			none_max = run_end - none_since;
	}
	json_object_set_new(o, "changes", json_integer((json_int_t)json_array_size(changes)));
	json_object_set_new(o, "change_list", changes);
	json_object_set_new(o, "no_leader_ms", json_integer(none_ms));
	json_object_set_new(o, "longest_no_leader_ms", json_integer(none_max));
	json_object_set_new(o, "lines", list);
	return o;
}

static const char *const outcomes[] = {"ok", "fail", "info"};

/* Operations by f and outcome, latency of the ok ones; a per-bin count of
 * completions for the picture. */
static json_t *workload_section(json_t *history, ms_t run_end)
{
	json_t *invokes = json_object(), *by = json_object(), *o = json_object();
	ms_t bin = 1000;
	while (run_end / bin > 240)
		bin += 1000;
	size_t nbins = (size_t)(run_end / bin) + 1;
	json_t *bins[3];
	for (int k = 0; k < 3; k++) {
		bins[k] = json_array();
		for (size_t b = 0; b < nbins; b++)
			json_array_append_new(bins[k], json_integer(0));
	}
	struct vec all = {0};
	ms_t tot[3] = {0}, invoked = 0;
	size_t i;
	json_t *l;
	char key[32];
	json_array_foreach(history, i, l)
	{
		const char *type = jstr(l, "type");
		ms_t op;
		if (!type || !jint(l, "op", &op))
			continue;
		snprintf(key, sizeof(key), "%lld", op);
		if (is(type, "invoke")) {
			json_object_set(invokes, key, l);
			invoked++;
			const char *f = jstr(l, "f") ? jstr(l, "f") : "?";
			json_t *s = json_object_get(by, f);
			if (!s) {
				s = json_pack("{sIsIsIsIsI}", "invoked", (json_int_t)0, "ok", (json_int_t)0, "fail",
					      (json_int_t)0, "info", (json_int_t)0, "open", (json_int_t)0);
				json_object_set_new(by, f, s);
			}
			json_object_set_new(s, "invoked", json_integer(json_integer_value(json_object_get(s, "invoked")) + 1));
			continue;
		}
		int k = -1;
		for (int j = 0; j < 3; j++)
			if (is(type, outcomes[j]))
				k = j;
		json_t *inv = json_object_get(invokes, key);
		if (k < 0 || !inv)
			continue;
		const char *f = jstr(inv, "f") ? jstr(inv, "f") : "?";
		json_t *s = json_object_get(by, f);
		json_object_set_new(s, outcomes[k], json_integer(json_integer_value(json_object_get(s, outcomes[k])) + 1));
		tot[k]++;
		ms_t t = jint_or(l, "t", 0);
		if (t >= 0 && t <= run_end) {
			json_t *c = json_array_get(bins[k], (size_t)(t / bin));
			json_integer_set(c, json_integer_value(c) + 1);
		}
		if (k == 0) {
			ms_t lat = t - jint_or(inv, "t", t);
			vec_push(&all, lat);
			/* per-f latencies kept as an array on the stats object until the end */
			json_t *lats = json_object_get(s, "lat");
			if (!lats) {
				lats = json_array();
				json_object_set_new(s, "lat", lats);
			}
			json_array_append_new(lats, json_integer(lat));
		}
		json_object_del(invokes, key);
	}
	const char *f;
	json_t *s;
	json_object_foreach(by, f, s)
	{
		struct vec v = {0};
		size_t j;
		json_t *x;
		json_array_foreach(json_object_get(s, "lat"), j, x) vec_push(&v, (ms_t)json_integer_value(x));
		json_object_del(s, "lat");
		ms_t done = 0;
		for (int k = 0; k < 3; k++)
			done += json_integer_value(json_object_get(s, outcomes[k]));
		json_object_set_new(s, "open", json_integer(json_integer_value(json_object_get(s, "invoked")) - done));
		set_stats(s, &v);
		json_object_del(s, "max_ms");
		free(v.v);
	}
	json_object_set_new(o, "ops", json_integer(invoked));
	for (int k = 0; k < 3; k++)
		json_object_set_new(o, outcomes[k], json_integer(tot[k]));
	json_object_set_new(o, "open", json_integer(invoked - tot[0] - tot[1] - tot[2]));
	set_stats(o, &all);
	json_object_del(o, "max_ms");
	free(all.v);
	json_object_set_new(o, "by_f", by);
	json_t *tl = json_object();
	json_object_set_new(tl, "bin_ms", json_integer(bin));
	for (int k = 0; k < 3; k++)
		json_object_set_new(tl, outcomes[k], bins[k]);
	json_object_set_new(o, "timeline", tl);
	json_decref(invokes);
	return o;
}

/* What the run cost the machine (procstat.c's "resources" lines): per group
 * of processes, the mean and highest CPU (% of one core) and the highest
 * resident memory. */
static json_t *resources_section(json_t *history)
{
	json_t *acc = json_object(), *line;
	size_t i;
	json_array_foreach(history, i, line)
	{
		if (!is(jstr(line, "type"), "observe") || !is(jstr(line, "f"), "resources"))
			continue;
		const char *g;
		json_t *v;
		json_object_foreach(json_object_get(line, "groups"), g, v)
		{
			json_t *a = json_object_get(acc, g);
			if (!a) {
				a = json_pack("{s:f, s:f, s:f, s:i, s:i}", "cpu_sum", 0.0, "cpu_pct_max", 0.0, "rss_mib_max",
					      0.0, "samples", 0, "procs", 0);
				json_object_set_new(acc, g, a);
			}
			double c = json_number_value(json_object_get(v, "cpu_pct"));
			double m = json_number_value(json_object_get(v, "rss_mib"));
			json_object_set_new(a, "cpu_sum", json_real(json_number_value(json_object_get(a, "cpu_sum")) + c));
			if (c > json_number_value(json_object_get(a, "cpu_pct_max")))
				json_object_set_new(a, "cpu_pct_max", json_real(c));
			if (m > json_number_value(json_object_get(a, "rss_mib_max")))
				json_object_set_new(a, "rss_mib_max", json_real(m));
			json_object_set_new(a, "samples", json_integer(json_integer_value(json_object_get(a, "samples")) + 1));
			json_object_set(a, "procs", json_object_get(v, "procs"));
		}
	}
	const char *g;
	json_t *a;
	json_object_foreach(acc, g, a)
	{
		json_int_t n = json_integer_value(json_object_get(a, "samples"));
		double mean = n ? json_number_value(json_object_get(a, "cpu_sum")) / (double)n : 0;
		json_object_set_new(a, "cpu_pct_mean", json_real((double)(long)(mean * 10) / 10.0));
		json_object_del(a, "cpu_sum");
	}
	return acc;
}

static json_t *violations_section(json_t *violations)
{
	json_t *o = json_object(), *by = json_object(), *list = json_array();
	size_t i, j;
	json_t *v, *e;
	json_array_foreach(json_object_get(violations, "violations"), i, v)
	{
		const char *check = jstr(v, "check") ? jstr(v, "check") : "?";
		count_in(by, check);
		json_t *x = json_object(), *ts = json_array();
		ms_t first = -1;
		json_array_foreach(json_object_get(v, "evidence"), j, e)
		{
			ms_t t;
			if (!jint(e, "t", &t))
				continue;
			json_array_append_new(ts, json_integer(t));
			if (first < 0 || t < first)
				first = t;
		}
		json_object_set_new(x, "check", json_string(check));
		json_t *key = json_object_get(v, "key");
		json_object_set_new(x, "key", key ? json_deep_copy(key) : json_null());
		json_object_set_new(x, "message", json_string(jstr(v, "message") ? jstr(v, "message") : ""));
		json_object_set_new(x, "t_ms", first >= 0 ? json_integer(first) : json_null());
		json_object_set_new(x, "evidence_t", ts);
		json_array_append_new(list, x);
	}
	json_object_set_new(o, "total", json_integer((json_int_t)json_array_size(list)));
	json_object_set_new(o, "by_check", by);
	json_object_set_new(o, "list", list);
	json_t *checks = json_object_get(violations, "checks");
	json_object_set_new(o, "checks", json_is_object(checks) ? json_deep_copy(checks) : json_object());
	return o;
}

json_t *report_build(const char *name, json_t *scenario, json_t *history, json_t *final, json_t *violations)
{
	json_t *rep = json_object();
	if (!rep)
		return NULL;
	/* Run length: the last line, or final.json's read if it came later. */
	ms_t run_end = jint_or(final, "t", 0), t;
	size_t i;
	json_t *l;
	json_t *markers = json_object();
	json_array_foreach(history, i, l)
	{
		if (jint(l, "t", &t) && t > run_end)
			run_end = t;
		if (is(jstr(l, "type"), "run") && jstr(l, "f") && !json_object_get(markers, jstr(l, "f")))
			json_object_set_new(markers, jstr(l, "f"), json_integer(jint_or(l, "t", 0)));
	}
	ms_t agents = 0, replicas = jint_or(json_object_get(scenario, "cluster"), "replicas", 3);
	json_t *g;
	json_array_foreach(json_object_get(scenario, "agents"), i, g) agents += jint_or(g, "count", 0);
	json_array_foreach(json_object_get(final, "replicas"), i, g)
	{
		if (jint_or(g, "replica", 0) > replicas)
			replicas = jint_or(g, "replica", 0);
	}
	json_t *run = json_object();
	json_object_set_new(run, "length_ms", json_integer(run_end));
	json_object_set_new(run, "agents", json_integer(agents));
	json_object_set_new(run, "replicas", json_integer(replicas));
	json_object_set_new(run, "history_lines", json_integer((json_int_t)json_array_size(history)));
	json_object_set_new(run, "markers", markers);

	/* Faults */
	json_t *skipped = json_array(), *flist = json_array(), *fby = json_object();
	size_t nf;
	struct fault *fv = collect_faults(history, run_end, &nf, skipped);
	for (size_t k = 0; k < nf; k++) {
		json_array_append_new(flist, fault_json(&fv[k]));
		count_in(fby, fv[k].f);
	}
	json_t *faults = json_object();
	json_object_set_new(faults, "total", json_integer((json_int_t)nf));
	json_object_set_new(faults, "by_kind", fby);
	json_object_set_new(faults, "skipped", skipped);
	json_object_set_new(faults, "list", flist);

	/* Detection and failover, per node of each fault that stops its agents */
	struct idx x;
	build_index(history, &x);
	json_t *ref = ref_replica(final);
	struct vec dv = {0}, fov = {0};
	json_t *dlist = json_array(), *folist = json_array(), *fonodes = json_array();
	for (size_t k = 0; k < nf; k++) {
		if (!detect_kind(fv[k].f))
			continue;
		json_t *tg;
		json_array_foreach(json_object_get(fv[k].line, "targets"), i, tg)
		{
			const char *node = json_string_value(tg);
			if (!node)
				continue;
			json_array_append_new(dlist, detect_one(fv, nf, k, node, &x, &dv));
			json_array_append_new(fonodes, failover_one(&fv[k], node, &x, final, ref, folist, &fov));
		}
	}
	json_t *det = json_object();
	ms_t detected = (ms_t)dv.n, already = 0;
	json_array_foreach(dlist, i, l) already += json_is_true(json_object_get(l, "already_unhealthy"));
	json_object_set_new(det, "nodes", json_integer((json_int_t)json_array_size(dlist)));
	json_object_set_new(det, "detected", json_integer(detected));
	json_object_set_new(det, "undetected", json_integer((ms_t)json_array_size(dlist) - detected - already));
	json_object_set_new(det, "already_unhealthy", json_integer(already));
	set_stats(det, &dv);
	json_object_set_new(det, "list", dlist);
	json_t *fo = json_object();
	json_object_set_new(fo, "displaced", json_integer((json_int_t)json_array_size(folist)));
	json_object_set_new(fo, "moved", json_integer((json_int_t)fov.n));
	json_object_set_new(fo, "not_moved", json_integer((json_int_t)(json_array_size(folist) - fov.n)));
	set_stats(fo, &fov);
	json_object_set_new(fo, "nodes", fonodes);
	json_object_set_new(fo, "list", folist);
	free(dv.v);
	free(fov.v);
	free_index(&x);
	free(fv);

	json_t *vio = violations_section(violations);
	ms_t nv = json_integer_value(json_object_get(vio, "total"));
	json_t *jname = json_string(name ? name : "run"); /* NULL: not UTF-8 (a name cut short) */
	json_object_set_new(rep, "scenario", jname ? jname : json_string("run"));
	json_object_set_new(rep, "verdict", json_string(nv ? "violations" : "pass"));
	json_object_set_new(rep, "run", run);
	json_object_set_new(rep, "faults", faults);
	json_object_set_new(rep, "detection", det);
	json_object_set_new(rep, "failover", fo);
	json_object_set_new(rep, "commands", commands_section(ref));
	json_object_set_new(rep, "leaders", leaders_section(history, run_end));
	json_object_set_new(rep, "workload", workload_section(history, run_end));
	json_object_set_new(rep, "resources", resources_section(history));
	json_object_set_new(rep, "violations", vio);
	return rep;
}

/* ---- summary.txt -------------------------------------------------------------- */

/* Text from the run (messages, ids) printed without control characters, so a
 * message cannot move a terminal's cursor. */
static const char *clean(char *buf, size_t len, const char *s, size_t max)
{
	size_t n = 0;
	for (; s && *s && n < max && n + 4 < len; s++)
		buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? ' ' : *s;
	if (s && *s && n + 4 <= len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static void put_clean(FILE *f, const char *s, size_t max)
{
	char buf[512];
	fputs(clean(buf, sizeof(buf), s, max), f);
}

static void put_ms(FILE *f, json_t *v)
{
	if (json_is_integer(v))
		fprintf(f, " %9lld", (long long)json_integer_value(v));
	else
		fprintf(f, " %9s", "-");
}

static ms_t gi(json_t *o, const char *k)
{
	return jint_or(o, k, 0);
}

int report_summary(FILE *f, json_t *rep)
{
	json_t *run = json_object_get(rep, "run"), *faults = json_object_get(rep, "faults");
	json_t *det = json_object_get(rep, "detection"), *fo = json_object_get(rep, "failover");
	json_t *cmd = json_object_get(rep, "commands"), *ld = json_object_get(rep, "leaders");
	json_t *wl = json_object_get(rep, "workload"), *vio = json_object_get(rep, "violations");
	ms_t nv = gi(vio, "total");
	fputs("lattice chaos run: ", f);
	put_clean(f, jstr(rep, "scenario"), 60);
	if (nv)
		fprintf(f, " -- %lld VIOLATION%s\n\n", nv, nv == 1 ? "" : "S");
	else
		fputs(" -- no violations\n\n", f);
	fprintf(f, "%-18s %.1f s\n", "run length", (double)gi(run, "length_ms") / 1000.0);
	fprintf(f, "%-18s %lld\n", "agents", gi(run, "agents"));
	fprintf(f, "%-18s %lld\n", "replicas", gi(run, "replicas"));
	fprintf(f, "%-18s %lld", "faults", gi(faults, "total"));
	const char *k;
	json_t *v;
	int first = 1;
	json_object_foreach(json_object_get(faults, "by_kind"), k, v)
	{
		fprintf(f, "%s%s %lld", first ? "  (" : ", ", k, (long long)json_integer_value(v));
		first = 0;
	}
	fputs(first ? "" : ")", f);
	if (json_array_size(json_object_get(faults, "skipped")))
		fprintf(f, "  %zu skipped", json_array_size(json_object_get(faults, "skipped")));
	fputs("\n\n", f);

	fprintf(f, "%-18s %9s %9s %9s %9s\n", "", "n", "p50 ms", "p99 ms", "max ms");
	fprintf(f, "%-18s %9lld", "detection", gi(det, "detected"));
	put_ms(f, json_object_get(det, "p50_ms"));
	put_ms(f, json_object_get(det, "p99_ms"));
	put_ms(f, json_object_get(det, "max_ms"));
	fprintf(f, "   of %lld nodes, %lld undetected\n", gi(det, "nodes"), gi(det, "undetected"));
	fprintf(f, "%-18s %9lld", "failover", gi(fo, "moved"));
	put_ms(f, json_object_get(fo, "p50_ms"));
	put_ms(f, json_object_get(fo, "p99_ms"));
	put_ms(f, json_object_get(fo, "max_ms"));
	fprintf(f, "   of %lld displaced, %lld not moved\n", gi(fo, "displaced"), gi(fo, "not_moved"));
	fprintf(f, "%-18s %9lld\n\n", "displaced actors", gi(fo, "displaced"));

	fprintf(f, "%-18s %9s %9s %9s %9s %10s\n", "", "sent", "acked", "retried", "failed", "superseded");
	fprintf(f, "%-18s %9lld %9lld %9lld %9lld %10lld", "commands", gi(cmd, "sent"), gi(cmd, "acked"),
		gi(cmd, "retried"), gi(cmd, "failed"), gi(cmd, "superseded"));
	if (json_is_integer(json_object_get(cmd, "replica")))
		fprintf(f, "   (replica %lld)\n", gi(cmd, "replica"));
	else
		fputs("   (no live replica)\n", f);

	fprintf(f, "%-18s %lld", "leader changes", gi(ld, "changes"));
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(ld, "change_list"), i, e)
	{
		if (i == 4) {
			fputs(", ...", f);
			break;
		}
		fprintf(f, "%s%.1f s r%lld", i ? ", " : "  (", (double)gi(e, "t_ms") / 1000.0, gi(e, "replica"));
	}
	fputs(json_array_size(json_object_get(ld, "change_list")) ? ")" : "", f);
	fprintf(f, "  no leader %.1f s\n\n", (double)gi(ld, "no_leader_ms") / 1000.0);

	fprintf(f, "%-18s %9s %9s %9s %9s %9s %9s\n", "ops", "invoked", "ok", "fail", "info", "p50 ms", "p99 ms");
	json_object_foreach(json_object_get(wl, "by_f"), k, v)
	{
		char name[32];
		fprintf(f, "  %-16s", clean(name, sizeof(name), k, 13));
		fprintf(f, " %9lld %9lld %9lld %9lld", gi(v, "invoked"), gi(v, "ok"), gi(v, "fail"), gi(v, "info"));
		put_ms(f, json_object_get(v, "p50_ms"));
		put_ms(f, json_object_get(v, "p99_ms"));
		fputc('\n', f);
	}
	fprintf(f, "%-18s %9lld %9lld %9lld %9lld", "  all", gi(wl, "ops"), gi(wl, "ok"), gi(wl, "fail"), gi(wl, "info"));
	put_ms(f, json_object_get(wl, "p50_ms"));
	put_ms(f, json_object_get(wl, "p99_ms"));
	fputs("\n\n", f);

	json_t *res = json_object_get(rep, "resources");
	if (json_object_size(res)) {
		fprintf(f, "%-18s %9s %9s %9s %9s\n", "machine", "procs", "cpu% avg", "cpu% max", "rss MiB");
		json_object_foreach(res, k, v)
		{
			char name[32];
			fprintf(f, "  %-16s %9lld %9.1f %9.1f %9.1f\n", clean(name, sizeof(name), k, 16), gi(v, "procs"),
				json_number_value(json_object_get(v, "cpu_pct_mean")),
				json_number_value(json_object_get(v, "cpu_pct_max")),
				json_number_value(json_object_get(v, "rss_mib_max")));
		}
		fputs("  (cpu%: of one core, sampled every 5 s; rss: the highest sample)\n\n", f);
	}

	if (!nv) {
		fputs("VIOLATIONS: none\n", f);
	} else {
		fprintf(f, "VIOLATIONS: %lld  (", nv);
		first = 1;
		json_object_foreach(json_object_get(vio, "by_check"), k, v)
		{
			fprintf(f, "%s%s %lld", first ? "" : ", ", k, (long long)json_integer_value(v));
			first = 0;
		}
		fputs(")\n", f);
		json_array_foreach(json_object_get(vio, "list"), i, e)
		{
			if (i == 8) {
				fprintf(f, "  ... %lld more in report.json\n", nv - 8);
				break;
			}
			fputs("  ", f);
			put_clean(f, jstr(e, "check"), 20);
			fputs(": ", f);
			put_clean(f, jstr(e, "message"), 200);
			fputc('\n', f);
		}
	}
	return ferror(f) ? -1 : 0;
}

/* ---- files -------------------------------------------------------------------- */

typedef int (*writer_fn)(FILE *f, json_t *rep);

static int write_json(FILE *f, json_t *rep)
{
	if (json_dumpf(rep, f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0)
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}

/* DIR/name through DIR/name.tmp and a rename. */
static int write_file(const char *dir, const char *name, writer_fn fn, json_t *rep, char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	int rc = fn(f, rep);
	int e = errno;
	if (fclose(f) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -1;
		e = errno;
	}
	if (rc != 0) {
		snprintf(err, errlen, "%s: %s", path, e ? strerror(e) : "write error");
		unlink(tmp);
	}
	return rc;
}

/* The title's name: the scenario's "name", else the file the run start line
 * names (without directory and .json), else the run directory's name. */
static void scenario_name(const char *dir, json_t *scenario, json_t *history, char *out, size_t len)
{
	const char *s = jstr(scenario, "name");
	size_t i;
	json_t *l;
	if (s && s[0]) {
		snprintf(out, len, "%s", s);
		return;
	}
	s = NULL;
	json_array_foreach(history, i, l)
	{
		if (is(jstr(l, "type"), "run") && is(jstr(l, "f"), "start")) {
			s = jstr(l, "scenario");
			break;
		}
	}
	if (!s) {
		s = dir;
		size_t n = strlen(s);
		while (n > 1 && s[n - 1] == '/')
			n--;
		snprintf(out, len, "%.*s", (int)n, s);
		s = out;
	}
	const char *slash = strrchr(s, '/');
	char tmp[256];
	snprintf(tmp, sizeof(tmp), "%s", slash && slash[1] ? slash + 1 : s);
	size_t n = strlen(tmp);
	if (n > 5 && strcmp(tmp + n - 5, ".json") == 0)
		tmp[n - 5] = '\0';
	snprintf(out, len, "%s", tmp[0] ? tmp : "run");
}

int report_write(const char *dir, json_t *scenario, json_t *history, json_t *final, json_t *violations,
		 char *err, size_t errlen)
{
	char name[256];
	scenario_name(dir, scenario, history, name, sizeof(name));
	json_t *rep = report_build(name, scenario, history, final, violations);
	if (!rep) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = write_file(dir, "report.json", write_json, rep, err, errlen);
	if (rc == 0)
		rc = write_file(dir, "summary.txt", report_summary, rep, err, errlen);
	if (rc == 0)
		rc = write_file(dir, "timeline.svg", report_svg, rep, err, errlen);
	json_decref(rep);
	return rc;
}

static json_t *load(const char *dir, const char *name, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	json_error_t je;
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
			 strcmp(name, "violations.json") == 0 ? " (`lattice-sim check DIR` writes it)" : "");
		return NULL;
	}
	json_t *j = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
	fclose(f);
	if (!j)
		snprintf(err, errlen, "%s: line %d: %s", path, je.line, je.text);
	else if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: want a JSON object", path);
		json_decref(j);
		j = NULL;
	}
	return j;
}

int report_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	json_t *history = NULL, *final = NULL, *violations = NULL;
	int rc = -1;
	json_t *scenario = load(dir, "scenario.json", err, errlen);
	if (!scenario)
		goto out;
	snprintf(path, sizeof(path), "%s/history.jsonl", dir);
	if (hist_load(path, &history, err, errlen) < 0)
		goto out;
	if (!(final = load(dir, "final.json", err, errlen)) || !(violations = load(dir, "violations.json", err, errlen)))
		goto out;
	if (report_write(dir, scenario, history, final, violations, err, errlen) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/summary.txt", dir);
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, stdout);
	fclose(f);
	rc = fflush(stdout) == 0 ? 0 : -1;
	if (rc)
		snprintf(err, errlen, "stdout: %s", strerror(errno));
out:
	json_decref(scenario);
	json_decref(history);
	json_decref(final);
	json_decref(violations);
	return rc;
}
