/* check — see check.h. This file: reading the history and the final state,
 * the checks of client operations (lost_write, migration, stale_read), the
 * output, check_dir. The checks of the final state alone are in
 * check_state.c. */
#include "check.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_int.h"
#include "hist.h"
#include "linear.h"

/* ---- small containers ---------------------------------------------------- */

int vec_push(struct vec *v, void *p)
{
	if (v->n == v->cap) {
		size_t ncap = v->cap ? v->cap * 2 : 8;
		void **nv = realloc(v->v, ncap * sizeof(*nv));
		if (!nv)
			return -1;
		v->v = nv;
		v->cap = ncap;
	}
	v->v[v->n++] = p;
	return 0;
}

struct mm_ent {
	char *key;
	struct vec v;
};

struct vec *mm_at(struct mm *m, const char *key, bool create)
{
	struct mm_ent *e = hmap_get(&m->h, key);
	if (e || !create)
		return e ? &e->v : NULL;
	if (!(e = calloc(1, sizeof(*e))) || !(e->key = strdup(key)) || hmap_put(&m->h, e->key, e) != 0) {
		if (e)
			free(e->key);
		free(e);
		return NULL;
	}
	return &e->v;
}

void mm_free(struct mm *m)
{
	size_t pos = 0;
	struct mm_ent *e;
	while ((e = hmap_next(&m->h, &pos))) {
		free(e->v.v);
		free(e->key);
		free(e);
	}
	hmap_release(&m->h);
}

const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

bool jint(json_t *o, const char *k, json_int_t *out)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		return false;
	*out = json_integer_value(v);
	return true;
}

json_t *jtable(json_t *tables, const char *name)
{
	json_t *t = json_object_get(tables, name);
	return json_is_array(t) ? t : NULL;
}

/* ---- output --------------------------------------------------------------- */

static int line_t_cmp(const void *a, const void *b)
{
	json_int_t x = 0, y = 0;
	jint(*(json_t *const *)a, "t", &x);
	jint(*(json_t *const *)b, "t", &y);
	return (x > y) - (x < y);
}

void check_violation(struct ctx *c, const char *check, const char *key, json_t *extra, struct vec *evidence,
		     const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* deduplicated (the same line object); the first CHECK_EVIDENCE_MAX in
	 * the order given (callers give the lines that matter most first), then
	 * in time order */
	size_t n = evidence ? evidence->n : 0;
	json_t **lines = calloc(n ? n : 1, sizeof(*lines));
	size_t m = 0;
	for (size_t i = 0; lines && i < n && m < CHECK_EVIDENCE_MAX; i++) {
		bool dup = false;
		for (size_t j = 0; j < m && !dup; j++)
			dup = lines[j] == evidence->v[i];
		if (!dup)
			lines[m++] = evidence->v[i];
	}
	/* insertion sort: stable (the history's order of equal times), and short */
	for (size_t i = 1; lines && i < m; i++)
		for (size_t j = i; j > 0 && line_t_cmp(&lines[j - 1], &lines[j]) > 0; j--) {
			json_t *t = lines[j];
			lines[j] = lines[j - 1];
			lines[j - 1] = t;
		}
	json_t *ev = json_array();
	for (size_t i = 0; ev && i < m; i++)
		if (json_array_append(ev, lines[i]) != 0)
			c->oom = 1;
	free(lines);
	/* a message cut at its buffer's end may end inside a UTF-8 sequence */
	json_t *jm = json_string(msg);
	if (!jm) {
		for (char *p = msg; *p; p++)
			if ((unsigned char)*p >= 0x80)
				*p = '?';
		jm = json_string(msg);
	}
	json_t *v = json_pack("{s:s, s:s, s:o}", "check", check, "key", key ? key : "", "message", jm);
	if (v && extra && json_object_update(v, extra) != 0)
		c->oom = 1;
	json_decref(extra);
	if (!v || !ev || json_object_set_new(v, "evidence", ev) != 0 || vec_push(&c->viol, v) != 0) {
		c->oom = 1;
		json_decref(v);
		return;
	}
}

