/* model_fixture — what test_model and test_model_snap share: entries written as
 * text and applied, plans made the way the leader makes them, and looks at the
 * model (dumps, invariants). See model_fixture.h. */
#include "model_fixture.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "policy.h"
#include "sched.h"

int64_t clock_ms = 1700000000000LL;
struct apply_result R;

/* ---- entries as text ------------------------------------------------------ */

char *dq(char *s)
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

char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = vfmt(f, ap);
	va_end(ap);
	return s;
}

char *wrap(const char *body)
{
	clock_ms += 1000;
	char *s = fmt("{'v':1,'at':%lld,'who':'test',%s}", (long long)clock_ms, body);
	return dq(s);
}

int apply_text(struct model *m, struct proj_batch *b, const char *text)
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

int apply_j(struct model *m, struct proj_batch *b, const char *f, ...)
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

int put_node(struct model *m, struct proj_batch *b, int flag, const char *id, const char *region,
	     int64_t cap, int64_t mem, int64_t cpu_used, int64_t mem_used, int64_t actors)
{
	return apply_j(m, b,
		       "'op':'node_put','flag':%d,'node':{'id':'%s','region':'%s','cpu_capacity':%lld,"
		       "'memory_mb':%lld,'cpu_used':%lld,'memory_used_mb':%lld,'actor_count':%lld}",
		       flag, id, region, (long long)cap, (long long)mem, (long long)cpu_used,
		       (long long)mem_used, (long long)actors);
}

int node_flag(struct model *m, struct proj_batch *b, const char *id, int flag)
{
	return apply_j(m, b, "'op':'node_flags','target':'%s','flag':%d", id, flag);
}

/* ---- plans, as the leader makes them -------------------------------------- */

void list_add(char *list, size_t len, const char *id)
{
	size_t n = strlen(list);
	snprintf(list + n, len - n, "%s'%s'", n ? "," : "", id);
}

int plan_actor(struct model *m, const char *fields, char *list, size_t len, char *cursor)
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

int plan_update(struct model *m, const struct model_actor *a, const struct actor_patch *p, char *list,
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

int plan_drain(struct model *m, struct model_node *n, char *moves, size_t len)
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

char planned[1024];

int create_planned(struct model *m, struct proj_batch *b, const char *id, const char *fields)
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

int create_on(struct model *m, struct proj_batch *b, const char *id, const char *fields, const char *nodes)
{
	return apply_j(m, b, "'op':'actor_create','actor':{'id':'%s'," MODULE ",%s},'placements':[%s]", id, fields,
		       nodes);
}

int update_planned(struct model *m, struct proj_batch *b, const char *id, const char *patch)
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

int update_on(struct model *m, struct proj_batch *b, const char *id, const char *patch, const char *nodes)
{
	return apply_j(m, b, "'op':'actor_update','target':'%s','patch':{%s},'placements':[%s]", id, patch, nodes);
}

int drain_planned(struct model *m, struct proj_batch *b, const char *id)
{
	char moves[4096];
	struct model_node *n = model_node_get(m, id);
	if (n == NULL || plan_drain(m, n, moves, sizeof(moves)) != 0) {
		tap_diag("no drain plan for %s", id);
		return -2;
	}
	return apply_j(m, b, "'op':'node_drain','target':'%s','moves':[%s]", id, moves);
}

int drain_on(struct model *m, struct proj_batch *b, const char *id, const char *moves)
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

const char *kinds(const struct proj_batch *b)
{
	static char buf[2048];
	buf[0] = '\0';
	for (const struct proj_change *c = b->head; c; c = c->next) {
		size_t n = strlen(buf);
		snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? "," : "", kind_names[c->kind]);
	}
	return buf;
}

const struct proj_change *find_kind(const struct proj_batch *b, enum proj_kind k)
{
	for (const struct proj_change *c = b->head; c; c = c->next)
		if (c->kind == k)
			return c;
	return NULL;
}

const char *ev(const struct proj_batch *b, int i)
{
	const struct proj_change *c = find_kind(b, PROJ_EVENT_INSERT);
	return c && i < c->nparams && c->params[i] ? c->params[i] : "";
}

static uint64_t next_index;

struct proj_batch *batch(struct proj_batch **b)
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

char *dump(const struct model *m)
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

static bool node_in_model(const struct model *m, const struct model_node *p)
{
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL)
		if (n == p)
			return true;
	return false;
}

bool invariants(const struct model *m, char *why, size_t len)
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

bool contains(const char *s, const char *sub)
{
	return s && sub && strstr(s, sub) != NULL;
}

void fill_model(struct model *m, int nodes, int actors, const char *fields)
{
	char id[32];
	for (int i = 0; i < nodes; i++) {
		snprintf(id, sizeof(id), "n%05d", i);
		put_node(m, NULL, 1, id, i % 2 ? "eu" : "us", 4000, 8192, 0, 0, 0);
	}
	for (int i = 0; i < actors; i++) {
		snprintf(id, sizeof(id), "a%05d", i);
		create_planned(m, NULL, id, fields);
	}
}

void base_nodes(struct model *m)
{
	put_node(m, NULL, 0, "n1", "eu", 4000, 8192, 0, 0, 0);
	put_node(m, NULL, 0, "n2", "eu", 4000, 8192, 1000, 2048, 1);
	put_node(m, NULL, 0, "n3", "us", 2000, 4096, 0, 0, 0);
}
