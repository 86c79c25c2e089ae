/* test_model_snap — the model's snapshots (model_snap.c): snapshot and restore,
 * and a random log applied on replicas — one from scratch, one restored from a
 * snapshot midway — that must end alike (determinism), with events, refusals
 * and the model's invariants checked after every entry. Helpers:
 * model_fixture.h.
 *
 * LATTICE_TEST_SEED=<n> runs the random log with another seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_fixture.h"
#include "proj.h"
#include "sched.h"
#include "tap.h"

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
	tap_plan(28);
	test_random_log();
	test_snapshot();
	return tap_done();
}
