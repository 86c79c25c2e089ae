/* test_model — the replicated state machine: model_apply of every entry op (what it
 * changes, what it refuses, and that a refusal changes nothing), the projection
 * rows and events it emits, determinism over a random log, and snapshot/restore.
 *
 * Entries are written as JSON text (single quotes stand for double quotes) and go
 * through entry_decode, as they do when a replica applies its log. Plans are made
 * the way the leader makes them: sched_place on the model, before the entry; a
 * plan the model no longer fits is refused with APPLY_STALE (the leader re-plans).
 *
 * LATTICE_TEST_SEED=<n> runs the random log with another seed. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "model.h"
#include "policy.h"
#include "proj.h"
#include "sched.h"
#include "tap.h"

#define MODULE "'module':'ghcr.io/lattice/echo:1'"

static int64_t clock_ms = 1700000000000LL;
static struct apply_result R; /* result of the last apply */

/* ---- entries as text ------------------------------------------------------ */

/* Single quotes -> double quotes, in place. */
static char *dq(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '\'')
			*p = '"';
	return s;
}

static char *vfmt(const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	char *s = malloc((size_t)n + 1);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

__attribute__((format(printf, 1, 2))) static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vfmt(f, ap);
	va_end(ap);
	return s;
}

/* A whole entry (malloc'd, double-quoted) around body ("'op':'...', ..."). */
static char *wrap(const char *body)
{
	clock_ms += 1000;
	char *s = fmt("{'v':1,'at':%lld,'who':'test',%s}", (long long)clock_ms, body);
	return dq(s);
}

/* Decodes an entry and applies it; b's index is the log index (0 without b).
 * Returns the apply code, or -1 when the text does not decode. */
static int apply_text(struct model *m, struct proj_batch *b, const char *text)
{
	struct entry e;
	char err[256];
	if (entry_decode(text, strlen(text), &e, err, sizeof(err)) != 0) {
		tap_diag("entry does not decode: %s: %s", err, text);
		memset(&R, 0, sizeof(R));
		R.code = (enum apply_code)-1;
		return -1;
	}
	model_apply(m, &e, b ? b->index : 0, b, &R);
	entry_release(&e);
	return (int)R.code;
}

__attribute__((format(printf, 3, 4))) static int apply_j(struct model *m, struct proj_batch *b,
							  const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *body = vfmt(f, ap);
	va_end(ap);
	char *text = wrap(body);
	int rc = apply_text(m, b, text);
	free(body);
	free(text);
	return rc;
}

static int put_node(struct model *m, struct proj_batch *b, int flag, const char *id, const char *region,
		    int64_t cap, int64_t mem, int64_t cpu_used, int64_t mem_used, int64_t actors)
{
	return apply_j(m, b,
		       "'op':'node_put','flag':%d,'node':{'id':'%s','region':'%s','cpu_capacity':%lld,"
		       "'memory_mb':%lld,'cpu_used':%lld,'memory_used_mb':%lld,'actor_count':%lld}",
		       flag, id, region, (long long)cap, (long long)mem, (long long)cpu_used,
		       (long long)mem_used, (long long)actors);
}

static int node_flag(struct model *m, struct proj_batch *b, const char *id, int flag)
{
	return apply_j(m, b, "'op':'node_flags','target':'%s','flag':%d", id, flag);
}

/* ---- plans, as the leader makes them -------------------------------------- */

static void list_add(char *list, size_t len, const char *id)
{
	size_t n = strlen(list);
	snprintf(list + n, len - n, "%s'%s'", n ? "," : "", id);
}

/* Plans every replica of the actor (text without braces) with sched_place; on
 * SCHED_OK writes "'n1','n2'" to list and the new round-robin cursor ("" when
 * unchanged) to cursor. */
static int plan_actor(struct model *m, const char *fields, char *list, size_t len, char *cursor)
{
	char *t = dq(fmt("{%s}", fields));
	json_error_t je;
	json_t *j = json_loads(t, 0, &je);
	struct actor_spec s;
	struct spec_err se;
	list[0] = cursor[0] = '\0';
	if (j == NULL || spec_actor_from_json(j, &s, &se) != 0) {
		tap_diag("bad actor in test: %s", t);
		json_decref(j);
		free(t);
		return -1;
	}
	struct sched_request req = {.actor_id = s.id,
				    .cpu_required = s.cpu_required,
				    .memory_required_mb = s.memory_required_mb,
				    .preferred_region = s.preferred_region,
				    .constraints = &s.constraints,
				    .contracts = &s.contracts,
				    .strategy = s.strategy,
				    .count = s.replicas};
	struct sched_choice *ch = calloc((size_t)s.replicas, sizeof(*ch));
	int rc = sched_place(m, &req, ch, cursor);
	for (int64_t i = 0; rc == SCHED_OK && i < s.replicas; i++)
		list_add(list, len, ch[i].node->spec.id);
	free(ch);
	spec_actor_free(&s);
	json_decref(j);
	free(t);
	return rc;
}

/* Plans the replicas an update adds (none when it does not add). */
static int plan_update(struct model *m, const struct model_actor *a, const struct actor_patch *p, char *list,
		       size_t len, char *cursor)
{
	int64_t nrep = p->has_replicas ? p->replicas : (int64_t)a->nplacements;
	int64_t add = nrep - (int64_t)a->nplacements;
	list[0] = cursor[0] = '\0';
	if (add <= 0)
		return SCHED_OK;
	struct strlist c;
	if (model_actor_contracts(m, a, &c) != 0)
		return SCHED_NOMEM;
	struct model_node **hold = calloc(a->nplacements + 1, sizeof(*hold));
	for (size_t i = 0; i < a->nplacements; i++)
		hold[i] = a->placements[i].node;
	struct sched_request req = {.actor_id = a->spec.id,
				    .cpu_required = p->has_cpu_required ? p->cpu_required : a->spec.cpu_required,
				    .memory_required_mb = p->has_memory_required_mb ? p->memory_required_mb
										   : a->spec.memory_required_mb,
				    .preferred_region = a->spec.preferred_region,
				    .constraints = &a->spec.constraints,
				    .contracts = &c,
				    .strategy = a->spec.strategy,
				    .count = add,
				    .holding = hold,
				    .nholding = a->nplacements};
	struct sched_choice *ch = calloc((size_t)add, sizeof(*ch));
	int rc = sched_place(m, &req, ch, cursor);
	for (int64_t i = 0; rc == SCHED_OK && i < add; i++)
		list_add(list, len, ch[i].node->spec.id);
	free(ch);
	free(hold);
	strlist_free(&c);
	return rc;
}

static int cmp_actor_ptr(const void *x, const void *y)
{
	const struct model_actor *a = *(struct model_actor *const *)x, *b = *(struct model_actor *const *)y;
	return strcmp(a->spec.id, b->spec.id);
}

/* Plans a drain of n: each replica on it goes where placement would put it with n
 * cordoned, earlier moves counted. Writes "{move},{move}" to moves; returns the
 * number of replicas that found no target (they are left out). The model is as it
 * was afterwards. */
static int plan_drain(struct model *m, struct model_node *n, char *moves, size_t len)
{
	struct undo {
		struct model_node *node;
		int64_t cpu, mem;
	};
	moves[0] = '\0';
	size_t na = m->actors.n, k = 0, nundo = 0, cap_undo = 0;
	struct model_actor **as = calloc(na + 1, sizeof(*as));
	size_t pos = 0;
	struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL)
		as[k++] = a;
	qsort(as, k, sizeof(*as), cmp_actor_ptr);
	for (size_t i = 0; i < k; i++)
		cap_undo += as[i]->nplacements;
	struct undo *undo = calloc(cap_undo + 1, sizeof(*undo));
	bool was = n->cordoned;
	n->cordoned = true;
	sched_index_update(&m->sched, n);
	int missing = 0;
	for (size_t i = 0; i < k; i++) {
		a = as[i];
		struct model_node **hold = calloc(a->nplacements + 1, sizeof(*hold));
		size_t nh = 0;
		for (size_t r = 0; r < a->nplacements; r++)
			if (a->placements[r].node != n)
				hold[nh++] = a->placements[r].node;
		for (size_t r = 0; r < a->nplacements; r++) {
			if (a->placements[r].node != n)
				continue;
			struct strlist c;
			model_actor_contracts(m, a, &c);
			struct sched_request req = {.actor_id = a->spec.id,
						    .cpu_required = a->spec.cpu_required,
						    .memory_required_mb = a->spec.memory_required_mb,
						    .preferred_region = a->spec.preferred_region,
						    .constraints = &a->spec.constraints,
						    .contracts = &c,
						    .strategy = a->spec.strategy,
						    .count = 1,
						    .holding = hold,
						    .nholding = nh};
			struct sched_choice ch;
			int rc = sched_place(m, &req, &ch, NULL);
			strlist_free(&c);
			if (rc != SCHED_OK) {
				missing++;
				continue;
			}
			size_t l = strlen(moves);
			snprintf(moves + l, len - l, "%s{'actor_id':'%s','instance':%zu,'to_node':'%s'}",
				 l ? "," : "", a->spec.id, r, ch.node->spec.id);
			model_node_account(m, ch.node, a->spec.cpu_required, a->spec.memory_required_mb, +1);
			undo[nundo++] = (struct undo){ch.node, a->spec.cpu_required, a->spec.memory_required_mb};
			hold[nh++] = ch.node;
		}
		free(hold);
	}
	while (nundo-- > 0)
		model_node_account(m, undo[nundo].node, undo[nundo].cpu, undo[nundo].mem, -1);
	n->cordoned = was;
	sched_index_update(&m->sched, n);
	free(undo);
	free(as);
	return missing;
}

static char planned[1024]; /* the last plan's node list */

/* Creates an actor planned by sched_place. Returns the apply code, -2 when no plan. */
static int create_planned(struct model *m, struct proj_batch *b, const char *id, const char *fields)
{
	char *all = fmt("'id':'%s'," MODULE ",%s", id, fields);
	char cursor[SPEC_ID_MAX + 1];
	int rc = plan_actor(m, all, planned, sizeof(planned), cursor);
	if (rc != SCHED_OK) {
		tap_diag("no plan for actor %s (sched rc %d)", id, rc);
		free(all);
		return -2;
	}
	char *cur = cursor[0] ? fmt(",'rr_cursor':'%s'", cursor) : fmt("%s", "");
	rc = apply_j(m, b, "'op':'actor_create','actor':{%s},'placements':[%s]%s", all, planned, cur);
	free(cur);
	free(all);
	return rc;
}

/* Creates an actor on the given nodes ("'n1','n2'"). */
static int create_on(struct model *m, struct proj_batch *b, const char *id, const char *fields, const char *nodes)
{
	return apply_j(m, b, "'op':'actor_create','actor':{'id':'%s'," MODULE ",%s},'placements':[%s]", id, fields,
		       nodes);
}

static int update_planned(struct model *m, struct proj_batch *b, const char *id, const char *patch)
{
	char *t = dq(fmt("{%s}", patch));
	json_t *j = json_loads(t, 0, NULL);
	struct actor_patch p;
	struct spec_err se;
	struct model_actor *a = model_actor_get(m, id);
	int rc = -2;
	char cursor[SPEC_ID_MAX + 1];
	if (j == NULL || spec_actor_patch_from_json(j, &p, &se) != 0 || a == NULL)
		tap_diag("bad update in test: %s %s", id, t);
	else if ((rc = plan_update(m, a, &p, planned, sizeof(planned), cursor)) != SCHED_OK) {
		tap_diag("no plan for update of %s (sched rc %d)", id, rc);
		rc = -2;
	} else
		rc = apply_j(m, b, "'op':'actor_update','target':'%s','patch':{%s},'placements':[%s]", id, patch,
			     planned);
	json_decref(j);
	free(t);
	return rc;
}