static int viol_key_cmp(const void *a, const void *b)
{
	json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int r = strcmp(jstr(x, "key"), jstr(y, "key"));
	if (r)
		return r;
	/* equal keys: the order they were found in (kept in "#") */
	json_int_t i = 0, j = 0;
	jint(x, "#", &i);
	jint(y, "#", &j);
	return (i > j) - (i < j);
}

void check_done(struct ctx *c, const char *check, size_t checked, json_t *more)
{
	for (size_t i = 0; i < c->viol.n; i++)
		json_object_set_new(c->viol.v[i], "#", json_integer((json_int_t)i));
	if (c->viol.n > 1)
		qsort(c->viol.v, c->viol.n, sizeof(*c->viol.v), viol_key_cmp);
	for (size_t i = 0; i < c->viol.n; i++) {
		json_object_del(c->viol.v[i], "#");
		if (json_array_append_new(c->violations, c->viol.v[i]) != 0)
			c->oom = 1;
	}
	json_t *counts = json_pack("{s:I, s:I}", "checked", (json_int_t)checked, "violations", (json_int_t)c->viol.n);
	c->viol.n = 0;
	if (counts && more && json_object_update(counts, more) != 0)
		c->oom = 1;
	json_decref(more);
	if (!counts || json_object_set_new(c->checks, check, counts) != 0)
		c->oom = 1;
}

/* ---- evidence ------------------------------------------------------------- */

void ev_op(struct vec *ev, const struct op *o)
{
	vec_push(ev, o->inv);
	if (o->cmp)
		vec_push(ev, o->cmp);
}

void ev_node_life(struct ctx *c, struct vec *ev, const char *node)
{
	struct vec *ln = mm_at(&c->node_ln, node, false);
	for (size_t i = 0; ln && i < ln->n; i++) {
		const char *type = jstr(ln->v[i], "type"), *f = jstr(ln->v[i], "f");
		if (!(strcmp(type, "agent") == 0 && f && strcmp(f, "applied") == 0))
			vec_push(ev, ln->v[i]);
	}
}

void ev_applied(struct ctx *c, struct vec *ev, const char *node, const char *actor, json_int_t inst)
{
	struct vec *ln = mm_at(&c->node_ln, node, false);
	for (size_t i = 0; ln && i < ln->n; i++) {
		json_t *l = ln->v[i];
		json_int_t in;
		const char *f = jstr(l, "f"), *a = jstr(l, "actor");
		if (f && strcmp(f, "applied") == 0 && a && strcmp(a, actor) == 0 &&
		    (!jint(l, "instance", &in) || in == inst))
			vec_push(ev, l);
	}
}

/* ---- reading the history --------------------------------------------------- */

static bool is_actor_op(const char *f)
{
	static const char *const fs[] = {"create", "scale", "delete", "migrate", "read"};
	for (size_t i = 0; f && i < sizeof(fs) / sizeof(fs[0]); i++)
		if (strcmp(f, fs[i]) == 0)
			return true;
	return false;
}

/* op id -> its index in c->ops, sorted by id for bsearch */
struct op_ix {
	json_int_t id;
	size_t i;
};

static int op_ix_cmp(const void *a, const void *b)
{
	const struct op_ix *x = a, *y = b;
	return (x->id > y->id) - (x->id < y->id);
}

