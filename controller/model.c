#include "model.h"
#include "model_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "jw.h"
#include "log.h"
#include "policy.h"
#include "proj.h"

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	hmap_init(&m->nodes);
	hmap_init(&m->actors);
	hmap_init(&m->providers);
	hmap_init(&m->links);
	hmap_init(&m->policies);
	hmap_init(&m->idem);
	sched_index_init(&m->sched);
	model_cmd_init(m);
	model_fo_init(m);
}

void model_node_free(struct model_node *n)
{
	spec_node_free(&n->spec);
	free(n->agent_version);
	free(n->policies);
	free(n);
}

void model_actor_free(struct model_actor *a)
{
	model_actor_snap_free(a->snap);
	model_mig_free(a->mig);
	spec_actor_free(&a->spec);
	free(a->placements);
	free(a);
}

void model_provider_free(struct model_provider *p)
{
	spec_provider_free(&p->spec);
	free(p);
}

void model_link_free(struct model_link *l)
{
	spec_link_free(&l->spec);
	free(l);
}

void model_policy_free(struct model_policy *p)
{
	spec_policy_free(&p->spec);
	for (size_t i = 0; i < p->nhistory; i++)
		spec_policy_free(&p->history[i].spec);
	free(p->history);
	free(p);
}

const char *model_member_url(const struct model *m, uint64_t id)
{
	for (size_t i = 0; i < m->nmembers; i++)
		if (m->members[i].id == id)
			return m->members[i].api_url;
	return NULL;
}

int model_member_set(struct model *m, uint64_t id, const char *url)
{
	size_t i = 0;
	while (i < m->nmembers && m->members[i].id < id)
		i++;
	bool found = i < m->nmembers && m->members[i].id == id;
	if (url == NULL) {
		if (found) {
			free(m->members[i].api_url);
			memmove(&m->members[i], &m->members[i + 1], (m->nmembers - i - 1) * sizeof(m->members[0]));
			m->nmembers--;
		}
		return 0;
	}
	char *dup = strdup(url);
	if (dup == NULL)
		return -1;
	if (found) {
		free(m->members[i].api_url);
		m->members[i].api_url = dup;
		return 0;
	}
	struct model_member *grown = realloc(m->members, (m->nmembers + 1) * sizeof(*grown));
	if (grown == NULL) {
		free(dup);
		return -1;
	}
	m->members = grown;
	memmove(&m->members[i + 1], &m->members[i], (m->nmembers - i) * sizeof(m->members[0]));
	m->members[i] = (struct model_member){.id = id, .api_url = dup};
	m->nmembers++;
	return 0;
}


static void idem_drop_oldest(struct model *m)
{
	struct model_idem *r = m->idem_oldest;
	hmap_del(&m->idem, r->key);
	m->idem_oldest = r->next;
	if (m->idem_oldest == NULL)
		m->idem_newest = NULL;
	free(r->key);
	free(r);
}

const struct model_idem *model_idem_get(const struct model *m, const char *key)
{
	return hmap_get(&m->idem, key);
}

void model_idem_put(struct model *m, const char *key, uint64_t fp, const char *id, uint64_t index, int64_t at_ms)
{
	/* Entry time, not the clock, so every replica forgets the same keys. */
	while (m->idem_oldest && (m->idem_oldest->at_ms < at_ms - MODEL_IDEM_WINDOW_MS || m->idem.n >= MODEL_IDEM_MAX))
		idem_drop_oldest(m);
	if (hmap_get(&m->idem, key) != NULL)
		return;
	struct model_idem *r = calloc(1, sizeof(*r));
	if (r == NULL || (r->key = strdup(key)) == NULL || hmap_put(&m->idem, r->key, r) != 0)
		model_oom(m, "an idempotency key");
	r->fp = fp;
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->index = index;
	r->at_ms = at_ms;
	if (m->idem_newest)
		m->idem_newest->next = r;
	else
		m->idem_oldest = r;
	m->idem_newest = r;
}

void model_release(struct model *m)
{
	model_cmd_release(m);
	model_fo_release(m);
	while (m->idem_oldest)
		idem_drop_oldest(m);
	hmap_release(&m->idem);
	for (size_t i = 0; i < m->nmembers; i++)
		free(m->members[i].api_url);
	free(m->members);
	m->members = NULL;
	m->nmembers = 0;
	size_t pos = 0;
	void *v;
	while ((v = hmap_next(&m->actors, &pos)) != NULL)
		model_actor_free(v);
	pos = 0;
	while ((v = hmap_next(&m->nodes, &pos)) != NULL) {
		sched_index_remove(&m->sched, v);
		model_node_free(v);
	}
	free(m->touched);
	m->touched = NULL;
	m->ntouched = m->captouched = 0;
	pos = 0;
	while ((v = hmap_next(&m->providers, &pos)) != NULL)
		model_provider_free(v);
	pos = 0;
	while ((v = hmap_next(&m->links, &pos)) != NULL)
		model_link_free(v);
	pos = 0;
	while ((v = hmap_next(&m->policies, &pos)) != NULL)
		model_policy_free(v);
	hmap_release(&m->actors);
	hmap_release(&m->nodes);
	hmap_release(&m->providers);
	hmap_release(&m->links);
	hmap_release(&m->policies);
	sched_index_release(&m->sched);
	memset(m, 0, sizeof(*m));
}

/* ---- crash-only -------------------------------------------------------------
 *
 * Every replica must do with an entry what the others did. An allocation that
 * fails halfway through apply would leave this replica refusing, or half
 * applying, an entry the others applied — different from them for good — so it
 * stops the process instead, and the restart replays the entry from the log.
 * (The leader's planning runs before proposing and answers 503 instead: ops.c.) */

void model_oom(const struct model *m, const char *what)
{
	if (m->applying)
		log_error("raft entry %llu: out of memory applying it (%s); exiting so a restart replays it",
			  (unsigned long long)m->applying, what);
	else
		log_error("out of memory in the model (%s); exiting so a restart rebuilds it from the log", what);
	abort();
}

static void *need(const struct model *m, void *p, const char *what)
{
	if (p == NULL)
		model_oom(m, what);
	return p;
}

void *model_need(const struct model *m, void *p, const char *what)
{
	return need(m, p, what);
}