static int update_on(struct model *m, struct proj_batch *b, const char *id, const char *patch, const char *nodes)
{
	return apply_j(m, b, "'op':'actor_update','target':'%s','patch':{%s},'placements':[%s]", id, patch, nodes);
}

static int drain_planned(struct model *m, struct proj_batch *b, const char *id)
{
	char moves[4096];
	struct model_node *n = model_node_get(m, id);
	if (n == NULL || plan_drain(m, n, moves, sizeof(moves)) != 0) {
		tap_diag("no drain plan for %s", id);
		return -2;
	}
	return apply_j(m, b, "'op':'node_drain','target':'%s','moves':[%s]", id, moves);
}

/* moves: the move objects as JSON text (see MV below). */
static int drain_on(struct model *m, struct proj_batch *b, const char *id, const char *moves)
{
	return apply_j(m, b, "'op':'node_drain','target':'%s','moves':[%s]", id, moves);
}

/* ---- looking at the model ------------------------------------------------- */

static const char *const kind_names[PROJ_KIND_COUNT] = {
	[PROJ_NODE_UPSERT] = "node_upsert",	  [PROJ_NODE_DELETE] = "node_delete",
	[PROJ_ACTOR_UPSERT] = "actor_upsert",	  [PROJ_ACTOR_DELETE] = "actor_delete",
	[PROJ_PLACEMENTS_SET] = "placements_set", [PROJ_PROVIDER_UPSERT] = "provider_upsert",
	[PROJ_PROVIDER_DELETE] = "provider_delete", [PROJ_LINK_UPSERT] = "link_upsert",
	[PROJ_LINK_DELETE] = "link_delete",	  [PROJ_POLICY_INSERT] = "policy_insert",
	[PROJ_EVENT_INSERT] = "event_insert",	  [PROJ_RESET] = "reset",
};

/* "node_upsert,event_insert" — the batch's kinds in order. */
static const char *kinds(const struct proj_batch *b)
{
	static char buf[2048];
	buf[0] = '\0';
	for (const struct proj_change *c = b->head; c; c = c->next) {
		size_t n = strlen(buf);
		snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "," : "", kind_names[c->kind]);
	}
	return buf;
}

static const struct proj_change *find_kind(const struct proj_batch *b, enum proj_kind k)
{
	for (const struct proj_change *c = b->head; c; c = c->next)
		if (c->kind == k)
			return c;
	return NULL;
}

/* Parameter i of the batch's event ("" when there is none). */
static const char *ev(const struct proj_batch *b, int i)
{
	const struct proj_change *c = find_kind(b, PROJ_EVENT_INSERT);
	return c && i < c->nparams && c->params[i] ? c->params[i] : "";
}

/* A new batch for the next log index. */
static uint64_t next_index;
static struct proj_batch *batch(struct proj_batch **b)
{
	proj_batch_free(*b);
	*b = proj_batch_new(++next_index);
	return *b;
}

static const char *snap_key(const json_t *o)
{
	const json_t *s = json_object_get(o, "spec");
	const char *k = json_string_value(json_object_get(s, "id"));
	if (k == NULL)
		k = json_string_value(json_object_get(s, "policy_id"));
	return k ? k : "";
}

static int cmp_snap(const void *x, const void *y)
{
	return strcmp(snap_key(*(json_t *const *)x), snap_key(*(json_t *const *)y));
}

/* Sorts the snapshot's object arrays by id (hmap order is unspecified). */
static void canon(json_t *snap)
{
	static const char *const keys[] = {"nodes", "actors", "providers", "links", "policies"};
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		json_t *arr = json_object_get(snap, keys[k]);
		size_t n = json_array_size(arr);
		json_t **v = calloc(n + 1, sizeof(*v));
		for (size_t i = 0; i < n; i++)
			v[i] = json_incref(json_array_get(arr, i));
		json_array_clear(arr);
		qsort(v, n, sizeof(*v), cmp_snap);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, v[i]);
		free(v);
	}
}

/* Everything the model holds, canonical: the snapshot (sorted) plus what it does
 * not store — accounted usage, placement counts, index state, covering policies. */
static char *dump(const struct model *m)
{
	json_t *s = model_snapshot(m);
	if (s == NULL)
		return strdup("(no snapshot)");
	canon(s);
	json_t *acct = json_object();
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		json_t *pols = json_array();
		for (size_t i = 0; i < n->npolicies; i++)
			json_array_append_new(pols, json_string(n->policies[i]->spec.policy_id));
		json_object_set_new(acct, n->spec.id,
				    json_pack("{s:I,s:I,s:I,s:I,s:b,s:I,s:o}", "cpu_used", (json_int_t)n->cpu_used,
					      "memory_used_mb", (json_int_t)n->memory_used_mb, "actor_count",
					      (json_int_t)n->actor_count, "nplacements", (json_int_t)n->nplacements,
					      "indexed", n->sched.indexed, "score",
					      (json_int_t)(n->sched.indexed ? n->sched.score : -2), "policies", pols));
	}
	json_object_set_new(s, "accounting", acct);
	json_object_set_new(s, "index", json_pack("{s:I,s:I}", "by_id", (json_int_t)m->sched.by_id.n, "all",
						  (json_int_t)m->sched.all.n));
	char *t = json_dumps(s, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(s);
	return t;
}

/* ok() that two dumps are equal, showing where they differ. */
static void same_state(const char *want, const struct model *m, const char *name)
{
	char *got = dump(m);
	size_t i = 0;
	while (want[i] && want[i] == got[i])
		i++;
	if (!ok(want[i] == got[i], "%s", name)) {
		size_t from = i > 60 ? i - 60 : 0;
		tap_diag("  differs at %zu: want ...%.140s", i, want + from);
		tap_diag("                     got  ...%.140s", got + from);
	}
	free(got);
}

static bool node_in_model(const struct model *m, const struct model_node *p)
{
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL)
		if (n == p)
			return true;
	return false;
}

/* The model's own bookkeeping against a recount from scratch. Returns true when
 * consistent; otherwise writes what is wrong to why. */
static bool invariants(const struct model *m, char *why, size_t len)
{
	size_t pos = 0, indexed = 0, scored = 0;
	struct model_actor *a;
	struct model_node *n;
	why[0] = '\0';
	while ((a = hmap_next(&m->actors, &pos)) != NULL) {
		if ((int64_t)a->nplacements != a->spec.replicas) {
			snprintf(why, len, "actor %s: %zu placements, %lld replicas", a->spec.id, a->nplacements,
				 (long long)a->spec.replicas);
			return false;
		}
		for (size_t i = 0; i < a->nplacements; i++)
			if (!node_in_model(m, a->placements[i].node)) {
				snprintf(why, len, "actor %s: placement %zu on a node not in the model", a->spec.id,
					 i);
				return false;
			}
	}
	pos = 0;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		int64_t cpu = n->spec.cpu_used, mem = n->spec.memory_used_mb, cnt = n->spec.actor_count, np = 0;
		size_t apos = 0;
		while ((a = hmap_next(&m->actors, &apos)) != NULL)
			for (size_t i = 0; i < a->nplacements; i++)
				if (a->placements[i].node == n) {
					cpu += a->spec.cpu_required;
					mem += a->spec.memory_required_mb;
					cnt++;
					np++;
				}
		if (n->cpu_used != cpu || n->memory_used_mb != mem || n->actor_count != cnt || n->nplacements != np) {
			snprintf(why, len,
				 "node %s: accounted cpu %lld mem %lld count %lld placements %lld, recount %lld %lld "
				 "%lld %lld",
				 n->spec.id, (long long)n->cpu_used, (long long)n->memory_used_mb,
				 (long long)n->actor_count, (long long)n->nplacements, (long long)cpu, (long long)mem,
				 (long long)cnt, (long long)np);
			return false;
		}
		bool sched = n->status == NODE_HEALTHY && !n->cordoned && !n->draining;
		if (n->sched.indexed != sched) {
			snprintf(why, len, "node %s: indexed %d, schedulable %d", n->spec.id, n->sched.indexed, sched);
			return false;
		}
		indexed += sched;
		bool known = n->spec.cpu_capacity > 0 && n->spec.memory_mb > 0;
		if (sched && known) {
			scored++;
			if (n->sched.score != sched_score(n)) {
				snprintf(why, len, "node %s: filed with score %lld, score is %lld", n->spec.id,
					 (long long)n->sched.score, (long long)sched_score(n));
				return false;
			}
		}
		size_t cover = 0, ppos = 0;
		struct model_policy *p;
		while ((p = hmap_next(&m->policies, &ppos)) != NULL)
			cover += policy_covers(&p->spec, n->spec.region, &n->spec.labels);
		if (cover != n->npolicies) {
			snprintf(why, len, "node %s: %zu covering policies, %zu listed", n->spec.id, cover,
				 n->npolicies);
			return false;
		}
	}
	if (indexed != m->sched.by_id.n || scored != m->sched.all.n) {
		snprintf(why, len, "index holds %zu/%zu nodes, %zu/%zu expected", m->sched.by_id.n, m->sched.all.n,
			 indexed, scored);
		return false;
	}
	pos = 0;
	struct model_link *l;
	while ((l = hmap_next(&m->links, &pos)) != NULL) {
		struct model_provider *p = hmap_get(&m->providers, l->spec.provider_id);
		if (model_actor_get(m, l->spec.actor_id) == NULL || p == NULL ||
		    strcmp(p->spec.contract_id, l->spec.contract_id) != 0) {
			snprintf(why, len, "link %s: dangling or wrong contract", l->spec.id);
			return false;
		}
	}
	return true;
}

static void check_invariants(const struct model *m, const char *name)
{
	char why[512];
	if (!ok(invariants(m, why, sizeof(why)), "%s", name))
		tap_diag("  %s", why);
}

static bool contains(const char *s, const char *sub)
{
	return s && sub && strstr(s, sub) != NULL;
}

/* n1, n2 in eu (n2 with base load), n3 in us (smaller). */
static void base_nodes(struct model *m)
{
	put_node(m, NULL, 0, "n1", "eu", 4000, 8192, 0, 0, 0);
	put_node(m, NULL, 0, "n2", "eu", 4000, 8192, 1000, 2048, 1);
	put_node(m, NULL, 0, "n3", "us", 2000, 4096, 0, 0, 0);
}

/* ---- node put ------------------------------------------------------------- */