/* The ops (invokes paired with completions) and the indexes of the lines. */
static int read_history(struct ctx *c)
{
	size_t n = json_array_size(c->history), ninv = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(c->history, i);
		const char *type = jstr(l, "type");
		if (!json_is_object(l) || !type) {
			snprintf(c->err, c->errlen, "history[%zu]: not an object with a \"type\"", i);
			return -1;
		}
		ninv += strcmp(type, "invoke") == 0;
	}
	if (!(c->ops = calloc(ninv ? ninv : 1, sizeof(*c->ops))))
		return c->oom = 1, -1;
	/* invokes in t order: each op's place; completions find theirs by id */
	struct op_ix *byid = NULL;
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(c->history, i);
		if (strcmp(jstr(l, "type"), "invoke") != 0)
			continue;
		struct op *o = &c->ops[c->nops++];
		json_int_t t = 0;
		jint(l, "t", &t);
		o->inv = l;
		o->f = jstr(l, "f");
		o->key = jstr(l, "key");
		o->t0 = t;
		o->t1 = CHECK_OPEN;
		o->st = OP_INFO;
		if (!jint(l, "op", &o->id) || !o->f) {
			snprintf(c->err, c->errlen, "history: the invoke at t=%" PRId64 " has no integer \"op\" or no \"f\"",
				 (int64_t)t);
			return -1;
		}
	}
	if (!(byid = malloc((c->nops ? c->nops : 1) * sizeof(*byid))))
		return c->oom = 1, -1;
	for (size_t i = 0; i < c->nops; i++)
		byid[i] = (struct op_ix){c->ops[i].id, i};
	qsort(byid, c->nops, sizeof(*byid), op_ix_cmp);
	for (size_t i = 1; i < c->nops; i++)
		if (byid[i].id == byid[i - 1].id) {
			snprintf(c->err, c->errlen, "history: op %lld is invoked twice", (long long)byid[i].id);
			free(byid);
			return -1;
		}
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(c->history, i);
		const char *type = jstr(l, "type");
		json_int_t t = 0, id;
		jint(l, "t", &t);
		if (strcmp(type, "ok") == 0 || strcmp(type, "fail") == 0 || strcmp(type, "info") == 0) {
			if (!jint(l, "op", &id))
				continue;
			struct op_ix key = {.id = id};
			struct op_ix *b = bsearch(&key, byid, c->nops, sizeof(*byid), op_ix_cmp);
			if (!b)
				continue; /* its invoke was lost (the history says so) */
			struct op *o = &c->ops[b->i];
			if (o->cmp)
				continue; /* a second completion: the first one counts */
			o->cmp = l;
			o->t1 = t;
			o->st = type[0] == 'o' ? OP_OK : type[0] == 'f' ? OP_FAIL : OP_INFO;
		} else if (strcmp(type, "agent") == 0) {
			const char *node = jstr(l, "node"), *cmd = jstr(l, "command");
			struct vec *v;
			if (node && (!(v = mm_at(&c->node_ln, node, true)) || vec_push(v, l) != 0))
				c->oom = 1;
			if (cmd && (!(v = mm_at(&c->cmd_ln, cmd, true)) || vec_push(v, l) != 0))
				c->oom = 1;
		} else if (strcmp(type, "observe") == 0 && jstr(l, "node")) {
			struct vec *v = mm_at(&c->node_ln, jstr(l, "node"), true);
			if (!v || vec_push(v, l) != 0)
				c->oom = 1;
		}
	}
	free(byid);
	if (c->oom)
		return -1;
	/* faults: a start names its targets, its end only its id */
	struct mm fault_targets = {0};
	for (size_t i = 0; i < n; i++) {
		json_t *l = json_array_get(c->history, i);
		if (strcmp(jstr(l, "type"), "nemesis") != 0)
			continue;
		json_int_t id = -1;
		char ids[32];
		jint(l, "id", &id);
		snprintf(ids, sizeof(ids), "%lld", (long long)id);
		json_t *targets = json_object_get(l, "targets");
		struct vec *tv = mm_at(&fault_targets, ids, json_is_array(targets));
		if (json_is_array(targets) && tv && tv->n == 0)
			vec_push(tv, targets);
		json_t *tg = tv && tv->n ? tv->v[0] : NULL;
		size_t k;
		json_t *node;
		json_array_foreach(tg, k, node)
		{
			struct vec *v = json_is_string(node) ? mm_at(&c->node_ln, json_string_value(node), true) : NULL;
			if (v && vec_push(v, l) != 0)
				c->oom = 1;
		}
	}
	mm_free(&fault_targets);
	for (size_t i = 0; i < c->nops; i++) {
		struct op *o = &c->ops[i];
		if (is_actor_op(o->f) && o->key) {
			struct vec *v = mm_at(&c->bykey, o->key, true);
			if (!v || vec_push(v, o) != 0)
				return c->oom = 1, -1;
		} else if (strcmp(o->f, "policy") == 0 && o->st == OP_OK && vec_push(&c->policy_ops, o) != 0)
			return c->oom = 1, -1;
	}
	return c->oom ? -1 : 0;
}

/* ---- reading the final state ----------------------------------------------- */