/* The scheduler index must list every node as the model holds it. */
static void index_update(struct model *m, struct model_node *n)
{
	if (sched_index_update(&m->sched, n) != 0)
		model_oom(m, "the scheduler index");
}

static void refresh_policies(struct model *m, struct model_node *n)
{
	if (policy_refresh_node(m, n) != 0)
		model_oom(m, "a node's covering policies");
}

struct model_node *model_node_get(const struct model *m, const char *id)
{
	return hmap_get(&m->nodes, id);
}

struct model_actor *model_actor_get(const struct model *m, const char *id)
{
	return hmap_get(&m->actors, id);
}

/* Remembers that n's accounted usage changed, for the read view. */
static void touch(struct model *m, struct model_node *n)
{
	if (n->touched || m->touched_all)
		return;
	if (m->ntouched == m->captouched) {
		size_t cap = m->captouched ? m->captouched * 2 : 64;
		struct model_node **t = realloc(m->touched, cap * sizeof(*t));
		if (t == NULL) {
			m->touched_all = true; /* the view renders every node instead */
			return;
		}
		m->touched = t;
		m->captouched = cap;
	}
	m->touched[m->ntouched++] = n;
	n->touched = true;
}

static void untouch(struct model *m, struct model_node *n)
{
	if (!n->touched)
		return;
	for (size_t i = 0; i < m->ntouched; i++)
		if (m->touched[i] == n) {
			m->touched[i] = m->touched[--m->ntouched];
			break;
		}
	n->touched = false;
}

size_t model_take_touched(struct model *m, struct model_node ***out, bool *all)
{
	size_t n = m->ntouched;
	for (size_t i = 0; i < n; i++)
		m->touched[i]->touched = false;
	*out = m->touched;
	*all = m->touched_all;
	m->ntouched = 0;
	m->touched_all = false;
	return n;
}

void model_node_account(struct model *m, struct model_node *n, int64_t cpu, int64_t mem, int sign)
{
	n->cpu_used += sign * cpu;
	n->memory_used_mb += sign * mem;
	n->actor_count += sign;
	n->nplacements += sign;
	index_update(m, n);
	touch(m, n);
}

const char *model_node_status_name(enum node_status s)
{
	switch (s) {
	case NODE_HEALTHY: return "healthy";
	case NODE_DEGRADED: return "degraded";
	case NODE_UNHEALTHY: return "unhealthy";
	}
	return "unknown";
}

const char *model_placement_state_name(enum placement_state s)
{
	switch (s) {
	case PL_PENDING: return "pending";
	case PL_STARTING: return "starting";
	case PL_RUNNING: return "running";
	case PL_MIGRATING: return "migrating";
	case PL_STOPPING: return "stopping";
	case PL_FAILED: return "failed";
	}
	return "unknown";
}

/* ---- apply ----------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void res_set(struct apply_result *res, enum apply_code code,
							   const char *fmt, ...)
{
	va_list ap;
	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
}

static void res_id(struct apply_result *res, const char *id)
{
	snprintf(res->id, sizeof(res->id), "%s", id ? id : "");
}

/* A change of the node's own record. Actors landing on it or leaving it do not
 * count: its usage is derived from the placements (schema/003_node_usage.sql). */
static void node_touch(struct model_node *n, int64_t at)
{
	n->generation++;
	n->updated_ms = at;
}

int model_actor_contracts(const struct model *m, const struct model_actor *a, struct strlist *out)
{
	size_t cap = a->spec.contracts.n;
	size_t pos = 0;
	const struct model_link *l;
	while ((l = hmap_next(&m->links, &pos)) != NULL)
		if (strcmp(l->spec.actor_id, a->spec.id) == 0)
			cap++;
	struct strlist r = {NULL, 0};
	if (cap > 0 && (r.items = calloc(cap, sizeof(char *))) == NULL)
		return -1;
	for (size_t i = 0; i < a->spec.contracts.n; i++)
		r.items[r.n++] = a->spec.contracts.items[i];
	pos = 0;
	while ((l = hmap_next(&m->links, &pos)) != NULL)
		if (strcmp(l->spec.actor_id, a->spec.id) == 0)
			r.items[r.n++] = l->spec.contract_id;
	/* Sort and dedupe (borrowed pointers first, then duplicate the survivors). */
	for (size_t i = 1; i < r.n; i++)
		for (size_t j = i; j > 0 && strcmp(r.items[j - 1], r.items[j]) > 0; j--) {
			char *t = r.items[j];
			r.items[j] = r.items[j - 1];
			r.items[j - 1] = t;
		}
	size_t k = 0;
	for (size_t i = 0; i < r.n; i++)
		if (k == 0 || strcmp(r.items[k - 1], r.items[i]) != 0)
			r.items[k++] = r.items[i];
	r.n = k;
	for (size_t i = 0; i < r.n; i++) {
		if ((r.items[i] = strdup(r.items[i])) == NULL) {
			r.n = i;
			strlist_free(&r);
			return -1;
		}
	}
	*out = r;
	return 0;
}

/* data: the event's JSON text, NULL for {}. */
static void emit_event_text(struct model *m, struct proj_batch *out, const struct entry *e,
			    const char *kind, const char *type, const char *id, const char *data)
{
	m->event_seq++;
	if (out != NULL)
		proj_event(out, m->event_seq, e->at_ms, e->who ? e->who : "system", kind, type, id,
			   data ? data : "{}");
}

static void emit_event(struct model *m, struct proj_batch *out, const struct entry *e, const char *kind,
		       const char *type, const char *id, json_t *data /* stolen */)
{
	char *txt = out && data ? need(m, json_dumps(data, JSON_COMPACT), "an event") : NULL;
	json_decref(data);
	emit_event_text(m, out, e, kind, type, id, txt);
	free(txt);
}

void model_event(struct model *m, struct proj_batch *out, const struct entry *e, const char *kind,
		 const char *type, const char *id, json_t *data)
{
	emit_event(m, out, e, kind, type, id, data);
}

/* actor.created's data, {"placements": [node ids]}, as text (malloc'd): the hot
 * path writes it directly, no tree. */