static void test_node_put(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);

	is_int(put_node(&m, batch(&b), 0, "n1", "eu", 4000, 8192, 1200, 1000, 2), APPLY_OK, "node put: created");
	struct model_node *n = model_node_get(&m, "n1");
	ok(n != NULL, "node put: node is in the model");
	if (n == NULL) {
		proj_batch_free(b);
		model_release(&m);
		return;
	}
	ok(n->cpu_used == 1200 && n->memory_used_mb == 1000 && n->actor_count == 2 && n->nplacements == 0,
	   "node put: accounted usage = base (cpu %lld mem %lld count %lld)", (long long)n->cpu_used,
	   (long long)n->memory_used_mb, (long long)n->actor_count);
	ok(n->status == NODE_HEALTHY && !n->cordoned && !n->draining && n->generation == 1 &&
		   n->cpu_measured == -1 && n->created_ms == clock_ms,
	   "node put: healthy, schedulable, generation 1, measured unknown, created at the entry's time");
	is_str(kinds(b), "node_upsert,event_insert", "node put: rows emitted");
	ok(strcmp(ev(b, 0), "1") == 0 && strcmp(ev(b, 1), "1") == 0 && strcmp(ev(b, 3), "test") == 0 &&
		   strcmp(ev(b, 4), "node.registered") == 0 && strcmp(ev(b, 6), "n1") == 0,
	   "node put: event seq 1, raft index 1, who, kind node.registered, object n1");
	is_int(m.event_seq, 1, "node put: event_seq 1");

	char *before = dump(&m);
	is_int(put_node(&m, batch(&b), 0, "n1", "us", 8000, 16384, 0, 0, 0), APPLY_EXISTS,
	       "node put again without flag 1: APPLY_EXISTS");
	ok(b->n == 0 && m.event_seq == 1, "node put again: no rows, no event");
	same_state(before, &m, "node put again: nothing changed");
	free(before);

	is_int(create_on(&m, NULL, "a1", "'cpu_required':500,'memory_required_mb':256", "'n1'"), APPLY_OK,
	       "an actor on n1");
	ok(n->cpu_used == 1700 && n->memory_used_mb == 1256 && n->actor_count == 3 && n->nplacements == 1,
	   "seed example: 500 millicores on a node with base 1200 leaves it at 1700 (cpu %lld)",
	   (long long)n->cpu_used);

	uint64_t gen = n->generation;
	is_int(apply_j(&m, batch(&b),
		       "'op':'node_put','flag':1,'node':{'id':'n1','region':'eu','labels':{'tier':'edge'},"
		       "'cpu_capacity':6000,'memory_mb':8192,'cpu_used':1000,'memory_used_mb':500}"),
	       APPLY_OK, "node put with flag 1: updated");
	ok(n == model_node_get(&m, "n1") && n->spec.cpu_used == 1000 && n->spec.cpu_capacity == 6000 &&
		   n->spec.actor_count == 0 && contains(kvlist_get(&n->spec.labels, "tier"), "edge"),
	   "node update: new spec (base, capacity, labels) in place");
	ok(n->cpu_used == 1500 && n->memory_used_mb == 756 && n->actor_count == 1 && n->nplacements == 1,
	   "node update: accounted = new base + placements (cpu %lld mem %lld count %lld)", (long long)n->cpu_used,
	   (long long)n->memory_used_mb, (long long)n->actor_count);
	struct model_actor *a = model_actor_get(&m, "a1");
	ok(a && a->nplacements == 1 && a->placements[0].node == n, "node update: the placement stays on the node");
	ok(n->generation > gen && n->updated_ms == clock_ms, "node update: generation bumped, updated_ms set");
	ok(n->sched.indexed && n->sched.score == 1500 * 100 / 6000 + 756 * 100 / 8192 + 1,
	   "node update: re-filed in the index with its new score (%lld)", (long long)n->sched.score);
	is_str(kinds(b), "node_upsert,event_insert", "node update: rows emitted");
	is_str(ev(b, 4), "node.updated", "node update: event kind");

	/* A region change re-files the node: placement preferring the new region finds it. */
	put_node(&m, NULL, 0, "n9", "eu", 4000, 8192, 0, 0, 0);
	is_int(put_node(&m, NULL, 1, "n1", "us", 6000, 8192, 1000, 500, 0), APPLY_OK, "node moved to region us");
	char list[256], cur[SPEC_ID_MAX + 1];
	plan_actor(&m, "'id':'x'," MODULE ",'cpu_required':100,'memory_required_mb':64,'preferred_region':'us'",
		   list, sizeof(list), cur);
	is_str(list, "'n1'", "after the region change, placement preferring us picks n1");
	is_int(put_node(&m, NULL, 1, "n5", "eu", 1000, 1024, 0, 0, 0), APPLY_OK,
	       "node put with flag 1 of a new id registers it");
	ok(model_node_get(&m, "n5") != NULL, "node put with flag 1: the node exists");
	check_invariants(&m, "node put: accounting and index consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- cordon, uncordon, delete --------------------------------------------- */

static void test_flags_delete(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	struct model_node *n1 = model_node_get(&m, "n1"), *n2 = model_node_get(&m, "n2");

	is_int(node_flag(&m, batch(&b), "n1", 1), APPLY_OK, "cordon n1");
	ok(n1->cordoned && !n1->draining && !n1->sched.indexed, "cordon: cordoned, out of the index");
	ok(strcmp(kinds(b), "node_upsert,event_insert") == 0 && strcmp(ev(b, 4), "node.cordoned") == 0,
	   "cordon: node row and node.cordoned event");
	is_int(node_flag(&m, batch(&b), "n1", 0), APPLY_OK, "uncordon n1");
	ok(!n1->cordoned && n1->sched.indexed && strcmp(ev(b, 4), "node.uncordoned") == 0,
	   "uncordon: schedulable again, node.uncordoned event");

	is_int(drain_on(&m, NULL, "n2", ""), APPLY_OK, "drain n2 (nothing on it)");
	ok(n2->cordoned && n2->draining && !n2->sched.indexed, "drain: cordoned and draining");
	is_int(node_flag(&m, NULL, "n2", 0), APPLY_OK, "uncordon n2");
	ok(!n2->cordoned && !n2->draining && n2->sched.indexed, "uncordon clears draining too");

	char *before = dump(&m);
	is_int(node_flag(&m, batch(&b), "nx", 1), APPLY_NOT_FOUND, "cordon of an unknown node: APPLY_NOT_FOUND");
	ok(b->n == 0, "cordon of an unknown node: no rows");
	same_state(before, &m, "cordon of an unknown node: nothing changed");
	free(before);

	is_int(create_on(&m, NULL, "a1", "'cpu_required':500,'memory_required_mb':256", "'n1'"), APPLY_OK,
	       "an actor on n1");
	before = dump(&m);
	is_int(apply_j(&m, batch(&b), "'op':'node_delete','target':'n1'"), APPLY_CONFLICT,
	       "delete of a node with placements: APPLY_CONFLICT");
	ok(contains(R.message, "drain"), "delete refused: message says to drain first (%s)", R.message);
	same_state(before, &m, "delete refused: nothing changed");
	free(before);

	is_int(apply_j(&m, batch(&b), "'op':'node_delete','target':'n3'"), APPLY_OK, "delete of an empty node");
	ok(model_node_get(&m, "n3") == NULL && m.nodes.n == 2 && m.sched.by_id.n == 2,
	   "delete: gone from the model and from the index");
	ok(strcmp(kinds(b), "node_delete,event_insert") == 0 && strcmp(ev(b, 4), "node.deleted") == 0,
	   "delete: node_delete row and node.deleted event");
	is_int(apply_j(&m, NULL, "'op':'node_delete','target':'n3'"), APPLY_NOT_FOUND,
	       "delete of a deleted node: APPLY_NOT_FOUND");
	is_int(apply_j(&m, NULL, "'op':'actor_delete','target':'a1'"), APPLY_OK, "delete the actor");
	is_int(apply_j(&m, NULL, "'op':'node_delete','target':'n1'"), APPLY_OK,
	       "delete of n1 once its placements are gone");
	check_invariants(&m, "flags/delete: accounting and index consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- actor create --------------------------------------------------------- */

struct acct {
	int64_t cpu, mem, cnt;
};

static void snap_acct(const struct model *m, const char *const *ids, size_t n, struct acct *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct model_node *nd = model_node_get(m, ids[i]);
		out[i] = nd ? (struct acct){nd->cpu_used, nd->memory_used_mb, nd->actor_count} : (struct acct){0};
	}
}

static void test_actor_create(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	static const char *const ids[] = {"n1", "n2", "n3"};
	struct acct was[3], now[3];
	snap_acct(&m, ids, 3, was);

	is_int(create_planned(&m, batch(&b), "a1", "'cpu_required':500,'memory_required_mb':512,'replicas':2"),
	       APPLY_OK, "actor create with a planned placement per replica");
	struct model_actor *a = model_actor_get(&m, "a1");
	ok(a && a->nplacements == 2 && a->spec.replicas == 2, "actor create: two placements");
	if (a == NULL || a->nplacements != 2) {
		proj_batch_free(b);
		model_release(&m);
		return;
	}
	ok(a->placements[0].node != a->placements[1].node, "actor create: replicas on distinct nodes (%s)",
	   planned);
	ok(a->placements[0].state == PL_PENDING && a->placements[1].state == PL_PENDING,
	   "actor create: placements are pending");
	snap_acct(&m, ids, 3, now);
	bool acct_ok = true;
	for (size_t i = 0; i < 3; i++) {
		int64_t k = 0;
		for (size_t r = 0; r < a->nplacements; r++)
			k += strcmp(a->placements[r].node->spec.id, ids[i]) == 0;
		acct_ok &= now[i].cpu == was[i].cpu + 500 * k && now[i].mem == was[i].mem + 512 * k &&
			   now[i].cnt == was[i].cnt + k;
	}
	ok(acct_ok, "actor create: each planned node's cpu/memory/actor_count grew by the request");
	is_str(kinds(b), "actor_upsert,node_upsert,node_upsert,placements_set,event_insert",
	       "actor create: rows emitted");
	const struct proj_change *pc = find_kind(b, PROJ_PLACEMENTS_SET);
	json_t *pj = pc ? json_loads(pc->params[1], 0, NULL) : NULL;
	ok(pj && json_array_size(pj) == 2 &&
		   strcmp(json_string_value(json_object_get(json_array_get(pj, 1), "state")), "pending") == 0 &&
		   strcmp(json_string_value(json_object_get(json_array_get(pj, 1), "node_id")),
			  a->placements[1].node->spec.id) == 0,
	   "actor create: placements row lists both instances");
	json_decref(pj);
	ok(strcmp(a->spec.name, "a1") == 0 && a->generation == 1 && a->created_ms == clock_ms,
	   "actor create: name defaults to id, generation 1, created at the entry's time");
	is_str(ev(b, 4), "actor.created", "actor create: event kind");

	char *before = dump(&m);
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64,'replicas':2", "'n1'"),
	       APPLY_INVALID, "2 replicas, 1 placement: APPLY_INVALID");
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64,'replicas':2",
			 "'n1','n2','n3'"),
	       APPLY_INVALID, "2 replicas, 3 placements: APPLY_INVALID");
	is_int(create_on(&m, batch(&b), "a1", "'cpu_required':100,'memory_required_mb':64", "'n3'"), APPLY_EXISTS,
	       "create of an existing id: APPLY_EXISTS");
	ok(b->n == 0, "refused create: no rows");
	same_state(before, &m, "refused creates: nothing changed");
	free(before);

	node_flag(&m, NULL, "n3", 1);
	before = dump(&m);
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64", "'n3'"), APPLY_STALE,
	       "planned node cordoned: APPLY_STALE");
	ok(contains(R.message, "plan is out of date"), "cordoned: message says the plan is out of date (%s)",
	   R.message);
	same_state(before, &m, "cordoned: nothing changed");
	free(before);
	node_flag(&m, NULL, "n3", 0);

	struct model_node *n3 = model_node_get(&m, "n3");
	n3->status = NODE_UNHEALTHY; /* as a status entry from the failure detector would */
	sched_index_update(&m.sched, n3);
	before = dump(&m);
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64", "'n3'"), APPLY_STALE,
	       "planned node unhealthy: APPLY_STALE");
	ok(contains(R.message, "plan is out of date"), "unhealthy: message says the plan is out of date");
	same_state(before, &m, "unhealthy: nothing changed");
	free(before);
	n3->status = NODE_HEALTHY;
	sched_index_update(&m.sched, n3);

	before = dump(&m);
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':2500,'memory_required_mb':64", "'n3'"), APPLY_STALE,
	       "planned node without room: APPLY_STALE");
	ok(contains(R.message, "plan is out of date") && contains(R.message, "insufficient cpu"),
	   "full: message says out of date and why (%s)", R.message);
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':1500,'memory_required_mb':64,'replicas':2",
			 "'n3','n3'"),
	       APPLY_STALE, "second replica does not fit where the first did: APPLY_STALE");
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64,'replicas':2",
			 "'n1','nx'"),
	       APPLY_STALE, "planned node gone: APPLY_STALE");
	ok(contains(R.message, "plan is out of date"), "gone: message says the plan is out of date");
	n3->cpu_measured = 2500; /* a heartbeat measured it above capacity */
	is_int(create_on(&m, batch(&b), "a2", "'cpu_required':100,'memory_required_mb':64", "'n3'"), APPLY_STALE,
	       "planned node measured above capacity: APPLY_STALE");
	n3->cpu_measured = -1;
	ok(b->n == 0, "refused create: no rows");
	same_state(before, &m, "refused creates (full, partial, gone): nothing changed, partial rolled back");
	free(before);

	int64_t np3 = n3->nplacements, cpu3 = n3->cpu_used, cnt3 = n3->actor_count;
	is_int(create_on(&m, NULL, "a3", "'cpu_required':100,'memory_required_mb':64,'replicas':2", "'n3','n3'"),
	       APPLY_OK, "two replicas on one node when planned so");
	ok(n3->nplacements == np3 + 2 && n3->cpu_used == cpu3 + 200 && n3->actor_count == cnt3 + 2,
	   "both accounted on n3");
	check_invariants(&m, "actor create: accounting and index consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- actor update --------------------------------------------------------- */

static void test_actor_update(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	struct model_node *n1 = model_node_get(&m, "n1");
	is_int(create_on(&m, NULL, "a1", "'cpu_required':500,'memory_required_mb':512", "'n1'"), APPLY_OK,
	       "a1 on n1");
	struct model_actor *a = model_actor_get(&m, "a1");

	is_int(update_planned(&m, batch(&b), "a1", "'replicas':3"), APPLY_OK, "scale up 1 -> 3 with a plan");
	ok(a->nplacements == 3 && a->spec.replicas == 3 && a->placements[0].node == n1,
	   "scale up: three placements, instance 0 stays on n1");
	ok(a->nplacements == 3 && a->placements[1].state == PL_PENDING && a->placements[2].state == PL_PENDING &&
		   a->placements[1].node != n1 && a->placements[2].node != n1 &&
		   a->placements[1].node != a->placements[2].node,
	   "scale up: new replicas pending, on the planned nodes (%s)", planned);
	is_str(kinds(b), "actor_upsert,node_upsert,node_upsert,node_upsert,placements_set,event_insert",
	       "scale up: rows emitted");
	check_invariants(&m, "scale up: every node accounts its replicas");
	struct model_node *gone1 = a->nplacements == 3 ? a->placements[1].node : NULL;
	struct model_node *gone2 = a->nplacements == 3 ? a->placements[2].node : NULL;

	is_int(update_on(&m, batch(&b), "a1", "'replicas':1", ""), APPLY_OK, "scale down 3 -> 1");
	ok(a->nplacements == 1 && a->spec.replicas == 1 && a->placements[0].node == n1,
	   "scale down: the highest instances go, instance 0 stays");
	ok(gone1 && gone2 && gone1->cpu_used == gone1->spec.cpu_used && gone2->cpu_used == gone2->spec.cpu_used &&
		   gone1->nplacements == 0 && gone2->nplacements == 0 && n1->cpu_used == 500,
	   "scale down: the removed replicas' resources are released");
	json_t *evd = json_loads(ev(b, 7), 0, NULL);
	ok(evd && json_array_size(json_object_get(evd, "removed")) == 2 &&
		   json_array_size(json_object_get(evd, "added")) == 0,
	   "scale down: event lists the two removed replicas (%s)", ev(b, 7));
	json_decref(evd);

	is_int(update_on(&m, batch(&b), "a1", "'cpu_required':1000", ""), APPLY_OK, "resource change cpu 500 -> 1000");
	ok(n1->cpu_used == 1000 && n1->memory_used_mb == 512 && a->spec.cpu_required == 1000,
	   "resource change: accounting moves by the delta (cpu %lld mem %lld)", (long long)n1->cpu_used,
	   (long long)n1->memory_used_mb);
	is_int(update_on(&m, NULL, "a1", "'memory_required_mb':1024", ""), APPLY_OK, "resource change memory");
	ok(n1->cpu_used == 1000 && n1->memory_used_mb == 1024 && n1->actor_count == 1, "memory delta accounted");

	is_int(update_planned(&m, batch(&b), "a1", "'replicas':2,'cpu_required':700"), APPLY_OK,
	       "scale up and resource change together");
	ok(a->nplacements == 2 && n1->cpu_used == 700 && a->placements[1].node->cpu_used ==
								 a->placements[1].node->spec.cpu_used + 700,
	   "both replicas accounted with the new request");
	check_invariants(&m, "update: accounting consistent");

	put_node(&m, NULL, 0, "n4", "eu", 1000, 1024, 0, 0, 0);
	is_int(create_on(&m, NULL, "a2", "'cpu_required':600,'memory_required_mb':256,'replicas':2", "'n1','n4'"),
	       APPLY_OK, "a2 on n1 and n4");
	char *before = dump(&m);
	is_int(update_on(&m, batch(&b), "a2", "'cpu_required':1200", ""), APPLY_INSUFFICIENT,
	       "a kept replica's node without room for the new request: APPLY_INSUFFICIENT");
	ok(contains(R.message, "insufficient resources"), "message: insufficient resources (%s)", R.message);
	ok(b->n == 0, "refused update: no rows");
	same_state(before, &m, "refused resource change: nothing changed (n1 rolled back)");

	is_int(update_on(&m, batch(&b), "a2", "'replicas':3", ""), APPLY_STALE,
	       "scale up without planned placements: APPLY_STALE");
	is_int(update_on(&m, batch(&b), "a2", "'replicas':4", "'n3'"), APPLY_STALE,
	       "scale up 2 -> 4 with one planned placement: APPLY_STALE");
	is_int(update_on(&m, batch(&b), "a2", "'replicas':1", "'n3'"), APPLY_STALE,
	       "scale down with a planned placement: APPLY_STALE");
	is_int(update_on(&m, batch(&b), "a2", "'cpu_required':100", "'n3'"), APPLY_STALE,
	       "resource change with a planned placement: APPLY_STALE");
	is_int(update_on(&m, batch(&b), "zz", "'replicas':1", ""), APPLY_NOT_FOUND, "update of an unknown actor");
	same_state(before, &m, "refused updates: nothing changed");
	free(before);

	node_flag(&m, NULL, "n3", 1);
	before = dump(&m);
	is_int(update_on(&m, batch(&b), "a2", "'replicas':3", "'n3'"), APPLY_STALE,
	       "scale up onto a cordoned node: APPLY_STALE");
	ok(contains(R.message, "plan is out of date"), "stale scale up: plan is out of date (%s)", R.message);
	is_int(update_on(&m, batch(&b), "a2", "'replicas':3,'cpu_required':100", "'n3'"), APPLY_STALE,
	       "scale up with resource change onto a cordoned node: APPLY_STALE");
	same_state(before, &m, "stale scale up: nothing changed (kept replicas back at the old request)");
	free(before);
	check_invariants(&m, "update: accounting and index consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- actor delete, providers, links --------------------------------------- */

static void test_actor_delete(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	struct model_node *n1 = model_node_get(&m, "n1"), *n2 = model_node_get(&m, "n2");
	create_on(&m, NULL, "a1", "'cpu_required':500,'memory_required_mb':512,'replicas':2", "'n1','n2'");
	create_on(&m, NULL, "a2", "'cpu_required':300,'memory_required_mb':128", "'n1'");
	apply_j(&m, NULL,
		"'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		"'image':'ghcr.io/p/kv:1','nodes':['n1']}");
	apply_j(&m, NULL,
		"'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		"'contract_id':'wasmcloud:keyvalue'}");
	apply_j(&m, NULL,
		"'op':'link_create','link':{'id':'l2','actor_id':'a1','provider_id':'p1',"
		"'contract_id':'wasmcloud:keyvalue','link_name':'alt'}");
	apply_j(&m, NULL,
		"'op':'link_create','link':{'id':'l3','actor_id':'a2','provider_id':'p1',"
		"'contract_id':'wasmcloud:keyvalue'}");
	is_int(m.links.n, 3, "three links");

	is_int(apply_j(&m, batch(&b), "'op':'actor_delete','target':'a1'"), APPLY_OK, "actor delete");
	ok(model_actor_get(&m, "a1") == NULL && m.actors.n == 1, "actor delete: gone");
	ok(n1->cpu_used == 300 && n1->memory_used_mb == 128 && n1->nplacements == 1 && n2->cpu_used == 1000 &&
		   n2->memory_used_mb == 2048 && n2->actor_count == 1 && n2->nplacements == 0,
	   "actor delete: resources released on every node at once");
	ok(m.links.n == 1 && hmap_get(&m.links, "l3") != NULL, "actor delete: its links go with it, others stay");
	is_str(kinds(b), "node_upsert,node_upsert,actor_delete,event_insert", "actor delete: rows emitted");
	is_int(apply_j(&m, NULL, "'op':'actor_delete','target':'a1'"), APPLY_NOT_FOUND, "delete again: NOT_FOUND");
	check_invariants(&m, "actor delete: accounting consistent");
	proj_batch_free(b);
	model_release(&m);
}

static void test_provider(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	create_on(&m, NULL, "a1", "'cpu_required':100,'memory_required_mb':64", "'n1'");
	char *before = dump(&m);
	is_int(apply_j(&m, batch(&b),
		       "'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		       "'image':'ghcr.io/p/kv:1','nodes':['n1','nx']}"),
	       APPLY_NOT_FOUND, "provider on an unknown node: APPLY_NOT_FOUND");
	ok(contains(R.message, "nx") && b->n == 0, "unknown node named, no rows (%s)", R.message);
	same_state(before, &m, "provider refused: nothing changed");
	free(before);
	is_int(apply_j(&m, batch(&b),
		       "'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		       "'image':'ghcr.io/p/kv:1','nodes':['n1','n2']}"),
	       APPLY_OK, "provider create");
	ok(hmap_get(&m.providers, "p1") != NULL && strcmp(kinds(b), "provider_upsert,event_insert") == 0,
	   "provider create: in the model, row and event");
	is_int(apply_j(&m, NULL,
		       "'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:httpserver',"
		       "'image':'ghcr.io/p/http:1'}"),
	       APPLY_EXISTS, "provider create of an existing id: APPLY_EXISTS");
	apply_j(&m, NULL,
		"'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		"'contract_id':'wasmcloud:keyvalue'}");
	before = dump(&m);
	is_int(apply_j(&m, batch(&b), "'op':'provider_delete','target':'p1'"), APPLY_CONFLICT,
	       "provider delete while a link uses it: APPLY_CONFLICT");
	same_state(before, &m, "provider delete refused: nothing changed");
	free(before);
	is_int(apply_j(&m, batch(&b), "'op':'link_delete','target':'l1'"), APPLY_OK, "link delete");
	ok(m.links.n == 0 && strcmp(kinds(b), "link_delete,event_insert") == 0, "link delete: gone, row and event");
	is_int(apply_j(&m, NULL, "'op':'link_delete','target':'l1'"), APPLY_NOT_FOUND, "link delete again: NOT_FOUND");
	is_int(apply_j(&m, batch(&b), "'op':'provider_delete','target':'p1'"), APPLY_OK,
	       "provider delete once unused");
	ok(m.providers.n == 0 && strcmp(kinds(b), "provider_delete,event_insert") == 0,
	   "provider delete: gone, row and event");
	is_int(apply_j(&m, NULL, "'op':'provider_delete','target':'p1'"), APPLY_NOT_FOUND,
	       "provider delete again: NOT_FOUND");
	proj_batch_free(b);
	model_release(&m);
}

static void test_link(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	create_on(&m, NULL, "a1", "'cpu_required':100,'memory_required_mb':64", "'n1'");
	create_on(&m, NULL, "a3", "'cpu_required':100,'memory_required_mb':64", "'n3'");
	apply_j(&m, NULL,
		"'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		"'image':'ghcr.io/p/kv:1'}");
	apply_j(&m, NULL,
		"'op':'provider_create','provider':{'id':'p2','contract_id':'wasmcloud:httpserver',"
		"'image':'ghcr.io/p/http:1'}");
	char *before = dump(&m);
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'id':'l1','actor_id':'zz','provider_id':'p1',"
		       "'contract_id':'wasmcloud:keyvalue'}"),
	       APPLY_NOT_FOUND, "link to an unknown actor: APPLY_NOT_FOUND");
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'pz',"
		       "'contract_id':'wasmcloud:keyvalue'}"),
	       APPLY_NOT_FOUND, "link to an unknown provider: APPLY_NOT_FOUND");
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		       "'contract_id':'wasmcloud:httpserver'}"),
	       APPLY_INVALID, "link whose contract the provider does not serve: APPLY_INVALID");
	ok(b->n == 0, "refused link: no rows");
	same_state(before, &m, "refused links: nothing changed");
	free(before);
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		       "'contract_id':'wasmcloud:keyvalue','values':{'bucket':'b1'}}"),
	       APPLY_OK, "link create");
	ok(hmap_get(&m.links, "l1") != NULL && strcmp(kinds(b), "link_upsert,event_insert") == 0 &&
		   strcmp(ev(b, 4), "link.created") == 0,
	   "link create: in the model, row and link.created event");
	is_int(apply_j(&m, NULL,
		       "'op':'link_create','link':{'id':'l2','actor_id':'a1','provider_id':'p1',"
		       "'contract_id':'wasmcloud:keyvalue'}"),
	       APPLY_EXISTS, "second link with the same (actor, contract, link_name): APPLY_EXISTS");
	is_int(apply_j(&m, NULL,
		       "'op':'link_create','link':{'id':'l1','actor_id':'a3','provider_id':'p1',"
		       "'contract_id':'wasmcloud:keyvalue'}"),
	       APPLY_EXISTS, "link with an existing id: APPLY_EXISTS");
	is_int(apply_j(&m, NULL,
		       "'op':'link_create','link':{'id':'l2','actor_id':'a1','provider_id':'p1',"
		       "'contract_id':'wasmcloud:keyvalue','link_name':'cache'}"),
	       APPLY_OK, "same actor and contract under another link_name");

	is_int(apply_j(&m, NULL,
		       "'op':'policy_put','flag':1,'policy':{'policy_id':'pd','denied_contracts':"
		       "['wasmcloud:httpserver'],'selector':{'regions':['eu']}}"),
	       APPLY_OK, "policy denying httpserver in eu");
	before = dump(&m);
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'id':'l3','actor_id':'a1','provider_id':'p2',"
		       "'contract_id':'wasmcloud:httpserver'}"),
	       APPLY_DENIED, "link denied on a node the actor runs on: APPLY_DENIED");
	is_str(R.message, "capability denied: wasmcloud:httpserver", "denied: message");
	ok(b->n == 0, "denied link: no rows");
	same_state(before, &m, "denied link: nothing changed");
	free(before);
	is_int(apply_j(&m, NULL,
		       "'op':'link_create','link':{'id':'l4','actor_id':'a3','provider_id':'p2',"
		       "'contract_id':'wasmcloud:httpserver'}"),
	       APPLY_OK, "same link for an actor running outside the policy's region");

	/* Placement checks linked contracts: a3 now needs httpserver, denied in eu. */
	before = dump(&m);
	is_int(update_on(&m, NULL, "a3", "'replicas':2", "'n1'"), APPLY_STALE,
	       "scale up of a linked actor onto a node denying the link's contract: APPLY_STALE");
	ok(contains(R.message, "capability denied: wasmcloud:httpserver"), "message names the denied capability (%s)",
	   R.message);
	same_state(before, &m, "refused scale up: nothing changed");
	free(before);
	is_int(update_planned(&m, NULL, "a3", "'replicas':2"), APPLY_OK, "planned scale up of the linked actor");
	struct model_actor *a3 = model_actor_get(&m, "a3");
	ok(a3 && a3->nplacements == 2 && strcmp(a3->placements[1].node->spec.id, "n3") == 0,
	   "the plan avoids the nodes denying the linked contract (new replica on %s)", planned);
	check_invariants(&m, "links: model consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- entries the leader should never make -------------------------------- */

static void test_malformed(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	model_init(&m);
	base_nodes(&m);
	create_on(&m, NULL, "a1", "'cpu_required':100,'memory_required_mb':64", "'n1'");
	apply_j(&m, NULL,
		"'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue','image':'x'}");
	char *before = dump(&m);
	is_int(apply_j(&m, batch(&b),
		       "'op':'actor_create','actor':{" MODULE ",'cpu_required':1,'memory_required_mb':1},"
		       "'placements':['n1']"),
	       APPLY_INVALID, "actor create without an id (the leader generates ids): APPLY_INVALID");
	is_int(apply_j(&m, batch(&b), "'op':'provider_create','provider':{'contract_id':'wasmcloud:keyvalue','image':'x'}"),
	       APPLY_INVALID, "provider create without an id: APPLY_INVALID");
	is_int(apply_j(&m, batch(&b),
		       "'op':'link_create','link':{'actor_id':'a1','provider_id':'p1','contract_id':'wasmcloud:keyvalue'}"),
	       APPLY_INVALID, "link create without an id: APPLY_INVALID");
	is_int(apply_j(&m, batch(&b), "'op':'policy_put','flag':1,'policy':{}"), APPLY_INVALID,
	       "policy put without an id: APPLY_INVALID");
	struct entry e;
	memset(&e, 0, sizeof(e));
	e.op = (enum entry_op)99;
	model_apply(&m, &e, 0, batch(&b), &R);
	is_int(R.code, APPLY_INVALID, "an unknown op: APPLY_INVALID");
	ok(b->n == 0, "malformed entries: no rows");
	same_state(before, &m, "malformed entries: nothing changed");
	free(before);

	char *t = dq(fmt("%s", "{'v':1,'op':'node_flags','at':5,'target':'n1','flag':1}"));
	is_int(apply_text(&m, batch(&b), t), APPLY_OK, "an entry without who");
	is_str(ev(b, 3), "system", "its event is by \"system\"");
	free(t);
	proj_batch_free(b);
	model_release(&m);
}

/* ---- policies ------------------------------------------------------------- */

static bool check_node(const struct model *m, const char *node, const char *contract, int64_t mem, char *why,
		       size_t len)
{
	struct strlist c = {0};
	char *item = contract ? strdup(contract) : NULL;
	if (item) {
		c.items = &item;
		c.n = 1;
	}
	struct sched_request req = {.cpu_required = 100, .memory_required_mb = mem, .contracts = &c, .count = 1};
	bool r = sched_check(m, &req, model_node_get(m, node), why, len);
	free(item);
	return r;
}

static void test_policy(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	char why[160];
	model_init(&m);
	base_nodes(&m);
	struct model_node *n1 = model_node_get(&m, "n1"), *n3 = model_node_get(&m, "n3");

	is_int(apply_j(&m, batch(&b),
		       "'op':'policy_put','flag':1,'policy':{'policy_id':'pol1','denied_contracts':"
		       "['wasmcloud:keyvalue'],'selector':{'regions':['eu']}}"),
	       APPLY_OK, "policy create (flag 1)");
	struct model_policy *p = hmap_get(&m.policies, "pol1");
	ok(p && p->version == 1 && p->created_ms == clock_ms, "policy create: version 1");
	const struct proj_change *pc = find_kind(b, PROJ_POLICY_INSERT);
	ok(strcmp(kinds(b), "policy_insert,event_insert") == 0 && pc && strcmp(pc->params[1], "1") == 0 &&
		   strcmp(ev(b, 4), "policy.created") == 0,
	   "policy create: version-1 row and policy.created event");
	ok(n1->npolicies == 1 && n3->npolicies == 0, "policy create: covers the eu nodes only");
	ok(!check_node(&m, "n1", "wasmcloud:keyvalue", 64, why, sizeof(why)) &&
		   strcmp(why, "capability denied: wasmcloud:keyvalue") == 0,
	   "covered node refuses an actor needing the denied contract (%s)", why);
	ok(check_node(&m, "n3", "wasmcloud:keyvalue", 64, why, sizeof(why)), "uncovered node accepts it");
	ok(check_node(&m, "n1", "wasmcloud:messaging", 64, why, sizeof(why)), "covered node accepts other contracts");

	char *before = dump(&m);
	is_int(create_on(&m, batch(&b), "a1", "'cpu_required':100,'memory_required_mb':64,'contracts':"
					    "['wasmcloud:keyvalue']",
			 "'n1'"),
	       APPLY_STALE, "actor needing the denied contract planned on a covered node: APPLY_STALE");
	ok(contains(R.message, "capability denied: wasmcloud:keyvalue"), "message names the capability (%s)",
	   R.message);
	same_state(before, &m, "refused create: nothing changed");
	free(before);
	is_int(create_planned(&m, NULL, "a1", "'cpu_required':100,'memory_required_mb':64,'contracts':"
					     "['wasmcloud:keyvalue']"),
	       APPLY_OK, "planned create of that actor");
	is_str(planned, "'n3'", "the plan avoids the covered nodes");

	int64_t created = p ? p->created_ms : 0;
	is_int(apply_j(&m, batch(&b),
		       "'op':'policy_put','policy':{'policy_id':'pol1','denied_contracts':['wasmcloud:messaging'],"
		       "'max_actor_memory_mb':256}"),
	       APPLY_OK, "policy update (flag 0)");
	p = hmap_get(&m.policies, "pol1");
	ok(p && p->version == 2 && p->created_ms == created && p->updated_ms == clock_ms &&
		   p->spec.max_actor_memory_mb == 256 && strlist_has(&p->spec.denied_contracts, "wasmcloud:messaging") &&
		   !strlist_has(&p->spec.denied_contracts, "wasmcloud:keyvalue"),
	   "policy update: version 2, new spec, created time kept");
	pc = find_kind(b, PROJ_POLICY_INSERT);
	ok(pc && strcmp(pc->params[1], "2") == 0 && strcmp(ev(b, 4), "policy.updated") == 0,
	   "policy update: version-2 row and policy.updated event");
	ok(n1->npolicies == 1 && n3->npolicies == 1, "policy update: empty selector now covers every node");
	ok(check_node(&m, "n1", "wasmcloud:keyvalue", 64, why, sizeof(why)), "keyvalue allowed again on n1");
	ok(!check_node(&m, "n3", "wasmcloud:messaging", 64, why, sizeof(why)), "messaging denied on n3 now");
	ok(!check_node(&m, "n1", NULL, 512, why, sizeof(why)) && contains(why, "cap"),
	   "memory above the policy cap refused (%s)", why);
	ok(model_actor_get(&m, "a1") && model_actor_get(&m, "a1")->placements[0].node == n3,
	   "a new policy version does not move running actors");

	before = dump(&m);
	is_int(apply_j(&m, batch(&b), "'op':'policy_put','flag':1,'policy':{'policy_id':'pol1'}"), APPLY_EXISTS,
	       "policy create of an existing id: APPLY_EXISTS");
	is_int(apply_j(&m, batch(&b), "'op':'policy_put','policy':{'policy_id':'pol9'}"), APPLY_NOT_FOUND,
	       "policy update of a missing id: APPLY_NOT_FOUND");
	ok(b->n == 0, "refused policy: no rows");
	same_state(before, &m, "refused policy puts: nothing changed");
	free(before);

	/* Several covering policies all apply: a non-empty allow list must hold it. */
	is_int(apply_j(&m, NULL,
		       "'op':'policy_put','flag':1,'policy':{'policy_id':'pol2','allowed_contracts':"
		       "['wasmcloud:httpserver'],'selector':{'regions':['us']}}"),
	       APPLY_OK, "second policy with an allow list for us");
	ok(n3->npolicies == 2 && strcmp(n3->policies[0]->spec.policy_id, "pol1") == 0 &&
		   strcmp(n3->policies[1]->spec.policy_id, "pol2") == 0,
	   "n3 covered by both, in id order");
	ok(!check_node(&m, "n3", "wasmcloud:keyvalue", 64, why, sizeof(why)) &&
		   check_node(&m, "n3", "wasmcloud:httpserver", 64, why, sizeof(why)) &&
		   check_node(&m, "n1", "wasmcloud:keyvalue", 64, why, sizeof(why)),
	   "allow list applies where it covers only");
	check_invariants(&m, "policies: coverage consistent");
	proj_batch_free(b);
	model_release(&m);
}

/* ---- drain ---------------------------------------------------------------- */

/* n1 holds a1#0 and a2#0; n2 holds a2#1; n3 is free; n4 is tiny. */
static void drain_setup(struct model *m)
{
	model_init(m);
	base_nodes(m);
	put_node(m, NULL, 0, "n4", "eu", 200, 256, 0, 0, 0);
	create_on(m, NULL, "a1", "'cpu_required':500,'memory_required_mb':512", "'n1'");
	create_on(m, NULL, "a2", "'cpu_required':300,'memory_required_mb':256,'replicas':2", "'n1','n2'");
}

#define MV(a, i, to) "{'actor_id':'" a "','instance':" #i ",'to_node':'" to "'}"

static void test_drain(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	drain_setup(&m);
	struct model_node *n1 = model_node_get(&m, "n1");
	struct model_actor *a1 = model_actor_get(&m, "a1"), *a2 = model_actor_get(&m, "a2");
	struct model_node *n2 = model_node_get(&m, "n2");
	for (size_t i = 0; i < 2; i++) /* as the agents' acks will have set them */
		a2->placements[i].state = a1->placements[0].state = PL_RUNNING;

	is_int(drain_planned(&m, batch(&b), "n1"), APPLY_OK, "drain n1 with a planned move per replica");
	ok(n1->cordoned && n1->draining && !n1->sched.indexed, "drain: node cordoned and draining");
	ok(n1->nplacements == 0 && n1->cpu_used == 0 && n1->memory_used_mb == 0 && n1->actor_count == 0,
	   "drain: the node's accounting is back to its base");
	ok(a1->placements[0].node != n1 && a2->placements[0].node != n1 && a2->placements[1].node == n2 &&
		   a1->placements[0].state == PL_PENDING && a2->placements[0].state == PL_PENDING &&
		   a2->placements[1].state == PL_RUNNING,
	   "drain: both replicas moved and pending again; the other replica untouched (still running)");
	check_invariants(&m, "drain: targets account the moved replicas");
	is_str(kinds(b), "node_upsert,placements_set,node_upsert,placements_set,node_upsert,event_insert",
	       "drain: rows emitted");
	is_str(ev(b, 4), "node.drained", "drain: event kind");
	proj_batch_free(b);
	b = NULL;
	model_release(&m);

	static const struct {
		const char *node, *moves, *name;
	} stale[] = {
		{"n2", MV("a1", 0, "n3"), "move of a replica that is not on the drained node"},
		{"n1", MV("a2", 5, "n3"), "move of an instance that does not exist"},
		{"n1", MV("a2", -1, "n3"), "move of a negative instance"},
		{"n1", MV("zz", 0, "n3"), "move of an unknown actor"},
		{"n1", MV("a1", 0, "nx"), "move to an unknown node"},
		{"n1", MV("a1", 0, "n1"), "move to the drained node itself"},
		{"n1", MV("a2", 0, "n3") "," MV("a1", 0, "n4"), "second move to a node without room"},
		{"nx", "", "drain of an unknown node"},
	};
	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		drain_setup(&m);
		char *before = dump(&m);
		int rc = drain_on(&m, batch(&b), stale[i].node, stale[i].moves);
		ok(rc == (strcmp(stale[i].node, "nx") == 0 ? APPLY_NOT_FOUND : APPLY_STALE) && b->n == 0,
		   "stale drain (%s): refused (%d: %s), no rows", stale[i].name, rc, R.message);
		same_state(before, &m, "stale drain: nothing changed");
		free(before);
		model_release(&m);
	}

	drain_setup(&m);
	node_flag(&m, NULL, "n3", 1);
	char *before = dump(&m);
	is_int(drain_on(&m, NULL, "n1", MV("a1", 0, "n3")), APPLY_STALE, "move to a cordoned node: APPLY_STALE");
	same_state(before, &m, "move to a cordoned node: nothing changed");
	free(before);
	model_release(&m);

	/* A node already draining stays draining when a later drain entry is refused. */
	drain_setup(&m);
	n1 = model_node_get(&m, "n1");
	is_int(drain_on(&m, NULL, "n1", ""), APPLY_OK, "drain n1 without moves (replicas stay for now)");
	ok(n1->cordoned && n1->draining, "n1 cordoned and draining");
	before = dump(&m);
	is_int(drain_on(&m, NULL, "n1", MV("a1", 0, "n4")), APPLY_STALE,
	       "second drain of n1 with a move to a full node: APPLY_STALE");
	ok(n1->cordoned && n1->draining, "refused second drain: n1 is still draining");
	same_state(before, &m, "refused second drain: nothing changed");
	free(before);
	model_release(&m);

	/* The same replica moved twice in one entry. */
	drain_setup(&m);
	before = dump(&m);
	int rc = drain_on(&m, NULL, "n1", MV("a1", 0, "n2") "," MV("a1", 0, "n3"));
	ok(rc != APPLY_OK, "drain moving the same replica twice is refused (got %d: %s)", rc, R.message);
	check_invariants(&m, "after a drain moving the same replica twice: accounting matches placements");
	same_state(before, &m, "drain moving the same replica twice: nothing changed");
	free(before);
	/* a2#0 is still on n1 whatever the drain did, so n1 cannot go. (When the drain
	 * above under-counts n1, this delete frees a node a placement still points to;
	 * only pointer comparisons follow, never a dereference.) */
	is_int(apply_j(&m, NULL, "'op':'node_delete','target':'n1'"), APPLY_CONFLICT,
	       "n1 still holds a2#0: its delete is refused");
	check_invariants(&m, "every placement is on a node of the model");
	model_release(&m);
	proj_batch_free(b);
}

