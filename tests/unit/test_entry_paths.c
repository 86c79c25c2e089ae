/* test_entry_paths — the two ways an entry reaches apply give the same replica.
 *
 * The leader applies the entry it proposed as the in-memory struct it built
 * (fsm.proposed: API body parsed by spec.c, then ids, plan and time filled in as
 * ops.c does); every other replica applies entry_decode(entry_encode(it)). A
 * field the encoder drops, or a default the decoder fills differently, would make
 * the leader differ from its followers for good. A long random workload of every
 * op goes down both paths into two models, compared after every step: result,
 * projection rows and events, and the whole model (fixture's dump). */
#include <raft.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "model.h"
#include "model_fixture.h"
#include "proj.h"
#include "sched.h"
#include "tap.h"

static uint64_t rng = 0x2545F4914F6CDD1DULL;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)((rng >> 11) % n);
}

static const char *const NODES[] = {"n0", "n1", "n2", "n3", "n4", "n5"};
static const char *const ACTORS[] = {"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"};
static const char *const PROVS[] = {"p0", "p1", "p2", "p3"};
static const char *const LINKS[] = {"l0", "l1", "l2", "l3", "l4", "l5"};
static const char *const POLS[] = {"pol0", "pol1", "pol2"};
static const char *const CONTRACTS[] = {"wasmcloud:keyvalue", "wasmcloud:httpserver", "wasmcloud:messaging"};
#define PICK(a) (a[rnd(sizeof(a) / sizeof(a[0]))])

/* Mostly an id the model has. */
static const char *pick_in(const struct hmap *h, const char *const *pool, size_t n)
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
#define PICK_IN(h, a) pick_in(h, a, sizeof(a) / sizeof(a[0]))

enum kind { K_NODE, K_CORDON, K_DRAIN, K_NODE_DEL, K_ACTOR, K_PATCH, K_ACTOR_DEL, K_PROV, K_PROV_DEL, K_LINK,
	    K_LINK_DEL, K_POL_CREATE, K_POL_UPDATE, K_COUNT };
static const char *const kind_name[K_COUNT] = {"node create/update", "cordon/uncordon", "drain", "node delete",
					       "actor create", "actor patch", "actor delete", "provider create",
					       "provider delete", "link create", "link delete", "policy create",
					       "policy update"};
static const int weight[K_COUNT] = {3, 2, 2, 1, 5, 4, 1, 2, 1, 3, 1, 1, 2};

static enum kind rand_kind(int step)
{
	if (step < 6)
		return K_NODE;
	int total = 0;
	for (int k = 0; k < K_COUNT; k++)
		total += weight[k];
	int x = (int)rnd((uint32_t)total);
	for (int k = 0; k < K_COUNT; k++)
		if ((x -= weight[k]) < 0)
			return (enum kind)k;
	return K_NODE;
}

/* "'key':'id'," for a body (a static buffer, one of four in turn). */
static const char *kv_id(const char *key, const char *id)
{
	static char buf[4][96];
	static int k;
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "'%s':'%s',", key, id);
	return buf[k];
}

/* "'contract'" or "" (a static buffer, one of four in turn). */
static const char *quoted_or_none(bool none, const char *s)
{
	static char buf[4][96];
	static int k;
	k = (k + 1) % 4;
	if (none)
		buf[k][0] = '\0';
	else
		snprintf(buf[k], sizeof(buf[k]), "'%s'", s);
	return buf[k];
}

/* A request body as the API receives it (single quotes for double). */
static json_t *body(const char *text)
{
	char *t = dq(strdup(text));
	json_t *j = NULL;
	struct spec_err se;
	if (spec_parse_body(t, strlen(t), &j, &se) != 0)
		tap_diag("bad body in test: %s: %s", se.message, t);
	free(t);
	return j;
}

/* "'n1','n2'" (a fixture plan) as the entry's placements. */
static void set_plan(struct entry *e, const char *list, const char *cursor)
{
	char *t = dq(fmt("[%s]", list));
	json_t *a = json_loads(t, 0, NULL);
	size_t n = json_array_size(a);
	e->placements = n ? calloc(n, sizeof(char *)) : NULL;
	for (size_t i = 0; i < n; i++)
		e->placements[i] = strdup(json_string_value(json_array_get(a, i)));
	e->nplacements = n;
	if (cursor && cursor[0])
		e->rr_cursor = strdup(cursor);
	json_decref(a);
	free(t);
}