static char *created_event_data(const struct model *m, const struct model_actor *a)
{
	struct jw w;
	jw_init(&w);
	jw_obj(&w);
	jw_key(&w, "placements");
	jw_arr(&w);
	for (size_t i = 0; i < a->nplacements; i++)
		jw_str(&w, a->placements[i].node->spec.id);
	jw_arr_end(&w);
	jw_obj_end(&w);
	return need(m, jw_take(&w, NULL), "an event");
}

/* An event's data (a new reference; json_pack's result or NULL, which only an
 * allocation failure gives for the values apply passes). */
static json_t *ev_data(const struct model *m, json_t *j)
{
	return need(m, j, "an event");
}

static json_t *node_ids_json(const struct model *m, struct model_placement *pl, size_t n)
{
	json_t *a = need(m, json_array(), "an event");
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(pl[i].node->spec.id)) != 0)
			model_oom(m, "an event");
	return a;
}

static void push_policy(struct model *m, const struct entry *e, struct model_node *n, struct proj_batch *out);
static bool covers_same(struct model_policy *const *a, size_t na, struct model_policy *const *b, size_t nb);

static void apply_node_put(struct model *m, struct entry *e, struct proj_batch *out,
			   struct apply_result *res)
{
	struct node_spec *s = &e->node;
	struct model_node *n = model_node_get(m, s->id);
	res_id(res, s->id);
	if (n != NULL && e->flag != 1) {
		res_set(res, APPLY_EXISTS, "node '%s' already exists", s->id);
		return;
	}
	if (n == NULL) {
		n = need(m, calloc(1, sizeof(*n)), "a node");
		if (hmap_put(&m->nodes, s->id, n) != 0)
			model_oom(m, "the node map");
		n->spec = *s;
		memset(s, 0, sizeof(*s));
		n->cpu_used = n->spec.cpu_used;
		n->memory_used_mb = n->spec.memory_used_mb;
		n->actor_count = n->spec.actor_count;
		n->cpu_measured = n->memory_measured_mb = -1;
		n->status = NODE_HEALTHY;
		n->created_ms = e->at_ms;
		n->updated_ms = e->at_ms;
		n->generation = 1;
		refresh_policies(m, n);
		if (n->npolicies > 0)
			push_policy(m, e, n, out); /* a new node learns the policies covering it */
		index_update(m, n);
		if (out)
			proj_node(out, n);
		emit_event(m, out, e, "node.registered", "node", n->spec.id,
			   ev_data(m, json_pack("{s:s}", "region", n->spec.region)));
		return;
	}
	/* Update in place: placements keep their requests, the base load changes. */
	sched_index_remove(&m->sched, n);
	n->cpu_used += s->cpu_used - n->spec.cpu_used;
	n->memory_used_mb += s->memory_used_mb - n->spec.memory_used_mb;
	n->actor_count += s->actor_count - n->spec.actor_count;
	struct node_spec old = n->spec;
	n->spec = *s;
	n->spec.id = old.id; /* the map's key lives in the node */
	old.id = s->id;
	memset(s, 0, sizeof(*s));
	spec_node_free(&old);
	node_touch(n, e->at_ms);
	size_t nbefore = n->npolicies;
	struct model_policy **before = need(m, calloc(nbefore ? nbefore : 1, sizeof(*before)), "a node's policies");
	if (nbefore > 0)
		memcpy(before, n->policies, nbefore * sizeof(*before));
	refresh_policies(m, n);
	if (!covers_same(before, nbefore, n->policies, n->npolicies))
		push_policy(m, e, n, out); /* a new region or labels: other policies cover it */
	free(before);
	index_update(m, n);
	if (out)
		proj_node(out, n);
	emit_event(m, out, e, "node.updated", "node", n->spec.id, NULL);
}

static void apply_node_flags(struct model *m, struct entry *e, struct proj_batch *out,
			     struct apply_result *res)
{
	struct model_node *n = model_node_get(m, e->target ? e->target : "");
	res_id(res, e->target);
	if (n == NULL) {
		res_set(res, APPLY_NOT_FOUND, "node '%s' not found", e->target ? e->target : "");
		return;
	}
	bool cordon = e->flag == 1;
	n->cordoned = cordon;
	if (!cordon)
		n->draining = false;
	node_touch(n, e->at_ms);
	index_update(m, n);
	if (out)
		proj_node(out, n);
	emit_event(m, out, e, cordon ? "node.cordoned" : "node.uncordoned", "node", n->spec.id, NULL);
}

/* A change of the policies covering n: its new target version is this entry's
 * index, and its merged policy goes to it as a security_policy command. Only
 * entries that write commands do it, so older logs replay as they did. */
static void push_policy(struct model *m, const struct entry *e, struct model_node *n, struct proj_batch *out)
{
	if (e->term == 0)
		return;
	n->policy_target = (int64_t)m->applying;
	char *payload = need(m, policy_merged_payload(n, n->policy_target), "a security_policy payload");
	model_cmd_add(m, e, CMD_SECURITY_POLICY, n->spec.id, NULL, 0, (uint64_t)n->policy_target, n->policy_target,
		      payload, out);
}