/* ---- random log: events, rejections, determinism, restore ------------------ */

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)((rng >> 11) % n);
}

static const char *const R_NODES[] = {"n0", "n1", "n2", "n3", "n4", "n5"};
static const char *const R_ACTORS[] = {"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"};
static const char *const R_PROVS[] = {"p0", "p1", "p2", "p3"};
static const char *const R_LINKS[] = {"l0", "l1", "l2", "l3", "l4", "l5", "l6", "l7"};
static const char *const R_POLS[] = {"pol0", "pol1", "pol2"};
static const char *const R_CONTRACTS[] = {"wasmcloud:keyvalue", "wasmcloud:httpserver", "wasmcloud:messaging"};
#define PICK(a) (a[rnd(sizeof(a) / sizeof(a[0]))])

enum r_op { R_NODE_PUT, R_FLAGS, R_NODE_DEL, R_CREATE, R_UPDATE, R_ACTOR_DEL, R_PROV, R_PROV_DEL,
	    R_LINK, R_LINK_DEL, R_POLICY, R_DRAIN, R_NOPS };
static const char *const r_op_names[R_NOPS] = {"node_put", "node_flags", "node_delete", "actor_create",
					       "actor_update", "actor_delete", "provider_create", "provider_delete",
					       "link_create", "link_delete", "policy_put", "node_drain"};