/* Replaces one planned node with any node (a plan gone stale). */
static void spoil_plan(struct entry *e)
{
	if (e->nplacements == 0)
		return;
	size_t i = rnd((uint32_t)e->nplacements);
	free(e->placements[i]);
	e->placements[i] = strdup(rnd(4) ? PICK(NODES) : "n9");
}

/* The entry the leader proposes for one random request against m: what api.c
 * parses into op->entry, completed as ops_execute and ops_propose complete it.
 * Returns false when the API would have refused the body (try another). */
static bool leader_entry(struct model *m, int step, int64_t at, struct entry *e, enum kind *kout)
{
	char text[2048], list[1024], cur[SPEC_ID_MAX + 1];
	char target[SPEC_ID_MAX + 1] = "";
	struct spec_err se;
	json_t *j = NULL;
	int rc = 0;
	enum kind k = rand_kind(step);
	*kout = k;
	memset(e, 0, sizeof(*e));
	switch (k) {
	case K_NODE: {
		const char *id = PICK(NODES);
		int64_t cap = rnd(6) ? 2000 + 500 * (int64_t)rnd(9) : 0;
		int64_t mem = rnd(6) ? 2048 * (1 + (int64_t)rnd(6)) : 0;
		snprintf(text, sizeof(text),
			 "{'id':'%s','region':'r%u',%s'cpu_capacity':%lld,'memory_mb':%lld%s}", id, rnd(2),
			 rnd(3) ? "'labels':{'tier':'edge','zone':'z1'}," : "", (long long)cap, (long long)mem,
			 rnd(3) ? "" : ",'cpu_used':100,'memory_used_mb':64,'actor_count':1");
		j = body(text);
		rc = spec_node_from_json(j, &e->node, &se);
		e->op = ENTRY_NODE_PUT;
		/* The API registers (flag 0); an update in place (flag 1) is an entry
		 * the model takes as well. */
		e->flag = model_node_get(m, id) && rnd(3) ? 1 : 0;
		break;
	}
	case K_CORDON:
		e->op = ENTRY_NODE_FLAGS;
		e->flag = rnd(2);
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->nodes, NODES));
		break;
	case K_DRAIN: {
		e->op = ENTRY_NODE_DRAIN;
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->nodes, NODES));
		struct model_node *n = model_node_get(m, target);
		char moves[4096] = "";
		if (n != NULL)
			plan_drain(m, n, moves, sizeof(moves));
		char *t = dq(fmt("[%s]", moves));
		json_t *a = json_loads(t, 0, NULL);
		free(t);
		e->nmoves = json_array_size(a);
		e->moves = e->nmoves ? calloc(e->nmoves, sizeof(*e->moves)) : NULL;
		for (size_t i = 0; i < e->nmoves; i++) {
			json_t *mv = json_array_get(a, i);
			e->moves[i].actor_id = strdup(json_string_value(json_object_get(mv, "actor_id")));
			e->moves[i].instance = json_integer_value(json_object_get(mv, "instance"));
			e->moves[i].to_node = strdup(json_string_value(json_object_get(mv, "to_node")));
		}
		json_decref(a);
		if (e->nmoves && rnd(8) == 0) { /* stale: another target */
			free(e->moves[0].to_node);
			e->moves[0].to_node = strdup(PICK(NODES));
		}
		break;
	}
	case K_NODE_DEL:
		e->op = ENTRY_NODE_DELETE;
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->nodes, NODES));
		break;
	case K_ACTOR: {
		char rest[1024];
		bool named = rnd(3) == 0, with_id = rnd(8) != 0;
		snprintf(rest, sizeof(rest),
			 "%s" MODULE ",'cpu_required':%u,'memory_required_mb':%u,'replicas':%u%s%s%s%s%s",
			 named ? "'name':'Some actor'," : "", 100 * (1 + rnd(12)),
			 128 * (1 + rnd(12)), 1 + rnd(3), rnd(4) ? "" : ",'strategy':'round_robin'",
			 rnd(3) ? "" : ",'preferred_region':'r1'", rnd(6) ? "" : ",'constraints':{'tier':'edge'}",
			 rnd(4) ? "" : ",'contracts':['wasmcloud:keyvalue']",
			 rnd(4) ? "" : ",'priority':7,'max_latency_ms':40");
		snprintf(text, sizeof(text), "{%s%s}", with_id ? kv_id("id", PICK(ACTORS)) : "", rest);
		j = body(text);
		rc = spec_actor_from_json(j, &e->actor, &se);
		e->op = ENTRY_ACTOR_CREATE;
		if (rc != 0)
			break;
		/* ops.c: a generated id when none was given, the name defaulting to it */
		if (e->actor.id == NULL)
			e->actor.id = fmt("act-g%d", step % 3);
		if (e->actor.name == NULL)
			e->actor.name = strdup(e->actor.id);
		char *planfields = fmt("'id':'%s',%s", e->actor.id, rest);
		if (plan_actor(m, planfields, list, sizeof(list), cur) != SCHED_OK) {
			free(planfields);
			rc = -1; /* the leader answers 409 without an entry */
			break;
		}
		free(planfields);
		set_plan(e, list, cur);
		if (rnd(8) == 0)
			spoil_plan(e);
		break;
	}
	case K_PATCH: {
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->actors, ACTORS));
		char p[256] = "";
		size_t l = 0;
		if (rnd(2))
			l += (size_t)snprintf(p + l, sizeof(p) - l, "'replicas':%u,", 1 + rnd(4));
		if (rnd(3) == 0)
			l += (size_t)snprintf(p + l, sizeof(p) - l, "'cpu_required':%u,", 100 * (1 + rnd(12)));
		if (l == 0 || rnd(3) == 0)
			l += (size_t)snprintf(p + l, sizeof(p) - l, "'memory_required_mb':%u,", 128 * (1 + rnd(12)));
		p[l - 1] = '\0';
		snprintf(text, sizeof(text), "{%s}", p);
		j = body(text);
		rc = spec_actor_patch_from_json(j, &e->patch, &se);
		e->op = ENTRY_ACTOR_UPDATE;
		e->flag = ENTRY_UPDATE_KEEP_UNCHANGED;
		struct model_actor *a = model_actor_get(m, target);
		if (rc == 0 && a != NULL) {
			if (plan_update(m, a, &e->patch, list, sizeof(list), cur) != SCHED_OK) {
				rc = -1;
				break;
			}
			set_plan(e, list, cur);
			if (rnd(8) == 0)
				spoil_plan(e);
		}
		break;
	}
	case K_ACTOR_DEL:
		e->op = ENTRY_ACTOR_DELETE;
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->actors, ACTORS));
		break;
	case K_PROV: {
		char nodes[256] = "";
		for (size_t i = 0; i < 6; i++)
			if (rnd(4) == 0)
				list_add(nodes, sizeof(nodes), NODES[i]);
		snprintf(text, sizeof(text), "{%s'contract_id':'%s','image':'ghcr.io/p/x:1','nodes':[%s]}",
			 rnd(6) ? kv_id("id", PICK(PROVS)) : "", PICK(CONTRACTS), nodes);
		j = body(text);
		rc = spec_provider_from_json(j, &e->provider, &se);
		e->op = ENTRY_PROVIDER_CREATE;
		if (rc == 0 && e->provider.id == NULL)
			e->provider.id = fmt("prv-g%d", step % 3);
		break;
	}
	case K_PROV_DEL:
		e->op = ENTRY_PROVIDER_DELETE;
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->providers, PROVS));
		break;
	case K_LINK: {
		const char *pid = PICK_IN(&m->providers, PROVS);
		struct model_provider *pv = hmap_get(&m->providers, pid);
		snprintf(text, sizeof(text),
			 "{%s'actor_id':'%s','provider_id':'%s','contract_id':'%s'%s%s%s}",
			 rnd(6) ? kv_id("id", PICK(LINKS)) : "", PICK_IN(&m->actors, ACTORS), pid,
			 pv && rnd(5) ? pv->spec.contract_id : PICK(CONTRACTS), rnd(2) ? ",'link_name':'alt'" : "",
			 rnd(2) ? ",'values':{'url':'redis://x','k':'v'}" : "",
			 rnd(3) ? "" : ",'timeout_ms':250,'retry_count':0,'retry_delay_ms':5");
		j = body(text);
		rc = spec_link_from_json(j, &e->link, &se);
		e->op = ENTRY_LINK_CREATE;
		if (rc == 0 && e->link.id == NULL)
			e->link.id = fmt("lnk-g%d", step % 3);
		break;
	}
	case K_LINK_DEL:
		e->op = ENTRY_LINK_DELETE;
		snprintf(target, sizeof(target), "%s", PICK_IN(&m->links, LINKS));
		break;
	case K_POL_CREATE:
	case K_POL_UPDATE: {
		bool create = k == K_POL_CREATE;
		const char *id = create ? PICK(POLS) : PICK_IN(&m->policies, POLS);
		uint32_t allow = rnd(3), deny = (allow + 1 + rnd(2)) % 3;
		snprintf(text, sizeof(text),
			 "{%s'allowed_contracts':[%s],'denied_contracts':[%s],'max_actor_memory_mb':%u%s%s}",
			 create && rnd(5) ? kv_id("policy_id", id) : "", quoted_or_none(rnd(3), CONTRACTS[allow]),
			 quoted_or_none(rnd(3), CONTRACTS[deny]), rnd(3) ? 0 : 256 * (1 + rnd(8)),
			 rnd(2) ? "" : ",'network_restrictions':['deny 10.0.0.0/8']",
			 rnd(2)	  ? ""
			 : rnd(2) ? ",'selector':{'regions':['r0']}"
				  : ",'selector':{'labels':{'tier':'edge'}}");
		j = body(text);
		rc = spec_policy_from_json(j, &e->policy, &se);
		e->op = ENTRY_POLICY_PUT;
		if (rc != 0)
			break;
		if (create) {
			e->flag = 1;
			if (e->policy.policy_id == NULL)
				e->policy.policy_id = fmt("pol-g%d", step % 3);
		} else {
			snprintf(target, sizeof(target), "%s", id);
			free(e->policy.policy_id); /* ops.c: the URL's id */
			e->policy.policy_id = strdup(target);
		}
		break;
	}
	default:
		break;
	}
	json_decref(j);
	if (rc != 0) {
		entry_release(e);
		return false;
	}
	/* ops_execute: the URL's id; ops_propose: the time and who. */
	if (target[0])
		e->target = strdup(target);
	e->at_ms = at;
	e->who = strdup("api");
	return true;
}