static bool covers_same(struct model_policy *const *a, size_t na, struct model_policy *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* A node back from unhealthy: replicas it kept because no other node could
 * take them (failed over to nowhere) start again there. */
static void restart_failed_on(struct model *m, const struct entry *e, struct model_node *n,
			      struct proj_batch *out)
{
	size_t pos = 0;
	struct model_actor *a;
	while ((a = hmap_next(&m->actors, &pos)) != NULL) {
		bool changed = false;
		for (size_t i = 0; i < a->nplacements; i++) {
			struct model_placement *p = &a->placements[i];
			if (p->node != n || p->state != PL_FAILED)
				continue;
			p->state = PL_PENDING;
			model_cmd_start(m, e, a, i, out);
			changed = true;
		}
		if (changed && out)
			proj_placements(out, a);
	}
}

/* What the leader learned from heartbeats. A report for a node deleted since
 * is skipped (the entry still applies: the others' reports stand). A change of
 * status is an event and a new generation; a refresh of usage or last-seen time
 * is neither (it would flood both). */
static void apply_node_report(struct model *m, struct entry *e, struct proj_batch *out,
			      struct apply_result *res)
{
	for (size_t i = 0; i < e->nreports; i++) {
		struct entry_report *rp = &e->reports[i];
		struct model_node *n = model_node_get(m, rp->node_id);
		if (n == NULL)
			continue;
		enum node_status was = n->status;
		bool sched = n->status != (enum node_status)rp->status || n->cpu_measured != rp->cpu_measured ||
			     n->memory_measured_mb != rp->memory_measured_mb;
		bool changed = sched || n->error_count != rp->error_count ||
			       n->policy_version != rp->policy_version ||
			       n->last_heartbeat_ms != rp->last_heartbeat_ms ||
			       !str_eq(n->agent_version, rp->agent_version);
		if (!changed)
			continue;
		n->status = (enum node_status)rp->status;
		n->error_count = rp->error_count;
		n->cpu_measured = rp->cpu_measured;
		n->memory_measured_mb = rp->memory_measured_mb;
		n->policy_version = rp->policy_version;
		n->last_heartbeat_ms = rp->last_heartbeat_ms;
		if (!str_eq(n->agent_version, rp->agent_version)) {
			free(n->agent_version);
			n->agent_version = rp->agent_version; /* moved */
			rp->agent_version = NULL;
		}
		if (sched)
			index_update(m, n);
		if (was == NODE_UNHEALTHY && n->status != NODE_UNHEALTHY && n->nplacements > 0 && e->term > 0)
			restart_failed_on(m, e, n, out);
		if (was != n->status) {
			node_touch(n, e->at_ms);
			emit_event(m, out, e, "node.status", "node", n->spec.id,
				   ev_data(m, json_pack("{s:s,s:s}", "from", model_node_status_name(was), "to",
							model_node_status_name(n->status))));
		}
		if (out)
			proj_node(out, n);
	}
	res_id(res, e->nreports ? e->reports[0].node_id : NULL);
}

bool model_move_ok(struct model *m, struct model_actor *a, struct model_node *to, char *why, size_t whylen);

/* Checks that replica `inst` of a may move to `to` (deterministic re-check of the
 * leader's plan). */
static bool move_ok(struct model *m, struct model_actor *a, struct model_node *to, char *why, size_t whylen)
{
	struct strlist contracts;
	if (model_actor_contracts(m, a, &contracts) != 0)
		model_oom(m, "an actor's contracts");
	struct sched_request req;
	sched_request_for(&a->spec, &contracts, &req);
	bool ok = sched_check(m, &req, to, why, whylen);
	strlist_free(&contracts);
	return ok;
}

bool model_move_ok(struct model *m, struct model_actor *a, struct model_node *to, char *why, size_t whylen)
{
	return move_ok(m, a, to, why, whylen);
}

bool model_move_matches(struct model *m, const struct entry_move *mv, const struct model_node *n,
			struct model_actor **a, struct model_node **to)
{
	*a = model_actor_get(m, mv->actor_id);
	*to = model_node_get(m, mv->to_node);
	return *a != NULL && mv->instance >= 0 && (size_t)mv->instance < (*a)->nplacements &&
	       (*a)->placements[mv->instance].node == n && *to != NULL && *to != n;
}

size_t model_moves_apply(struct model *m, const struct entry_move *moves, size_t nmoves, struct model_node *n,
			 enum model_move_fail *fail, char *why, size_t whylen)
{
	size_t done = 0;
	for (; done < nmoves; done++) {
		const struct entry_move *mv = &moves[done];
		struct model_actor *a;
		struct model_node *to;
		if (whylen > 0)
			why[0] = '\0';
		if (!model_move_matches(m, mv, n, &a, &to)) {
			*fail = MODEL_MOVE_GONE;
			break;
		}
		if (!move_ok(m, a, to, why, whylen)) {
			*fail = MODEL_MOVE_UNFIT;
			break;
		}
		model_node_account(m, to, a->spec.cpu_required, a->spec.memory_required_mb, +1);
		model_node_account(m, n, a->spec.cpu_required, a->spec.memory_required_mb, -1);
		a->placements[mv->instance].node = to;
	}
	if (done == nmoves)
		return nmoves;
	size_t bad = done;
	while (done-- > 0) { /* in reverse */
		const struct entry_move *mv = &moves[done];
		struct model_actor *a = model_actor_get(m, mv->actor_id);
		struct model_node *to = model_node_get(m, mv->to_node);
		model_node_account(m, to, a->spec.cpu_required, a->spec.memory_required_mb, -1);
		model_node_account(m, n, a->spec.cpu_required, a->spec.memory_required_mb, +1);
		a->placements[mv->instance].node = n;
	}
	return bad;
}

static void apply_node_drain(struct model *m, struct entry *e, struct proj_batch *out,
			     struct apply_result *res)
{
	struct model_node *n = model_node_get(m, e->target ? e->target : "");
	res_id(res, e->target);
	if (n == NULL) {
		res_set(res, APPLY_NOT_FOUND, "node '%s' not found", e->target ? e->target : "");
		return;
	}
	/* Validate every move first so the entry applies whole or not at all. */
	for (size_t i = 0; i < e->nmoves; i++) {
		struct model_actor *a;
		struct model_node *to;
		if (!model_move_matches(m, &e->moves[i], n, &a, &to)) {
			res_set(res, APPLY_STALE, "drain plan of node '%s' is out of date", n->spec.id);
			return;
		}
	}
	bool was_cordoned = n->cordoned, was_draining = n->draining;
	n->cordoned = true;
	n->draining = true;
	index_update(m, n);
	enum model_move_fail fail;
	char why[160];
	size_t bad = model_moves_apply(m, e->moves, e->nmoves, n, &fail, why, sizeof(why));
	if (bad < e->nmoves) {
		/* All matched above: one gone now was moved by an earlier move of this entry. */
		const struct entry_move *mv = &e->moves[bad];
		if (fail == MODEL_MOVE_GONE)
			res_set(res, APPLY_STALE, "drain plan of node '%s' is out of date: %s#%lld moved twice",
				n->spec.id, mv->actor_id, (long long)mv->instance);
		else
			res_set(res, APPLY_STALE, "drain plan of node '%s' is out of date: %s: %s", n->spec.id,
				mv->to_node, why);
		n->cordoned = was_cordoned;
		n->draining = was_draining;
		index_update(m, n);
		return;
	}
	node_touch(n, e->at_ms);
	for (size_t i = 0; i < e->nmoves; i++) {
		struct model_actor *a = model_actor_get(m, e->moves[i].actor_id);
		struct model_placement *p = &a->placements[e->moves[i].instance];
		p->state = PL_PENDING;
		p->state_version = 0;
		a->generation++;
		a->updated_ms = e->at_ms;
		model_mig_cancel(m, e, a, "the node was drained", out);
		model_cmd_start(m, e, a, (size_t)e->moves[i].instance, out);
		model_cmd_stop(m, e, a->spec.id, a->generation, e->moves[i].instance, n->spec.id, "moved", out);
		if (out) { /* the row too: generation and updated_at changed */
			proj_actor(out, a);
			proj_placements(out, a);
		}
	}
	if (out)
		proj_node(out, n);
	emit_event(m, out, e, "node.drained", "node", n->spec.id,
		   ev_data(m, json_pack("{s:I}", "moved", (json_int_t)e->nmoves)));
}

static void apply_node_delete(struct model *m, struct entry *e, struct proj_batch *out,
			      struct apply_result *res)
{
	struct model_node *n = model_node_get(m, e->target ? e->target : "");
	res_id(res, e->target);
	if (n == NULL) {
		res_set(res, APPLY_NOT_FOUND, "node '%s' not found", e->target ? e->target : "");
		return;
	}
	if (n->nplacements > 0) {
		res_set(res, APPLY_CONFLICT, "node '%s' still has %lld placements; drain it first", n->spec.id,
			(long long)n->nplacements);
		return;
	}
	sched_index_remove(&m->sched, n);
	hmap_del(&m->nodes, n->spec.id);
	untouch(m, n);
	if (out)
		proj_node_delete(out, n->spec.id);
	emit_event(m, out, e, "node.deleted", "node", n->spec.id, NULL);
	model_node_free(n);
}

/* Checks the planned nodes for new replicas [from, from+count) of a and accounts
 * them. On failure nothing stays accounted. */
static bool place_planned(struct model *m, struct model_actor *a, struct model_node **nodes, size_t count,
			  struct apply_result *res)
{
	struct strlist contracts;
	if (model_actor_contracts(m, a, &contracts) != 0)
		model_oom(m, "an actor's contracts");
	struct sched_request req;
	sched_request_for(&a->spec, &contracts, &req);
	size_t i = 0;
	for (; i < count; i++) {
		char why[160];
		if (!sched_check(m, &req, nodes[i], why, sizeof(why))) {
			res_set(res, APPLY_STALE, "placement plan is out of date: node '%s': %s",
				nodes[i]->spec.id, why);
			break;
		}
		model_node_account(m, nodes[i], a->spec.cpu_required, a->spec.memory_required_mb, +1);
	}
	strlist_free(&contracts);
	if (i == count)
		return true;
	while (i-- > 0)
		model_node_account(m, nodes[i], a->spec.cpu_required, a->spec.memory_required_mb, -1);
	return false;
}

/* Resolves the entry's planned node ids. */
static struct model_node **planned_nodes(struct model *m, const struct entry *e, struct apply_result *res)
{
	struct model_node **nodes = need(m, calloc(e->nplacements ? e->nplacements : 1, sizeof(*nodes)),
					 "the planned nodes");
	for (size_t i = 0; i < e->nplacements; i++) {
		nodes[i] = model_node_get(m, e->placements[i]);
		if (nodes[i] == NULL) {
			res_set(res, APPLY_STALE, "placement plan is out of date: node '%s' is gone",
				e->placements[i]);
			free(nodes);
			return NULL;
		}
	}
	return nodes;
}

bool model_node_has_room(const struct model_node *n, int64_t cpu, int64_t mem)
{
	if (n->spec.cpu_capacity > 0 && n->spec.cpu_capacity - n->cpu_used < cpu)
		return false;
	if (n->spec.memory_mb > 0 && n->spec.memory_mb - n->memory_used_mb < mem)
		return false;
	return true;
}

static void set_cursor(struct model *m, const struct entry *e)
{
	if (e->rr_cursor)
		snprintf(m->rr_cursor, sizeof(m->rr_cursor), "%s", e->rr_cursor);
}

static void apply_actor_create(struct model *m, struct entry *e, struct proj_batch *out,
			       struct apply_result *res)
{
	struct actor_spec *s = &e->actor;
	res_id(res, s->id);
	if (s->id == NULL) {
		res_set(res, APPLY_INVALID, "actor entry without id");
		return;
	}
	if (model_actor_get(m, s->id) != NULL) {
		res_set(res, APPLY_EXISTS, "actor '%s' already exists", s->id);
		return;
	}
	if ((int64_t)e->nplacements != s->replicas) {
		res_set(res, APPLY_INVALID, "actor '%s': %zu placements planned for %lld replicas", s->id,
			e->nplacements, (long long)s->replicas);
		return;
	}
	struct model_node **nodes = planned_nodes(m, e, res);
	if (nodes == NULL)
		return;
	struct model_actor *a = need(m, calloc(1, sizeof(*a)), "an actor");
	a->placements = need(m, calloc(e->nplacements ? e->nplacements : 1, sizeof(*a->placements)),
			     "an actor's placements");
	a->spec = *s; /* borrowed until the actor is committed below */
	if (!place_planned(m, a, nodes, e->nplacements, res)) {
		free(a->placements);
		free(a);
		free(nodes);
		return;
	}
	if (hmap_put(&m->actors, a->spec.id, a) != 0)
		model_oom(m, "the actor map");
	memset(s, 0, sizeof(*s)); /* the actor owns the spec now */
	if (a->spec.name == NULL)
		a->spec.name = need(m, strdup(a->spec.id), "an actor's name");
	a->nplacements = e->nplacements;
	for (size_t i = 0; i < e->nplacements; i++) {
		a->placements[i].node = nodes[i];
		a->placements[i].state = PL_PENDING;
	}
	a->generation = 1;
	a->created_ms = a->updated_ms = e->at_ms;
	set_cursor(m, e);
	for (size_t i = 0; i < a->nplacements; i++)
		model_cmd_start(m, e, a, i, out);
	char *data = NULL;
	if (out) {
		proj_actor_created(out, a);
		data = created_event_data(m, a);
	}
	emit_event_text(m, out, e, "actor.created", "actor", a->spec.id, data);
	free(data);
	free(nodes);
}

static void apply_actor_update(struct model *m, struct entry *e, struct proj_batch *out,
			       struct apply_result *res)
{
	struct model_actor *a = model_actor_get(m, e->target ? e->target : "");
	res_id(res, e->target);
	if (a == NULL) {
		res_set(res, APPLY_NOT_FOUND, "actor '%s' not found", e->target ? e->target : "");
		return;
	}
	const struct actor_patch *p = &e->patch;
	int64_t ocpu = a->spec.cpu_required, omem = a->spec.memory_required_mb;
	int64_t ncpu = p->has_cpu_required ? p->cpu_required : ocpu;
	int64_t nmem = p->has_memory_required_mb ? p->memory_required_mb : omem;
	int64_t nrep = p->has_replicas ? p->replicas : (int64_t)a->nplacements;
	size_t keep = (size_t)nrep < a->nplacements ? (size_t)nrep : a->nplacements;
	size_t add = (size_t)nrep > a->nplacements ? (size_t)nrep - a->nplacements : 0;
	if (e->nplacements != add) {
		res_set(res, APPLY_STALE, "actor '%s' changed while the update was planned", a->spec.id);
		return;
	}
	/* Another write got there first and left nothing to change: applied as it is. */
	if ((e->flag & ENTRY_UPDATE_KEEP_UNCHANGED) && ncpu == ocpu && nmem == omem &&
	    (size_t)nrep == a->nplacements)
		return;
	struct model_node **nodes = planned_nodes(m, e, res);
	if (nodes == NULL)
		return;
	struct model_placement *np = need(m, calloc((size_t)nrep ? (size_t)nrep : 1, sizeof(*np)),
					  "an actor's placements");
	/* 1. release the replicas that go away and every kept one's old request. */
	for (size_t i = 0; i < a->nplacements; i++)
		model_node_account(m, a->placements[i].node, ocpu, omem, -1);
	/* 2. the kept replicas stay where they are; with a new request they need room
	 * for it there (only room: a cordoned node keeps what it runs). */
	a->spec.cpu_required = ncpu;
	a->spec.memory_required_mb = nmem;
	bool ok = true;
	size_t k = 0;
	for (; k < keep; k++) {
		struct model_node *n = a->placements[k].node;
		if ((ncpu != ocpu || nmem != omem) && !model_node_has_room(n, ncpu, nmem)) {
			res_set(res, APPLY_INSUFFICIENT,
				"actor scale failed: insufficient resources (node '%s' has no room for "
				"%lld millicores and %lld MiB)",
				n->spec.id, (long long)ncpu, (long long)nmem);
			ok = false;
			break;
		}
		model_node_account(m, n, ncpu, nmem, +1);
	}
	if (!ok)
		while (k-- > 0)
			model_node_account(m, a->placements[k].node, ncpu, nmem, -1);
	/* 3. the new replicas on their planned nodes. */
	if (ok && add > 0 && !place_planned(m, a, nodes, add, res)) {
		for (size_t i = 0; i < keep; i++)
			model_node_account(m, a->placements[i].node, ncpu, nmem, -1);
		ok = false;
	}
	if (!ok) {
		a->spec.cpu_required = ocpu;
		a->spec.memory_required_mb = omem;
		for (size_t i = 0; i < a->nplacements; i++)
			model_node_account(m, a->placements[i].node, ocpu, omem, +1);
		free(nodes);
		free(np);
		return;
	}
	json_t *removed = node_ids_json(m, a->placements + keep, a->nplacements - keep);
	for (size_t i = keep; i < a->nplacements; i++)
		model_cmd_stop(m, e, a->spec.id, a->generation + 1, (int64_t)i, a->placements[i].node->spec.id,
			       "scaled_down", out);
	memcpy(np, a->placements, keep * sizeof(*np));
	for (size_t i = 0; i < add; i++) {
		np[keep + i].node = nodes[i];
		np[keep + i].state = PL_PENDING;
	}
	free(a->placements);
	a->placements = np;
	a->nplacements = (size_t)nrep;
	a->spec.replicas = nrep;
	a->generation++;
	a->updated_ms = e->at_ms;
	set_cursor(m, e);
	for (size_t i = keep; i < (size_t)nrep; i++)
		model_cmd_start(m, e, a, i, out);
	/* Its placements changed under a migration under way: it ends here. */
	model_mig_cancel(m, e, a, "the actor was updated", out);
	if (out) {
		proj_actor(out, a);
		proj_placements(out, a);
	}
	emit_event(m, out, e, "actor.updated", "actor", a->spec.id,
		   ev_data(m, json_pack("{s:I,s:I,s:I,s:o,s:o}", "replicas", (json_int_t)nrep, "cpu_required",
					(json_int_t)ncpu, "memory_required_mb", (json_int_t)nmem, "added",
					node_ids_json(m, np + keep, add), "removed", removed)));
	free(nodes);
}

static void apply_actor_delete(struct model *m, struct entry *e, struct proj_batch *out,
			       struct apply_result *res)
{
	struct model_actor *a = model_actor_get(m, e->target ? e->target : "");
	res_id(res, e->target);
	if (a == NULL) {
		res_set(res, APPLY_NOT_FOUND, "actor '%s' not found", e->target ? e->target : "");
		return;
	}
	model_mig_cancel(m, e, a, "the actor was deleted", out);
	json_t *nodes = node_ids_json(m, a->placements, a->nplacements);
	for (size_t i = 0; i < a->nplacements; i++) {
		model_node_account(m, a->placements[i].node, a->spec.cpu_required,
				   a->spec.memory_required_mb, -1);
		model_cmd_stop(m, e, a->spec.id, a->generation + 1, (int64_t)i, a->placements[i].node->spec.id,
			       "deleted", out);
	}
	/* Its links go with it: a link is meaningless without its actor. */
	size_t pos = 0;
	struct model_link *l;
	struct model_link **gone = NULL;
	size_t ngone = 0, capgone = 0;
	while ((l = hmap_next(&m->links, &pos)) != NULL) {
		if (strcmp(l->spec.actor_id, a->spec.id) != 0)
			continue;
		if (ngone == capgone) {
			capgone = capgone ? capgone * 2 : 8;
			gone = need(m, realloc(gone, capgone * sizeof(*gone)), "the links to delete");
		}
		gone[ngone++] = l;
	}
	for (size_t i = 0; i < ngone; i++) {
		hmap_del(&m->links, gone[i]->spec.id);
		model_link_free(gone[i]);
	}
	free(gone);
	hmap_del(&m->actors, a->spec.id);
	if (out)
		proj_actor_delete(out, a->spec.id);
	emit_event(m, out, e, "actor.deleted", "actor", a->spec.id, ev_data(m, json_pack("{s:o}", "nodes", nodes)));
	model_actor_free(a);
}

static void apply_provider_create(struct model *m, struct entry *e, struct proj_batch *out,
				  struct apply_result *res)
{
	struct provider_spec *s = &e->provider;
	res_id(res, s->id);
	if (s->id == NULL) {
		res_set(res, APPLY_INVALID, "provider entry without id");
		return;
	}
	if (hmap_get(&m->providers, s->id) != NULL) {
		res_set(res, APPLY_EXISTS, "provider '%s' already exists", s->id);
		return;
	}
	for (size_t i = 0; i < s->nodes.n; i++) {
		if (model_node_get(m, s->nodes.items[i]) == NULL) {
			res_set(res, APPLY_NOT_FOUND, "node '%s' not found", s->nodes.items[i]);
			return;
		}
	}
	struct model_provider *p = need(m, calloc(1, sizeof(*p)), "a provider");
	if (hmap_put(&m->providers, s->id, p) != 0)
		model_oom(m, "the provider map");
	p->spec = *s;
	memset(s, 0, sizeof(*s));
	p->created_ms = e->at_ms;
	if (out)
		proj_provider(out, p);
	emit_event(m, out, e, "provider.created", "provider", p->spec.id,
		   ev_data(m, json_pack("{s:s}", "contract_id", p->spec.contract_id)));
}

static void apply_provider_delete(struct model *m, struct entry *e, struct proj_batch *out,
				  struct apply_result *res)
{
	const char *id = e->target ? e->target : "";
	struct model_provider *p = hmap_get(&m->providers, id);
	res_id(res, id);
	if (p == NULL) {
		res_set(res, APPLY_NOT_FOUND, "provider '%s' not found", id);
		return;
	}
	size_t pos = 0, nlinks = 0;
	struct model_link *l;
	while ((l = hmap_next(&m->links, &pos)) != NULL)
		if (strcmp(l->spec.provider_id, id) == 0)
			nlinks++;
	if (nlinks > 0) {
		res_set(res, APPLY_CONFLICT, "provider '%s' is used by %zu links; delete them first", id, nlinks);
		return;
	}
	hmap_del(&m->providers, id);
	if (out)
		proj_provider_delete(out, p->spec.id);
	emit_event(m, out, e, "provider.deleted", "provider", p->spec.id, NULL);
	model_provider_free(p);
}

static void apply_link_create(struct model *m, struct entry *e, struct proj_batch *out,
			      struct apply_result *res)
{
	struct link_spec *s = &e->link;
	res_id(res, s->id);
	if (s->id == NULL) {
		res_set(res, APPLY_INVALID, "link entry without id");
		return;
	}
	if (hmap_get(&m->links, s->id) != NULL) {
		res_set(res, APPLY_EXISTS, "link '%s' already exists", s->id);
		return;
	}
	struct model_actor *a = model_actor_get(m, s->actor_id);
	if (a == NULL) {
		res_set(res, APPLY_NOT_FOUND, "actor '%s' not found", s->actor_id);
		return;
	}
	struct model_provider *p = hmap_get(&m->providers, s->provider_id);
	if (p == NULL) {
		res_set(res, APPLY_NOT_FOUND, "provider '%s' not found", s->provider_id);
		return;
	}
	if (strcmp(p->spec.contract_id, s->contract_id) != 0) {
		res_set(res, APPLY_INVALID, "provider '%s' serves contract %s, not %s", p->spec.id,
			p->spec.contract_id, s->contract_id);
		return;
	}
	size_t pos = 0;
	struct model_link *l;
	while ((l = hmap_next(&m->links, &pos)) != NULL) {
		if (strcmp(l->spec.actor_id, s->actor_id) == 0 && strcmp(l->spec.contract_id, s->contract_id) == 0 &&
		    strcmp(l->spec.link_name, s->link_name) == 0) {
			res_set(res, APPLY_EXISTS, "actor '%s' already has a %s link named '%s' (link '%s')",
				s->actor_id, s->contract_id, s->link_name, l->spec.id);
			return;
		}
	}
	/* A link is checked against the nodes its actor runs on when it is made. */
	for (size_t i = 0; i < a->nplacements; i++) {
		if (!policy_allows_contract(a->placements[i].node, s->contract_id)) {
			res_set(res, APPLY_DENIED, "capability denied: %s", s->contract_id);
			return;
		}
	}
	struct model_link *nl = need(m, calloc(1, sizeof(*nl)), "a link");
	if (hmap_put(&m->links, s->id, nl) != 0)
		model_oom(m, "the link map");
	nl->spec = *s;
	memset(s, 0, sizeof(*s));
	nl->created_ms = e->at_ms;
	if (out)
		proj_link(out, nl);
	emit_event(m, out, e, "link.created", "link", nl->spec.id,
		   ev_data(m, json_pack("{s:s,s:s,s:s}", "actor_id", nl->spec.actor_id, "provider_id",
					nl->spec.provider_id, "contract_id", nl->spec.contract_id)));
}

static void apply_link_delete(struct model *m, struct entry *e, struct proj_batch *out,
			      struct apply_result *res)
{
	const char *id = e->target ? e->target : "";
	struct model_link *l = hmap_get(&m->links, id);
	res_id(res, id);
	if (l == NULL) {
		res_set(res, APPLY_NOT_FOUND, "link '%s' not found", id);
		return;
	}
	hmap_del(&m->links, id);
	if (out)
		proj_link_delete(out, l->spec.id);
	emit_event(m, out, e, "link.deleted", "link", l->spec.id, NULL);
	model_link_free(l);
}

static void apply_policy_put(struct model *m, struct entry *e, struct proj_batch *out,
			     struct apply_result *res)
{
	struct policy_spec *s = &e->policy;
	res_id(res, s->policy_id);
	if (s->policy_id == NULL) {
		res_set(res, APPLY_INVALID, "policy entry without id");
		return;
	}
	struct model_policy *p = hmap_get(&m->policies, s->policy_id);
	bool create = e->flag == 1;
	if (create && p != NULL) {
		res_set(res, APPLY_EXISTS, "policy '%s' already exists", s->policy_id);
		return;
	}
	if (!create && p == NULL) {
		res_set(res, APPLY_NOT_FOUND, "policy '%s' not found", s->policy_id);
		return;
	}
	if (create) {
		p = need(m, calloc(1, sizeof(*p)), "a policy");
		if (hmap_put(&m->policies, s->policy_id, p) != 0)
			model_oom(m, "the policy map");
		p->spec = *s;
		p->version = 1;
		p->created_ms = e->at_ms;
	} else {
		/* The version being replaced joins the history (room first, so a
		 * failure changes nothing). */
		struct model_policy_version *h =
			need(m, realloc(p->history, (p->nhistory + 1) * sizeof(*h)), "a policy's history");
		p->history = h;
		struct model_policy_version *old = &h[p->nhistory++];
		old->spec = p->spec;
		old->version = p->version;
		old->made_ms = p->updated_ms > 0 ? p->updated_ms : p->created_ms;
		p->spec = *s;
		p->spec.policy_id = old->spec.policy_id; /* the map's key lives in the policy */
		old->spec.policy_id = NULL;
		free(s->policy_id);
		p->version++;
	}
	memset(s, 0, sizeof(*s));
	p->updated_ms = e->at_ms;
	/* Coverage may have changed for any node; every node the policy covered
	 * or covers now gets its new merged policy. */
	size_t pos = 0;
	struct model_node *n;
	while ((n = hmap_next(&m->nodes, &pos)) != NULL) {
		bool had = false, has = false;
		for (size_t i = 0; i < n->npolicies; i++)
			had |= n->policies[i] == p;
		refresh_policies(m, n);
		for (size_t i = 0; i < n->npolicies; i++)
			has |= n->policies[i] == p;
		if (had || has) {
			push_policy(m, e, n, out);
			if (out && e->term)
				proj_node(out, n);
		}
	}
	if (out)
		proj_policy(out, p);
	emit_event(m, out, e, create ? "policy.created" : "policy.updated", "policy", p->spec.policy_id,
		   ev_data(m, json_pack("{s:I}", "version", (json_int_t)p->version)));
}

void model_apply(struct model *m, struct entry *e, uint64_t index, struct proj_batch *out,
		 struct apply_result *res)
{
	memset(res, 0, sizeof(*res));
	m->applying = index; /* for model_oom's message, and command ids */
	m->applying_at_ms = e->at_ms;
	m->cmd_next = 0;
	const struct model_idem *seen = e->idem_key ? model_idem_get(m, e->idem_key) : NULL;
	if (seen && seen->at_ms >= e->at_ms - MODEL_IDEM_WINDOW_MS) {
		/* A retry that reached the log twice (sent again before the first was
		 * answered): the first one stands. */
		res_id(res, seen->id);
		res->first_index = seen->index;
		if (seen->fp != e->idem_fp)
			res_set(res, APPLY_KEY_REUSED, "Idempotency-Key '%s' was used for another request", e->idem_key);
		else
			res_set(res, APPLY_DUPLICATE, "Idempotency-Key '%s' was applied at index %llu", e->idem_key,
				(unsigned long long)seen->index);
		m->applying = 0;
		return;
	}
	switch (e->op) {
	case ENTRY_NODE_PUT: apply_node_put(m, e, out, res); break;
	case ENTRY_NODE_FLAGS: apply_node_flags(m, e, out, res); break;
	case ENTRY_NODE_DRAIN: apply_node_drain(m, e, out, res); break;
	case ENTRY_NODE_DELETE: apply_node_delete(m, e, out, res); break;
	case ENTRY_NODE_REPORT: apply_node_report(m, e, out, res); break;
	case ENTRY_COMMAND_UPDATE: model_cmd_apply_update(m, e, out, res); break;
	case ENTRY_FAILOVER: model_fo_apply(m, e, out, res); break;
	case ENTRY_SNAPSHOT_PUT: model_snap_apply(m, e, out, res); break;
	case ENTRY_ACTOR_MIGRATE: model_mig_apply(m, e, out, res); break;
	case ENTRY_RECONCILE: model_cmd_apply_reconcile(m, e, out, res); break;
	case ENTRY_ACTOR_CREATE: apply_actor_create(m, e, out, res); break;
	case ENTRY_ACTOR_UPDATE: apply_actor_update(m, e, out, res); break;
	case ENTRY_ACTOR_DELETE: apply_actor_delete(m, e, out, res); break;
	case ENTRY_PROVIDER_CREATE: apply_provider_create(m, e, out, res); break;
	case ENTRY_PROVIDER_DELETE: apply_provider_delete(m, e, out, res); break;
	case ENTRY_LINK_CREATE: apply_link_create(m, e, out, res); break;
	case ENTRY_LINK_DELETE: apply_link_delete(m, e, out, res); break;
	case ENTRY_POLICY_PUT: apply_policy_put(m, e, out, res); break;
	case ENTRY_MEMBER_PUT:
	case ENTRY_MEMBER_DELETE:
		if (model_member_set(m, e->member_id, e->op == ENTRY_MEMBER_PUT ? e->api_url : NULL) != 0)
			model_oom(m, "a member's URL");
		break;
	default: res_set(res, APPLY_INVALID, "unknown entry op %d", (int)e->op); break;
	}
	/* The latest, not the last: entries proposed before model_entry_time existed
	 * may go back in time. */
	if (res->code == APPLY_OK && e->at_ms > m->last_at_ms)
		m->last_at_ms = e->at_ms;
	if (res->code == APPLY_OK && e->idem_key)
		model_idem_put(m, e->idem_key, e->idem_fp, res->id, index, e->at_ms);
	m->applying = 0;
}

int64_t model_entry_time(const struct model *m, int64_t wallclock_ms)
{
	return wallclock_ms > m->last_at_ms ? wallclock_ms : m->last_at_ms;
}