/* Mostly an id the model has, sometimes any id of the pool. */
static const char *pick_from(const struct hmap *h, const char *const *pool, size_t n)
{
	const char *have[16];
	size_t k = 0;
	for (size_t i = 0; i < n && k < 16; i++)
		if (hmap_get(h, pool[i]) != NULL)
			have[k++] = pool[i];
	if (k > 0 && rnd(5) != 0)
		return have[rnd((uint32_t)k)];
	return pool[rnd((uint32_t)n)];
}
#define PICK_IN(h, a) pick_from(h, a, sizeof(a) / sizeof(a[0]))

/* Mostly an id the model does not have yet. */
static const char *pick_new(const struct hmap *h, const char *const *pool, size_t n)
{
	const char *fresh[16];
	size_t k = 0;
	for (size_t i = 0; i < n && k < 16; i++)
		if (hmap_get(h, pool[i]) == NULL)
			fresh[k++] = pool[i];
	if (k > 0 && rnd(6) != 0)
		return fresh[rnd((uint32_t)k)];
	return pool[rnd((uint32_t)n)];
}
#define PICK_NEW(h, a) pick_new(h, a, sizeof(a) / sizeof(a[0]))

/* Weights of the ops in the random log. */
static const int r_weight[R_NOPS] = {2, 2, 1, 4, 4, 1, 2, 1, 3, 1, 1, 2};