static int index_rows(struct ctx *c, struct mm *m, json_t *rows, const char *col, const char *col2)
{
	size_t i;
	json_t *r;
	json_array_foreach(rows, i, r)
	{
		const char *k = jstr(r, col);
		json_int_t k2 = 0;
		char buf[512];
		if (!k)
			continue;
		if (col2) {
			jint(r, col2, &k2);
			snprintf(buf, sizeof(buf), "%s\x1f%lld", k, (long long)k2);
			k = buf;
		}
		struct vec *v = mm_at(m, k, true);
		if (!v || vec_push(v, r) != 0)
			return c->oom = 1, -1;
	}
	return 0;
}

static int read_final(struct ctx *c)
{
	json_t *f = c->final, *reps = json_object_get(f, "replicas");
	if (!json_is_object(f) || !json_is_array(reps)) {
		snprintf(c->err, c->errlen, "final.json: want an object with a \"replicas\" array");
		return -1;
	}
	c->agents = json_object_get(f, "agents");
	if (c->agents && !json_is_object(c->agents)) {
		snprintf(c->err, c->errlen, "final.json: \"agents\" must be an object (node id -> agent)");
		return -1;
	}
	json_t *dead = json_object_get(f, "dead_nodes");
	if (dead && !json_is_array(dead)) {
		snprintf(c->err, c->errlen, "final.json: \"dead_nodes\" must be an array of node ids");
		return -1;
	}
	size_t i;
	json_t *x;
	json_array_foreach(dead, i, x) if (json_is_string(x) && !mm_at(&c->dead, json_string_value(x), true)) return c->oom = 1,
														     -1;
	json_array_foreach(reps, i, x)
	{
		json_int_t r;
		if (!json_is_object(x) || !jint(x, "replica", &r) || !json_is_object(json_object_get(x, "tables"))) {
			snprintf(c->err, c->errlen, "final.json: replicas[%zu] wants an integer \"replica\" and a \"tables\" object",
				 i);
			return -1;
		}
		/* "alive" absent counts as alive: a hand-written final.json */
		if (json_is_false(json_object_get(x, "alive")))
			continue;
		if (vec_push(&c->live, x) != 0)
			return c->oom = 1, -1;
	}
	if (c->live.n == 0)
		return 0;
	json_t *first = c->live.v[0];
	json_int_t r = 0;
	jint(first, "replica", &r);
	c->ref_replica = (int)r;
	c->ref = json_object_get(first, "tables");
	if (index_rows(c, &c->ref_actor, jtable(c->ref, "actors"), "id", NULL) ||
	    index_rows(c, &c->ref_pl, jtable(c->ref, "placements"), "actor_id", "instance") ||
	    index_rows(c, &c->ref_pl_node, jtable(c->ref, "placements"), "node_id", NULL) ||
	    index_rows(c, &c->ref_fo_node, jtable(c->ref, "failovers"), "node_id", NULL))
		return -1;
	return 0;
}

bool check_live_node(struct ctx *c, const char *node)
{
	json_t *a = node ? json_object_get(c->agents, node) : NULL;
	return a && json_is_true(json_object_get(a, "alive")) && !mm_at(&c->dead, node, false);
}

bool check_agent_runs(struct ctx *c, const char *node, const char *actor, json_int_t inst)
{
	json_t *a = node ? json_object_get(c->agents, node) : NULL;
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(a, "running"), i, p)
	{
		const char *pa = json_string_value(json_array_get(p, 0));
		if (pa && strcmp(pa, actor) == 0 && json_integer_value(json_array_get(p, 1)) == inst)
			return true;
	}
	return false;
}

/* ---- lost_write ----------------------------------------------------------- */

static bool is_write(const struct op *o)
{
	return strcmp(o->f, "create") == 0 || strcmp(o->f, "scale") == 0 || strcmp(o->f, "delete") == 0;
}

static bool op_replicas(const struct op *o, json_int_t *r)
{
	return jint(json_object_get(o->inv, "value"), "replicas", r);
}

static bool op_generation(const struct op *o, json_int_t *g)
{
	return o->cmp && jint(json_object_get(o->cmp, "value"), "generation", g);
}