/* Both batches' rows and events, parameter by parameter. */
static bool same_rows(const struct proj_batch *a, const struct proj_batch *b, char *why, size_t len)
{
	const struct proj_change *x = a->head, *y = b->head;
	for (int i = 0; x && y; x = x->next, y = y->next, i++) {
		if (x->kind != y->kind || x->fresh != y->fresh || x->nparams != y->nparams) {
			snprintf(why, len, "change %d: kind %d/%d, fresh %d/%d, %d/%d parameters", i, x->kind, y->kind,
				 x->fresh, y->fresh, x->nparams, y->nparams);
			return false;
		}
		for (int p = 0; p < x->nparams; p++) {
			const char *u = x->params[p], *v = y->params[p];
			if ((u == NULL) != (v == NULL) || (u && strcmp(u, v) != 0)) {
				snprintf(why, len, "change %d (kind %d) parameter %d: '%s' vs '%s'", i, x->kind, p,
					 u ? u : "NULL", v ? v : "NULL");
				return false;
			}
		}
	}
	if (x || y) {
		snprintf(why, len, "%zu vs %zu changes", a->n, b->n);
		return false;
	}
	return a->failed == b->failed;
}

#define STEPS 2000

static void test_both_paths(void)
{
	const char *seed = getenv("LATTICE_TEST_SEED"); /* to explore other workloads */
	if (seed != NULL)
		rng = strtoull(seed, NULL, 0) | 1;
	tap_diag("workload seed %#llx", (unsigned long long)rng);
	struct model lead, follow;
	model_init(&lead);
	model_init(&follow);
	int n_ok[K_COUNT] = {0}, n_rej[K_COUNT] = {0};
	int bad_codec = 0, bad_result = 0, bad_rows = 0, bad_state = 0, steps = 0;
	int64_t at = 1700000000000LL;
	for (int i = 0; i < STEPS && bad_state == 0; i++) {
		struct entry e, d;
		enum kind k;
		/* The clock jumps back now and then (another leader, a stepped clock);
		 * the proposer keeps entry times from going back (model_entry_time). */
		at += rnd(10) ? 1 + (int64_t)rnd(5000) : -(int64_t)rnd(20000);
		if (!leader_entry(&lead, i, model_entry_time(&lead, at), &e, &k)) {
			i--;
			continue;
		}
		steps++;
		uint64_t index = (uint64_t)steps;
		void *buf = NULL;
		size_t len = 0;
		char err[256] = "";
		int rc = entry_encode(&e, &buf, &len);
		if (rc == 0)
			rc = entry_decode(buf, len, &d, err, sizeof(err));
		if (buf)
			raft_free(buf);
		if (rc != 0) {
			if (bad_codec++ == 0)
				tap_diag("step %d (%s): does not go through the log: %d %s", i, kind_name[k], rc, err);
			entry_release(&e);
			continue;
		}
		struct proj_batch *ba = proj_batch_new(index), *bb = proj_batch_new(index);
		struct apply_result ra, rb;
		model_apply(&lead, &e, index, ba, &ra);
		model_apply(&follow, &d, index, bb, &rb);
		entry_release(&e);
		entry_release(&d);
		if (ra.code == APPLY_OK)
			n_ok[k]++;
		else
			n_rej[k]++;
		if ((ra.code != rb.code || strcmp(ra.message, rb.message) != 0 || strcmp(ra.id, rb.id) != 0 ||
		     lead.last_at_ms != follow.last_at_ms) &&
		    bad_result++ == 0)
			tap_diag("step %d (%s): leader %d '%s' (%s), follower %d '%s' (%s)", i, kind_name[k], ra.code,
				 ra.message, ra.id, rb.code, rb.message, rb.id);
		char why[512];
		if (!same_rows(ba, bb, why, sizeof(why)) && bad_rows++ == 0)
			tap_diag("step %d (%s): rows differ: %s", i, kind_name[k], why);
		proj_batch_free(ba);
		proj_batch_free(bb);
		/* The snapshot text after every entry; the fixture's canonical dump (which
		 * adds accounting, index and policy coverage, at ten times the cost) every
		 * 16 entries and at the end. */
		bool full = steps % 16 == 0 || steps == STEPS;
		char *da = full ? dump(&lead) : model_snapshot_dump(&lead, index, NULL);
		char *db = full ? dump(&follow) : model_snapshot_dump(&follow, index, NULL);
		if (da == NULL || db == NULL || strcmp(da, db) != 0) {
			if (da == NULL || db == NULL) {
				bad_state++;
				break;
			}
			bad_state++; /* the models differ from here on: stop */
			size_t p = 0;
			while (da[p] && da[p] == db[p])
				p++;
			size_t from = p > 60 ? p - 60 : 0;
			tap_diag("step %d (%s): models differ at %zu: leader ...%.140s", i, kind_name[k], p, da + from);
			tap_diag("                                  follower ...%.140s", db + from);
		}
		if (full) {
			free(da);
			free(db);
		} else {
			raft_free(da);
			raft_free(db);
		}
	}
	char dist[1024] = "";
	bool every = true;
	for (int k = 0; k < K_COUNT; k++) {
		size_t l = strlen(dist);
		snprintf(dist + l, sizeof(dist) - l, " %s %d/%d,", kind_name[k], n_ok[k], n_rej[k]);
		every &= n_ok[k] > 0 && (n_rej[k] > 0 || k == K_NODE || k == K_CORDON || k == K_POL_CREATE);
	}
	tap_diag("applied/refused per request:%s", dist);
	ok(every && steps == STEPS, "the workload has %d entries, every kind applied (and refused where it can be)",
	   steps);
	is_int(bad_codec, 0, "every leader entry encodes and decodes");
	is_int(bad_result, 0,
	       "leader and follower get the same result (code, message, id, latest entry time) for every entry");
	is_int(bad_rows, 0, "leader and follower project the same rows and events for every entry");
	is_int(bad_state, 0, "leader and follower models are the same after every entry");
	model_release(&lead);
	model_release(&follow);
}

int main(void)
{
	tap_plan(5);
	test_both_paths();
	return tap_done();
}