static enum r_op rand_op(void)
{
	int total = 0;
	for (int k = 0; k < R_NOPS; k++)
		total += r_weight[k];
	int x = (int)rnd((uint32_t)total);
	for (int k = 0; k < R_NOPS; k++)
		if ((x -= r_weight[k]) < 0)
			return (enum r_op)k;
	return R_NODE_PUT;
}

/* Replaces one planned node with a random one (a stale or wrong plan). */
static void corrupt_list(char *list, size_t len)
{
	char ids[16][8];
	size_t n = 0;
	for (char *p = strchr(list, '\''); p && n < 16; p = strchr(p, '\'')) {
		char *e = strchr(p + 1, '\'');
		snprintf(ids[n++], sizeof(ids[0]), "%.*s", (int)(e - p - 1), p + 1);
		p = e + 1;
	}
	if (n == 0)
		return;
	snprintf(ids[rnd((uint32_t)n)], sizeof(ids[0]), "%s", rnd(4) ? PICK(R_NODES) : "n9");
	list[0] = '\0';
	for (size_t i = 0; i < n; i++)
		list_add(list, len, ids[i]);
}

static void random_list(char *list, size_t len, int64_t n)
{
	list[0] = '\0';
	for (int64_t i = 0; i < n; i++)
		list_add(list, len, PICK(R_NODES));
}