/* Could the database's row (NULL: no actor) be what o left, o being the last
 * write applied? */
static bool explains(const struct op *o, json_t *row)
{
	if (strcmp(o->f, "delete") == 0)
		return row == NULL;
	json_int_t r, g, rr, rg;
	if (!row || !op_replicas(o, &r) || !jint(row, "replicas", &rr) || rr != r)
		return row && !op_replicas(o, &r); /* a write with no value says nothing */
	if (o->st == OP_OK && op_generation(o, &g))
		return jint(row, "generation", &rg) && rg >= g;
	return true;
}

static void describe_write(const struct op *o, char *buf, size_t len)
{
	json_int_t r, g;
	if (strcmp(o->f, "delete") == 0)
		snprintf(buf, len, "delete");
	else if (op_replicas(o, &r) && op_generation(o, &g))
		snprintf(buf, len, "%s to %lld (generation %lld)", o->f, (long long)r, (long long)g);
	else if (op_replicas(o, &r))
		snprintf(buf, len, "%s to %lld", o->f, (long long)r);
	else
		snprintf(buf, len, "%s", o->f);
}

static void check_lost_write(struct ctx *c)
{
	size_t checked = 0, pos = 0;
	struct mm_ent *e;
	/* per live replica: its actors by id */
	struct mm *actors = calloc(c->live.n ? c->live.n : 1, sizeof(*actors));
	if (!actors) {
		c->oom = 1;
		return;
	}
	for (size_t r = 0; r < c->live.n; r++)
		index_rows(c, &actors[r], jtable(json_object_get(c->live.v[r], "tables"), "actors"), "id", NULL);
	while ((e = hmap_next(&c->bykey.h, &pos))) {
		struct op *w = NULL;
		for (size_t i = 0; i < e->v.n; i++) {
			struct op *o = e->v.v[i];
			if (is_write(o) && o->st == OP_OK && (!w || o->t1 >= w->t1))
				w = o;
		}
		if (!w)
			continue;
		/* what could have been applied last: w, an acknowledged write that
		 * overlaps it, or any write whose outcome is unknown */
		struct vec cand = {0};
		for (size_t i = 0; i < e->v.n; i++) {
			struct op *o = e->v.v[i];
			if (is_write(o) && (o == w || (o->st == OP_OK && o->t1 >= w->t0) || o->st == OP_INFO))
				vec_push(&cand, o);
		}
		for (size_t r = 0; r < c->live.n; r++) {
			struct vec *rv = mm_at(&actors[r], e->key, false);
			json_t *row = rv ? rv->v[0] : NULL;
			bool ok = false;
			for (size_t i = 0; i < cand.n && !ok; i++)
				ok = explains(cand.v[i], row);
			checked++;
			if (ok)
				continue;
			json_int_t rep = 0, rr = 0, rg = 0;
			jint(c->live.v[r], "replica", &rep);
			char what[128], has[128];
			describe_write(w, what, sizeof(what));
			if (!row)
				snprintf(has, sizeof(has), "has no such actor");
			else if (jint(row, "replicas", &rr) && jint(row, "generation", &rg))
				snprintf(has, sizeof(has), "has replicas %lld, generation %lld", (long long)rr, (long long)rg);
			else
				snprintf(has, sizeof(has), "still has the actor");
			struct vec ev = {0};
			ev_op(&ev, w);
			for (size_t i = 0; i < cand.n; i++)
				ev_op(&ev, cand.v[i]);
			check_violation(c, "lost_write", e->key, json_pack("{s:I}", "replica", rep), &ev,
					"%s was acknowledged at t=%" PRId64 " but replica %lld's database %s%s", what, w->t1,
					(long long)rep, has,
					cand.n > 1 ? " (no concurrent or unknown write explains it either)" : "");
			free(ev.v);
		}
		free(cand.v);
	}
	for (size_t r = 0; r < c->live.n; r++)
		mm_free(&actors[r]);
	free(actors);
	check_done(c, "lost_write", checked, NULL);
}

/* ---- migration ------------------------------------------------------------ */