/* One random entry, planned against m the way a leader would (sometimes wrongly). */
static char *rand_entry(struct model *m, int step, enum r_op *opout)
{
	char body[8192], list[1024], cur[SPEC_ID_MAX + 1];
	for (;;) {
		enum r_op op = step < 8 ? R_NODE_PUT : rand_op();
		*opout = op;
		switch (op) {
		case R_NODE_PUT: {
			const char *id = PICK(R_NODES);
			bool exists = model_node_get(m, id) != NULL;
			int flag = exists ? (rnd(10) < 7) : (rnd(10) < 2);
			int64_t cap = rnd(8) ? 2000 + 500 * (int64_t)rnd(13) : 0;
			int64_t mem = rnd(8) ? 2048 * (1 + (int64_t)rnd(8)) : 0;
			int64_t cu = cap ? rnd((uint32_t)(cap / 2)) : rnd(1000);
			int64_t mu = mem ? rnd((uint32_t)(mem / 2)) : rnd(1000);
			snprintf(body, sizeof(body),
				 "'op':'node_put','flag':%d,'node':{'id':'%s','region':'r%u','labels':{'tier':'%s'},"
				 "'cpu_capacity':%lld,'memory_mb':%lld,'cpu_used':%lld,'memory_used_mb':%lld,"
				 "'actor_count':%u}",
				 flag, id, rnd(2), rnd(2) ? "edge" : "core", (long long)cap, (long long)mem,
				 (long long)cu, (long long)mu, rnd(3));
			break;
		}
		case R_FLAGS:
			snprintf(body, sizeof(body), "'op':'node_flags','target':'%s','flag':%u",
				 rnd(8) ? PICK_IN(&m->nodes, R_NODES) : "n9", rnd(2));
			break;
		case R_NODE_DEL:
			snprintf(body, sizeof(body), "'op':'node_delete','target':'%s'", PICK_IN(&m->nodes, R_NODES));
			break;
		case R_CREATE: {
			char fields[1024];
			int64_t rep = 1 + rnd(3);
			snprintf(fields, sizeof(fields),
				 "'id':'%s'," MODULE ",'cpu_required':%u,'memory_required_mb':%u,'replicas':%lld,"
				 "'strategy':'%s','preferred_region':'%s','constraints':{%s},'contracts':[%s]",
				 PICK_NEW(&m->actors, R_ACTORS), 100 * (1 + rnd(15)), 128 * (1 + rnd(16)), (long long)rep,
				 rnd(5) ? "resources" : "round_robin", rnd(3) ? "" : rnd(2) ? "r0" : "r1",
				 rnd(7) ? "" : "'tier':'edge'", rnd(3) ? "" : "'wasmcloud:keyvalue'");
			int rc = plan_actor(m, fields, list, sizeof(list), cur);
			if (rc != SCHED_OK) {
				if (rnd(2))
					continue;
				random_list(list, sizeof(list), rep);
				cur[0] = '\0';
			} else if (rnd(7) == 0)
				corrupt_list(list, sizeof(list));
			else if (rnd(20) == 0)
				random_list(list, sizeof(list), rep + 1);
			snprintf(body, sizeof(body), "'op':'actor_create','actor':{%s},'placements':[%s]%s%s%s", fields,
				 list, cur[0] ? ",'rr_cursor':'" : "", cur, cur[0] ? "'" : "");
			break;
		}
		case R_UPDATE: {
			struct actor_patch p = {0};
			const char *id = rnd(10) ? PICK_IN(&m->actors, R_ACTORS) : "zz";
			while (!p.has_replicas && !p.has_cpu_required && !p.has_memory_required_mb) {
				if ((p.has_replicas = rnd(2)))
					p.replicas = 1 + rnd(4);
				if ((p.has_cpu_required = rnd(3) == 0))
					p.cpu_required = 100 * (1 + rnd(15));
				if ((p.has_memory_required_mb = rnd(3) == 0))
					p.memory_required_mb = 128 * (1 + rnd(16));
			}
			char patch[256] = "";
			size_t l = 0;
			if (p.has_replicas)
				l += (size_t)snprintf(patch + l, sizeof(patch) - l, "'replicas':%lld,", (long long)p.replicas);
			if (p.has_cpu_required)
				l += (size_t)snprintf(patch + l, sizeof(patch) - l, "'cpu_required':%lld,",
						      (long long)p.cpu_required);
			if (p.has_memory_required_mb)
				l += (size_t)snprintf(patch + l, sizeof(patch) - l, "'memory_required_mb':%lld,",
						      (long long)p.memory_required_mb);
			patch[l - 1] = '\0';
			struct model_actor *a = model_actor_get(m, id);
			cur[0] = '\0';
			if (a == NULL)
				random_list(list, sizeof(list), rnd(2));
			else if (plan_update(m, a, &p, list, sizeof(list), cur) != SCHED_OK) {
				if (rnd(2))
					continue;
				random_list(list, sizeof(list), p.replicas - (int64_t)a->nplacements);
			} else if (rnd(7) == 0)
				corrupt_list(list, sizeof(list));
			else if (rnd(20) == 0)
				random_list(list, sizeof(list), rnd(3));
			snprintf(body, sizeof(body), "'op':'actor_update','target':'%s','patch':{%s},'placements':[%s]%s%s%s",
				 id, patch, list, cur[0] ? ",'rr_cursor':'" : "", cur, cur[0] ? "'" : "");
			break;
		}
		case R_ACTOR_DEL:
			snprintf(body, sizeof(body), "'op':'actor_delete','target':'%s'", PICK_IN(&m->actors, R_ACTORS));
			break;
		case R_PROV: {
			list[0] = '\0';
			for (size_t i = 0; i < 6; i++)
				if (rnd(4) == 0)
					list_add(list, sizeof(list), R_NODES[i]);
			if (rnd(10) == 0)
				list_add(list, sizeof(list), "n9");
			snprintf(body, sizeof(body),
				 "'op':'provider_create','provider':{'id':'%s','contract_id':'%s','image':"
				 "'ghcr.io/p/x:1','nodes':[%s]}",
				 PICK_NEW(&m->providers, R_PROVS), PICK(R_CONTRACTS), list);
			break;
		}
		case R_PROV_DEL:
			snprintf(body, sizeof(body), "'op':'provider_delete','target':'%s'", PICK_IN(&m->providers, R_PROVS));
			break;
		case R_LINK: {
			const char *pid = PICK_IN(&m->providers, R_PROVS);
			struct model_provider *pv = hmap_get(&m->providers, pid);
			const char *contract = pv && rnd(5) ? pv->spec.contract_id : PICK(R_CONTRACTS);
			snprintf(body, sizeof(body),
				 "'op':'link_create','link':{'id':'%s','actor_id':'%s','provider_id':'%s',"
				 "'contract_id':'%s','link_name':'%s','values':{'k':'v%u'}}",
				 PICK_NEW(&m->links, R_LINKS), PICK_IN(&m->actors, R_ACTORS), pid, contract, rnd(2) ? "default" : "alt", rnd(9));
			break;
		}
		case R_LINK_DEL:
			snprintf(body, sizeof(body), "'op':'link_delete','target':'%s'", PICK_IN(&m->links, R_LINKS));
			break;
		case R_POLICY: {
			const char *id = PICK(R_POLS);
			bool exists = hmap_get(&m->policies, id) != NULL;
			int flag = exists ? rnd(10) == 0 : rnd(10) != 0;
			uint32_t allow = rnd(3), deny = rnd(3);
			char al[128] = "", de[128] = "";
			if (rnd(5) == 0)
				snprintf(al, sizeof(al), "'%s'", R_CONTRACTS[allow]);
			if (rnd(4) == 0 && !(al[0] && deny == allow))
				snprintf(de, sizeof(de), "'%s'", R_CONTRACTS[deny]);
			snprintf(body, sizeof(body),
				 "'op':'policy_put','flag':%d,'policy':{'policy_id':'%s','allowed_contracts':[%s],"
				 "'denied_contracts':[%s],'max_actor_memory_mb':%u,'selector':{'regions':[%s],"
				 "'labels':{%s}}}",
				 flag, id, al, de, rnd(3) ? 0 : 256 * (1 + rnd(8)), rnd(2) ? "" : rnd(2) ? "'r0'" : "'r1'",
				 rnd(3) ? "" : "'tier':'edge'");
			break;
		}
		case R_DRAIN: {
			const char *id = rnd(10) ? PICK_IN(&m->nodes, R_NODES) : "n9";
			struct model_node *n = model_node_get(m, id);
			char moves[4096] = "";
			if (n != NULL)
				plan_drain(m, n, moves, sizeof(moves));
			if (moves[0] && rnd(7) == 0) {
				/* a stale move: another instance, or another target */
				char *p = strstr(moves, "'instance':");
				if (p && rnd(2))
					p[11] = p[11] == '0' ? '1' : '0';
				else if ((p = strstr(moves, "'to_node':'n")) != NULL)
					p[12] = (char)('0' + rnd(6));
			}
			snprintf(body, sizeof(body), "'op':'node_drain','target':'%s','moves':[%s]", id, moves);
			break;
		}
		default:
			continue;
		}
		return wrap(body);
	}
}

#define R_STEPS 240
#define R_FORK 120

static void test_random_log(void)
{
	const char *seed = getenv("LATTICE_TEST_SEED"); /* to explore other logs */
	if (seed != NULL)
		rng = strtoull(seed, NULL, 0) | 1;
	tap_diag("random log seed %#llx", (unsigned long long)rng);
	struct model a, bm, c;
	model_init(&a);
	model_init(&bm);
	model_init(&c);
	static char *texts[R_STEPS];
	static int codes[R_STEPS];
	static enum r_op ops[R_STEPS];
	int n_ok[R_NOPS] = {0}, n_rej[R_NOPS] = {0};
	int bad_seq = 0, bad_rows = 0, bad_unchanged = 0, bad_inv = 0, bad_decode = 0, bad_event_last = 0;
	char why[512];
	int nsteps = R_STEPS;
	for (int i = 0; i < nsteps; i++) {
		texts[i] = rand_entry(&a, i, &ops[i]);
		char *before = dump(&a);
		uint64_t seq = a.event_seq;
		struct proj_batch *b = proj_batch_new((uint64_t)i + 1);
		codes[i] = apply_text(&a, b, texts[i]);
		if (codes[i] < 0) {
			bad_decode++;
		} else if (codes[i] == APPLY_OK) {
			n_ok[ops[i]]++;
			int events = 0;
			for (const struct proj_change *pc = b->head; pc; pc = pc->next)
				events += pc->kind == PROJ_EVENT_INSERT;
			char s[32], idx[32];
			snprintf(s, sizeof(s), "%llu", (unsigned long long)a.event_seq);
			snprintf(idx, sizeof(idx), "%d", i + 1);
			if (a.event_seq != seq + 1)
				bad_seq++;
			if (events != 1 || b->failed || strcmp(ev(b, 0), s) != 0 || strcmp(ev(b, 1), idx) != 0) {
				if (bad_rows++ == 0)
					tap_diag("step %d (%s): %d events, rows %s", i, r_op_names[ops[i]], events, kinds(b));
			}
			if (b->tail == NULL || b->tail->kind != PROJ_EVENT_INSERT)
				bad_event_last++;
		} else {
			n_rej[ops[i]]++;
			if (a.event_seq != seq)
				bad_seq++;
			if (b->n != 0)
				bad_rows++;
			char *after = dump(&a);
			if (strcmp(before, after) != 0 && bad_unchanged++ == 0)
				tap_diag("step %d (%s) refused (%d: %s) but changed the model", i, r_op_names[ops[i]],
					 codes[i], R.message);
			free(after);
		}
		free(before);
		proj_batch_free(b);
		if (!invariants(&a, why, sizeof(why))) {
			/* A model that lost track may hold dangling pointers: stop here. */
			bad_inv++;
			tap_diag("step %d (%s, code %d): %s; log stopped", i, r_op_names[ops[i]], codes[i], why);
			nsteps = i + 1;
		}
	}
	int total_ok = 0, total_rej = 0;
	char dist[1024] = "";
	for (int k = 0; k < R_NOPS; k++) {
		total_ok += n_ok[k];
		total_rej += n_rej[k];
		size_t l = strlen(dist);
		snprintf(dist + l, sizeof(dist) - l, " %s %d/%d", r_op_names[k], n_ok[k], n_rej[k]);
	}
	tap_diag("random log: applied/refused per op:%s", dist);
	is_int(bad_decode, 0, "random log: every entry decodes");
	bool every = true;
	for (int k = 0; k < R_NOPS; k++)
		every &= n_ok[k] > 0;
	ok(every && total_rej >= 20 && total_ok >= R_STEPS / 3,
	   "random log exercises every op applied and refused (%d applied, %d refused)", total_ok, total_rej);
	is_int(bad_seq, 0, "random log: event_seq +1 per applied entry, unchanged per refused one");
	is_int(bad_rows, 0, "random log: one event per applied entry (seq, raft index), no rows for refused ones");
	is_int(bad_event_last, 0, "random log: the event is the applied entry's last row");
	is_int(bad_unchanged, 0, "random log: a refused entry changes nothing");
	is_int(bad_inv, 0, "random log: accounting, index and policy coverage consistent after every entry");

	/* Replay: b from scratch; c from a snapshot taken at entry `fork`. */
	int diff_b = 0, diff_c = 0, restored = -1, fork = nsteps > R_FORK ? R_FORK : nsteps / 2;
	char err[256] = "";
	for (int i = 0; i < nsteps && diff_b == 0; i++) {
		if (i == fork) {
			/* c restores what bm (identical so far) holds; see test_snapshot for why
			 * the null agent_version is dropped. */
			json_t *snap = model_snapshot(&bm);
			json_t *nodes = json_object_get(snap, "nodes");
			size_t k;
			json_t *o;
			json_array_foreach(nodes, k, o) if (json_is_null(json_object_get(o, "agent_version")))
				json_object_del(o, "agent_version");
			restored = model_restore(&c, snap, err, sizeof(err));
			json_decref(snap);
		}
		int rb = apply_text(&bm, NULL, texts[i]);
		if (rb != codes[i] && diff_b++ == 0)
			tap_diag("replay: step %d gave %d, the original %d", i, rb, codes[i]);
		if (i >= fork && restored == 0 && diff_c == 0) {
			int rcc = apply_text(&c, NULL, texts[i]);
			if (rcc != codes[i]) {
				diff_c++;
				tap_diag("restored replica: step %d gave %d (%s), the original %d", i, rcc, R.message,
					 codes[i]);
			} else if (!invariants(&c, why, sizeof(why))) {
				diff_c++;
				tap_diag("restored replica: step %d: %s", i, why);
			}
		}
	}
	is_int(diff_b, 0, "determinism: a second replica gets the same result for every entry");
	char *da = dump(&a);
	same_state(da, &bm, "determinism: both replicas end in the same state (objects, accounting, index)");
	ok(restored == 0, "restored replica: snapshot at entry %d restores (%s)", fork, err);
	is_int(diff_c, 0, "restored replica: same result for every later entry");
	if (restored == 0 && diff_c == 0)
		same_state(da, &c, "restored replica: ends in the same state as the original");
	else
		ok(0, "restored replica: ends in the same state as the original");
	free(da);
	for (int i = 0; i < R_STEPS; i++)
		free(texts[i]);
	model_release(&a);
	model_release(&bm);
	model_release(&c);
}