static void check_migration(struct ctx *c)
{
	size_t checked = 0, pos = 0;
	struct mm_ent *e;
	/* the live agents' ids once, for counting who runs an instance */
	size_t nagents = json_object_size(c->agents), na = 0;
	const char **names = calloc(nagents ? nagents : 1, sizeof(*names));
	const char *k;
	json_t *a;
	if (!names) {
		c->oom = 1;
		return;
	}
	json_object_foreach(c->agents, k, a)
	{
		if (check_live_node(c, k))
			names[na++] = k;
	}
	while (c->ref && (e = hmap_next(&c->bykey.h, &pos))) {
		/* the last write on the actor, if it is an acknowledged migrate that
		 * nothing else may have overtaken */
		struct op *m = NULL;
		for (size_t i = e->v.n; i-- > 0;) {
			struct op *o = e->v.v[i];
			if (strcmp(o->f, "read") != 0 && o->st != OP_FAIL) {
				m = o;
				break;
			}
		}
		if (!m || strcmp(m->f, "migrate") != 0 || m->st != OP_OK)
			continue;
		bool overtaken = false;
		for (size_t i = 0; i < e->v.n && !overtaken; i++) {
			struct op *o = e->v.v[i];
			overtaken = o != m && strcmp(o->f, "read") != 0 && o->st != OP_FAIL && o->t1 >= m->t0;
		}
		struct vec *av = mm_at(&c->ref_actor, e->key, false);
		json_int_t replicas = 0, inst = -1;
		if (overtaken || !av || !jint(av->v[0], "replicas", &replicas))
			continue;
		if (!jint(json_object_get(m->inv, "value"), "instance", &inst))
			jint(json_object_get(m->cmp, "value"), "instance", &inst);
		for (json_int_t i = inst >= 0 ? inst : 0; i < (inst >= 0 ? inst + 1 : replicas); i++) {
			struct vec on = {0};
			for (size_t j = 0; j < na; j++)
				if (check_agent_runs(c, names[j], e->key, i))
					vec_push(&on, (void *)names[j]);
			char pk[512];
			snprintf(pk, sizeof(pk), "%s\x1f%lld", e->key, (long long)i);
			struct vec *pv = mm_at(&c->ref_pl, pk, false);
			const char *pnode = pv ? jstr(pv->v[0], "node_id") : NULL;
			checked++;
			/* on none: only when it should run (a live node holds it); a dead
			 * node's instance is the failover check's */
			if (on.n == 1 || (on.n == 0 && !check_live_node(c, pnode))) {
				free(on.v);
				continue;
			}
			char list[256] = "";
			json_t *nodes = json_array();
			for (size_t j = 0; j < on.n; j++) {
				size_t l = strlen(list);
				snprintf(list + l, sizeof(list) - l, "%s%s", j ? ", " : "", (const char *)on.v[j]);
				json_array_append_new(nodes, json_string(on.v[j]));
			}
			struct vec ev = {0};
			ev_op(&ev, m);
			for (size_t j = 0; j < on.n; j++)
				ev_applied(c, &ev, on.v[j], e->key, i);
			const char *target = jstr(json_object_get(m->cmp, "value"), "target_node");
			if (on.n == 0)
				check_violation(c, "migration", e->key, json_pack("{s:I, s:o}", "instance", (json_int_t)i, "nodes", nodes),
						&ev,
						"after the migration acknowledged at t=%" PRId64 "%s%s, instance %lld runs on no agent"
						" (its placement is on %s)",
						m->t1, target ? " to " : "", target ? target : "", (long long)i, pnode);
			else
				check_violation(c, "migration", e->key, json_pack("{s:I, s:o}", "instance", (json_int_t)i, "nodes", nodes),
						&ev,
						"after the migration acknowledged at t=%" PRId64 "%s%s, instance %lld runs on %zu agents: %s",
						m->t1, target ? " to " : "", target ? target : "", (long long)i, on.n, list);
			free(ev.v);
			free(on.v);
		}
	}
	free(names);
	check_done(c, "migration", checked, NULL);
}

/* ---- stale_read ----------------------------------------------------------- */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

/* jansson has no sort: the array's items, sorted by a copy */
static void json_array_sort_strings(json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = malloc((n ? n : 1) * sizeof(*v));
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		v[i] = json_incref(json_array_get(arr, i));
	qsort(v, n, sizeof(*v), str_cmp);
	json_array_clear(arr);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, v[i]);
	free(v);
}

static void value_text(int64_t v, char *buf, size_t len)
{
	if (v == LINEAR_ABSENT)
		snprintf(buf, len, "no actor");
	else
		snprintf(buf, len, "replicas %" PRId64, v);
}

static void check_stale_read(struct ctx *c, uint64_t budget)
{
	size_t checked = 0, unknown = 0, pos = 0;
	struct mm_ent *e;
	json_t *unknown_keys = json_array();
	struct linear_op *lops = NULL;
	struct op **lsrc = NULL;
	size_t cap = 0;
	while ((e = hmap_next(&c->bykey.h, &pos))) {
		if (e->v.n > cap) {
			cap = e->v.n;
			free(lops);
			free(lsrc);
			lops = malloc(cap * sizeof(*lops));
			lsrc = malloc(cap * sizeof(*lsrc));
			if (!lops || !lsrc) {
				c->oom = 1;
				break;
			}
		}
		size_t n = 0, reads = 0;
		for (size_t i = 0; i < e->v.n; i++) {
			struct op *o = e->v.v[i];
			struct linear_op *l = &lops[n];
			json_int_t r;
			if (o->st == OP_FAIL)
				continue;
			l->call = o->t0;
			l->ret = o->st == OP_INFO ? LINEAR_PENDING : o->t1;
			if (strcmp(o->f, "read") == 0) {
				if (o->st != OP_OK)
					continue;
				json_t *v = json_object_get(o->cmp, "value");
				l->kind = LINEAR_READ;
				if (json_is_null(v) || !v)
					l->value = LINEAR_ABSENT;
				else if (jint(v, "replicas", &r))
					l->value = r;
				else
					continue;
				reads++;
			} else if (strcmp(o->f, "delete") == 0) {
				l->kind = LINEAR_WRITE;
				l->value = LINEAR_ABSENT;
			} else if ((strcmp(o->f, "create") == 0 || strcmp(o->f, "scale") == 0) && op_replicas(o, &r)) {
				l->kind = LINEAR_WRITE;
				l->value = r;
			} else
				continue;
			lsrc[n++] = o;
		}
		if (reads == 0)
			continue;
		checked++;
		struct linear_outcome out;
		if (linear_check(lops, n, LINEAR_ABSENT, budget, &out) != 0) {
			c->oom = 1;
			break;
		}
		if (out.result == LINEAR_UNKNOWN) {
			unknown++;
			if (json_array_size(unknown_keys) < 100)
				json_array_append_new(unknown_keys, json_string(e->key));
			continue;
		}
		if (out.result != LINEAR_VIOLATION)
			continue;
		struct op *bad = lsrc[out.stuck];
		struct vec ev = {0};
		ev_op(&ev, bad);
		/* the writes that show it: the last one done before it started, those
		 * concurrent with it, and the last one of the value it read */
		struct op *before = NULL, *source = NULL;
		for (size_t i = 0; i < n; i++) {
			struct op *o = lsrc[i];
			if (lops[i].kind != LINEAR_WRITE)
				continue;
			if (o->st == OP_OK && o->t1 < bad->t0 && (!before || o->t1 > before->t1))
				before = o;
			if (o->t0 <= bad->t1 && (o->st == OP_INFO || o->t1 >= bad->t0))
				ev_op(&ev, o);
			if (lops[i].value == lops[out.stuck].value && o->t0 <= bad->t1)
				source = o;
		}
		if (before)
			ev_op(&ev, before);
		if (source)
			ev_op(&ev, source);
		char got[64], prev[320] = "";
		value_text(lops[out.stuck].value, got, sizeof(got));
		if (before) {
			char what[128];
			describe_write(before, what, sizeof(what));
			snprintf(prev, sizeof(prev), "; the last write done before it started: %s, acknowledged at t=%" PRId64,
				 what, before->t1);
		}
		if (lops[out.stuck].kind == LINEAR_READ)
			check_violation(c, "stale_read", e->key, NULL, &ev,
					"consistent read (t=%" PRId64 "..%" PRId64 ") returned %s, which no order of the writes"
					" explains%s",
					bad->t0, bad->t1, got, prev);
		else
			check_violation(c, "stale_read", e->key, NULL, &ev,
					"the reads of %s are not linearizable: no order fits the %s at t=%" PRId64 "..%" PRId64,
					e->key, bad->f, bad->t0, bad->t1);
		free(ev.v);
	}
	free(lops);
	free(lsrc);
	json_array_sort_strings(unknown_keys);
	check_done(c, "stale_read", checked,
		   json_pack("{s:I, s:o}", "unknown", (json_int_t)unknown, "unknown_keys", unknown_keys));
}