/* ---- snapshot / restore --------------------------------------------------- */

static void populate(struct model *m)
{
	model_init(m);
	base_nodes(m);
	apply_j(m, NULL,
		"'op':'node_put','node':{'id':'n4','region':'us','labels':{'tier':'edge','zone':'b'},"
		"'cpu_capacity':3000,'memory_mb':4096,'cpu_used':100,'memory_used_mb':100,'actor_count':1}");
	put_node(m, NULL, 0, "n5", "us", 0, 0, 0, 0, 0); /* capacity unknown */
	apply_j(m, NULL,
		"'op':'policy_put','flag':1,'policy':{'policy_id':'pol1','denied_contracts':"
		"['wasmcloud:messaging'],'max_actor_memory_mb':2048,'selector':{'labels':{'tier':'edge'}}}");
	apply_j(m, NULL, "'op':'policy_put','policy':{'policy_id':'pol1','denied_contracts':['wasmcloud:messaging']}");
	create_planned(m, NULL, "a1", "'cpu_required':500,'memory_required_mb':512,'replicas':3");
	create_planned(m, NULL, "a2", "'cpu_required':200,'memory_required_mb':128,'replicas':2,'strategy':'round_robin'");
	create_planned(m, NULL, "a3", "'cpu_required':300,'memory_required_mb':256,'preferred_region':'us',"
				      "'contracts':['wasmcloud:keyvalue']");
	apply_j(m, NULL,
		"'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		"'image':'ghcr.io/p/kv:1','nodes':['n1','n4']}");
	apply_j(m, NULL,
		"'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		"'contract_id':'wasmcloud:keyvalue','values':{'bucket':'x'},'timeout_ms':100}");
	drain_planned(m, NULL, "n2");
	node_flag(m, NULL, "n3", 1);
	struct model_actor *a = model_actor_get(m, "a1");
	if (a && a->nplacements > 0) { /* as acks and snapshots will have set them */
		a->placements[0].state = PL_RUNNING;
		a->placements[0].state_version = 7;
	}
	struct model_node *n = model_node_get(m, "n1");
	n->agent_version = strdup("1.2.3");
	n->policy_version = 2;
	n->last_heartbeat_ms = 1700000000123LL;
}

static void test_snapshot(void)
{
	struct model m, r;
	char err[256] = "";
	populate(&m);
	ok(m.actors.n == 3 && m.links.n == 1 && m.rr_cursor[0] != '\0' && model_node_get(&m, "n2")->draining,
	   "populated model: 3 actors, a link, a round-robin cursor, a draining node");
	check_invariants(&m, "populated model consistent");
	json_t *snap = model_snapshot(&m);
	ok(snap != NULL, "snapshot");

	model_init(&r);
	int rc = model_restore(&r, snap, err, sizeof(err));
	ok(rc == 0, "restore of a snapshot holding nodes without an agent_version (%s)", rc ? err : "ok");
	model_release(&r);

	/* The rest does not depend on that: drop the nulls and go on. */
	size_t k;
	json_t *o;
	json_array_foreach(json_object_get(snap, "nodes"), k, o) if (json_is_null(json_object_get(o, "agent_version")))
		json_object_del(o, "agent_version");
	model_init(&r);
	rc = model_restore(&r, snap, err, sizeof(err));
	ok(rc == 0, "restore (agent_version nulls dropped) (%s)", rc ? err : "ok");
	json_decref(snap);
	if (rc != 0) {
		model_release(&r);
		model_release(&m);
		return;
	}
	char *dm = dump(&m);
	same_state(dm, &r, "restored model equals the original (objects, accounting, index, coverage)");
	free(dm);
	bool same = true;
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m.nodes, &pos)) != NULL) {
		struct model_node *x = model_node_get(&r, n->spec.id);
		same &= x && x->cpu_used == n->cpu_used && x->memory_used_mb == n->memory_used_mb &&
			x->actor_count == n->actor_count && x->nplacements == n->nplacements &&
			x->cordoned == n->cordoned && x->draining == n->draining;
	}
	ok(same && r.nodes.n == m.nodes.n, "restore: every node's accounted usage and flags as before");
	same = true;
	struct model_actor *a;
	pos = 0;
	while ((a = hmap_next(&m.actors, &pos)) != NULL) {
		struct model_actor *x = model_actor_get(&r, a->spec.id);
		same &= x && x->nplacements == a->nplacements;
		for (size_t i = 0; same && i < a->nplacements; i++)
			same &= strcmp(x->placements[i].node->spec.id, a->placements[i].node->spec.id) == 0 &&
				x->placements[i].node == model_node_get(&r, a->placements[i].node->spec.id) &&
				x->placements[i].state == a->placements[i].state &&
				x->placements[i].state_version == a->placements[i].state_version;
	}
	ok(same && r.actors.n == m.actors.n, "restore: every actor's placements (node, state, version) as before");
	ok(r.event_seq == m.event_seq && strcmp(r.rr_cursor, m.rr_cursor) == 0, "restore: event_seq and cursor kept");
	struct model_node *rn1 = model_node_get(&r, "n1");
	ok(rn1 && rn1->agent_version && strcmp(rn1->agent_version, "1.2.3") == 0 && rn1->policy_version == 2 &&
		   rn1->last_heartbeat_ms == 1700000000123LL,
	   "restore: node soft fields kept");
	check_invariants(&r, "restored model consistent");

	/* The restored model goes on exactly like the original. */
	const char *next[8];
	char *texts[8];
	int nn = 0;
	char moves[4096], list[1024], cur[SPEC_ID_MAX + 1];
	plan_actor(&m, "'id':'a4'," MODULE ",'cpu_required':400,'memory_required_mb':300,'replicas':2,"
		       "'strategy':'round_robin'",
		   list, sizeof(list), cur);
	texts[nn] = fmt("'op':'actor_create','actor':{'id':'a4'," MODULE ",'cpu_required':400,'memory_required_mb':300,"
			"'replicas':2,'strategy':'round_robin'},'placements':[%s],'rr_cursor':'%s'",
			list, cur);
	next[nn++] = "create a4";
	texts[nn] = fmt("%s", "'op':'actor_update','target':'a1','patch':{'replicas':1,'cpu_required':900}");
	next[nn++] = "scale down a1";
	plan_drain(&m, model_node_get(&m, "n1"), moves, sizeof(moves));
	texts[nn] = fmt("'op':'node_drain','target':'n1','moves':[%s]", moves);
	next[nn++] = "drain n1";
	texts[nn] = fmt("%s", "'op':'node_flags','target':'n3','flag':0");
	next[nn++] = "uncordon n3";
	texts[nn] = fmt("%s", "'op':'actor_delete','target':'a3'");
	next[nn++] = "delete a3";
	texts[nn] = fmt("%s", "'op':'policy_put','policy':{'policy_id':'pol1','denied_contracts':['wasmcloud:keyvalue']}");
	next[nn++] = "policy v3";
	texts[nn] = fmt("%s", "'op':'node_delete','target':'n2'");
	next[nn++] = "delete n2";
	bool codes_same = true, all_ok = true;
	for (int i = 0; i < nn; i++) {
		char *t = wrap(texts[i]);
		int c1 = apply_text(&m, NULL, t);
		int c2 = apply_text(&r, NULL, t);
		if (c1 != c2)
			tap_diag("%s: original %d, restored %d", next[i], c1, c2);
		if (c1 != APPLY_OK)
			tap_diag("%s: %d %s", next[i], c1, R.message);
		codes_same &= c1 == c2;
		all_ok &= c1 == APPLY_OK;
		free(t);
		free(texts[i]);
	}
	ok(codes_same && all_ok, "after restore: the next entries apply alike on both");
	dm = dump(&m);
	same_state(dm, &r, "after restore: both end in the same state");
	free(dm);
	model_release(&r);

	/* Refusals. */
	snap = model_snapshot(&m);
	json_object_set_new(snap, "v", json_integer(2));
	model_init(&r);
	ok(model_restore(&r, snap, err, sizeof(err)) != 0 && contains(err, "format"),
	   "restore refuses snapshot format 2 (%s)", err);
	model_release(&r);
	json_decref(snap);
	json_t *junk = json_pack("[i]", 1);
	model_init(&r);
	ok(model_restore(&r, junk, err, sizeof(err)) != 0, "restore refuses a non-snapshot (%s)", err);
	model_release(&r);
	json_decref(junk);
	snap = model_snapshot(&m);
	json_array_foreach(json_object_get(snap, "nodes"), k, o) if (json_is_null(json_object_get(o, "agent_version")))
		json_object_del(o, "agent_version");
	json_t *acts = json_object_get(snap, "actors");
	json_t *pl = json_object_get(json_array_get(acts, 0), "placements");
	json_object_set_new(json_array_get(pl, 0), "node", json_string("ghost"));
	model_init(&r);
	ok(model_restore(&r, snap, err, sizeof(err)) != 0 && contains(err, "placement"),
	   "restore refuses a placement on an unknown node (%s)", err);
	model_release(&r);
	json_decref(snap);
	model_release(&m);
}

int main(void)
{
	tap_plan(256);
	test_node_put();
	test_flags_delete();
	test_actor_create();
	test_actor_update();
	test_actor_delete();
	test_provider();
	test_link();
	test_malformed();
	test_policy();
	test_drain();
	test_random_log();
	test_snapshot();
	return tap_done();
}