/* ---- the run -------------------------------------------------------------- */

static void ctx_free(struct ctx *c)
{
	free(c->ops);
	mm_free(&c->bykey);
	mm_free(&c->node_ln);
	mm_free(&c->cmd_ln);
	free(c->policy_ops.v);
	mm_free(&c->dead);
	free(c->live.v);
	mm_free(&c->ref_actor);
	mm_free(&c->ref_pl);
	mm_free(&c->ref_pl_node);
	mm_free(&c->ref_fo_node);
	for (size_t i = 0; i < c->viol.n; i++)
		json_decref(c->viol.v[i]);
	free(c->viol.v);
	json_decref(c->violations);
	json_decref(c->checks);
}

int check_run(json_t *history, json_t *final, json_t **out, char *err, size_t errlen)
{
	struct ctx c = {.history = history, .final = final, .err = err, .errlen = errlen};
	if (!json_is_array(history)) {
		snprintf(err, errlen, "the history must be an array of lines");
		return -1;
	}
	c.violations = json_array();
	c.checks = json_object();
	if (!c.violations || !c.checks || read_history(&c) != 0 || read_final(&c) != 0) {
		if (c.oom)
			snprintf(err, errlen, "out of memory");
		ctx_free(&c);
		return -1;
	}
	/* docs/chaos.md's order */
	check_lost_write(&c);
	check_replicas_differ(&c);
	check_failover(&c);
	check_migration(&c);
	check_stuck_command(&c);
	check_double_apply(&c);
	check_policy_behind(&c);
	check_stale_read(&c, 0);
	check_agent_state(&c);
	if (c.live.n == 0) {
		/* said, not passed in silence */
		static const char *const db_checks[] = {"lost_write",    "replicas_differ", "failover",   "migration",
							"stuck_command", "policy_behind",   "agent_state"};
		for (size_t i = 0; i < sizeof(db_checks) / sizeof(db_checks[0]); i++)
			json_object_set_new(json_object_get(c.checks, db_checks[i]), "skipped",
					    json_string("no live replica in final.json"));
	}
	json_t *res = c.oom ? NULL : json_pack("{s:O, s:O}", "violations", c.violations, "checks", c.checks);
	ctx_free(&c);
	if (!res) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*out = res;
	return 0;
}

int check_dir(const char *dir, size_t *n_violations, char *err, size_t errlen)
{
	char path[4096];
	json_t *hist = NULL, *final = NULL, *res = NULL;
	json_error_t je;
	int rc = -1;
	snprintf(path, sizeof(path), "%s/history.jsonl", dir);
	if (hist_load(path, &hist, err, errlen) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/final.json", dir);
	if (!(final = json_load_file(path, 0, &je))) {
		snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
		goto out;
	}
	if (check_run(hist, final, &res, err, errlen) != 0)
		goto out;
	snprintf(path, sizeof(path), "%s/violations.json", dir);
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* whole or not at all: a reader never sees half a file */
	if (json_dump_file(res, tmp, JSON_INDENT(1)) != 0 || rename(tmp, path) != 0) {
		snprintf(err, errlen, "%s: cannot write it: %s", path, strerror(errno));
		remove(tmp);
		goto out;
	}
	json_t *vs = json_object_get(res, "violations"), *v;
	size_t i;
	json_array_foreach(vs, i, v) printf("%s %s: %s\n", jstr(v, "check"), jstr(v, "key"), jstr(v, "message"));
	fflush(stdout);
	*n_violations = json_array_size(vs);
	rc = 0;
out:
	json_decref(hist);
	json_decref(final);
	json_decref(res);
	return rc;
}
