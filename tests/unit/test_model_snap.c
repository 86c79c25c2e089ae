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

#include <raft.h>

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

/* ---- what restore refuses ---------------------------------------------------
 *
 * A snapshot is as strict as the log: one a replica would misread, or that
 * would leave its model unlike one built by applying entries, is refused with a
 * message naming the object, and the refusal frees everything and leaves the
 * model empty. */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_LSAN 1
#endif
#endif
#ifdef HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#define LEAK_POINTS 1
#else
#define LEAK_POINTS 0
#endif

static bool model_empty(const struct model *m)
{
	return m->nodes.n == 0 && m->actors.n == 0 && m->providers.n == 0 && m->links.n == 0 &&
	       m->policies.n == 0 && m->sched.by_id.n == 0 && m->sched.all.n == 0;
}

/* A snapshot of the populated model, as a tree the cases edit. */
static json_t *snap_of(const struct model *m)
{
	return model_snapshot(m);
}

/* The first object of snap[key] whose spec's idkey is id (borrowed), NULL if none. */
static json_t *snap_find(json_t *snap, const char *key, const char *idkey, const char *id)
{
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(snap, key), i, o)
	{
		const char *v = json_string_value(json_object_get(json_object_get(o, "spec"), idkey));
		if (v && strcmp(v, id) == 0)
			return o;
	}
	return NULL;
}

/* Restores snap (stolen) into a fresh model; expects a refusal whose message holds
 * want, an empty model afterwards and, under LeakSanitizer, nothing leaked. */
static void refused(json_t *snap, const char *want, const char *name)
{
	struct model r;
	char err[256] = "";
	model_init(&r);
	int rc = model_restore(&r, snap, err, sizeof(err));
	json_decref(snap);
	bool empty = model_empty(&r);
	model_release(&r);
	if (!ok(rc != 0 && contains(err, want) && empty, "restore refuses %s", name))
		tap_diag("  rc %d, message '%s' (want '%s'), model %s afterwards", rc, err, want,
			 empty ? "empty" : "not empty");
#ifdef HAVE_LSAN
	ok(__lsan_do_recoverable_leak_check() == 0, "refusing %s leaks nothing", name);
#endif
}

static json_t *dup_first(json_t *snap, const char *key)
{
	json_t *arr = json_object_get(snap, key);
	json_array_append_new(arr, json_deep_copy(json_array_get(arr, 0)));
	return snap;
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
	json_object_set_new(snap, "v", json_integer(MODEL_SNAP_VERSION + 1));
	model_init(&r);
	/* The code says so, not the wording: fsm tells "upgrade" from "corrupt" by it. */
	ok(model_restore(&r, snap, err, sizeof(err)) == MODEL_SNAP_NEWER && model_empty(&r),
	   "restore refuses a newer format version as MODEL_SNAP_NEWER (%s)", err);
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


/* The refusals: each edits a snapshot of the populated model one way. */
#define N_REFUSALS 25

static json_t *spec_of(json_t *snap, const char *key, const char *idkey, const char *id)
{
	return json_object_get(snap_find(snap, key, idkey, id), "spec");
}

static void test_refusals(void)
{
	struct model m;
	populate(&m);
	/* Ids: a repeated one used to replace the first object silently, leaking it
	 * (and, for an actor, leaving its replicas accounted on their nodes). */
	refused(dup_first(snap_of(&m), "nodes"), "node 'n", "a node id twice");
	refused(dup_first(snap_of(&m), "actors"), "actor 'a", "an actor id twice");
	refused(dup_first(snap_of(&m), "policies"), "policy 'pol1'", "a policy id twice");
	refused(dup_first(snap_of(&m), "providers"), "provider 'p1'", "a provider id twice");
	refused(dup_first(snap_of(&m), "links"), "link 'l1'", "a link id twice");
	json_t *snap = snap_of(&m);
	json_object_del(spec_of(snap, "actors", "id", "a2"), "id");
	refused(snap, "actor #", "an actor without an id");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "nodes", "id", "n3"), "id", json_string(""));
	refused(snap, "node #", "an empty node id");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "providers", "id", "p1"), "id", json_stringn("p\0x", 3));
	refused(snap, "provider #", "an id holding a NUL");

	/* Placements: one per replica, each on a node the snapshot holds. */
	snap = snap_of(&m);
	json_array_remove(json_object_get(snap_find(snap, "actors", "id", "a1"), "placements"), 0);
	refused(snap, "actor 'a1' has 2 placements for 3 replicas", "an actor with fewer placements than replicas");
	snap = snap_of(&m);
	json_t *pl = json_object_get(snap_find(snap, "actors", "id", "a2"), "placements");
	json_array_append_new(pl, json_deep_copy(json_array_get(pl, 0)));
	refused(snap, "actor 'a2' has 3 placements for 2 replicas", "an actor with more placements than replicas");
	snap = snap_of(&m);
	pl = json_object_get(snap_find(snap, "actors", "id", "a3"), "placements");
	json_object_set_new(json_array_get(pl, 0), "node", json_string("ghost"));
	refused(snap, "actor 'a3' placement #0 is on node 'ghost'", "a placement on an unknown node");
	snap = snap_of(&m);
	pl = json_object_get(snap_find(snap, "actors", "id", "a3"), "placements");
	json_object_set_new(json_array_get(pl, 0), "state", json_string("sleeping"));
	refused(snap, "actor 'a3' placement #0", "an unknown placement state");

	/* Links as apply makes them: to an actor and a provider that exist, for the
	 * provider's contract, one name per actor and contract. */
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "links", "id", "l1"), "actor_id", json_string("a9"));
	refused(snap, "link 'l1' belongs to actor 'a9'", "a link to an unknown actor");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "links", "id", "l1"), "provider_id", json_string("p9"));
	refused(snap, "link 'l1' uses provider 'p9'", "a link to an unknown provider");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "links", "id", "l1"), "contract_id", json_string("wasmcloud:messaging"));
	refused(snap, "provider 'p1' serves", "a link for another contract than its provider's");
	snap = snap_of(&m);
	json_t *links = json_object_get(snap, "links"), *l2 = json_deep_copy(json_array_get(links, 0));
	json_object_set_new(json_object_get(l2, "spec"), "id", json_string("l2"));
	json_array_append_new(links, l2);
	refused(snap, "link 'l2': actor 'a1' has another", "two links of one actor with one contract and name");

	/* Counters as apply leaves them. */
	snap = snap_of(&m);
	json_object_set_new(snap_find(snap, "nodes", "id", "n1"), "generation", json_integer(0));
	refused(snap, "node 'n1': field 'generation'", "a node at generation 0");
	snap = snap_of(&m);
	json_object_set_new(snap_find(snap, "actors", "id", "a1"), "generation", json_integer(0));
	refused(snap, "actor 'a1': field 'generation'", "an actor at generation 0");
	snap = snap_of(&m);
	json_object_set_new(snap_find(snap, "policies", "policy_id", "pol1"), "version", json_integer(1));
	refused(snap, "policy 'pol1' version #0: field 'version'", "a policy history not below its version");
	snap = snap_of(&m);
	json_object_set_new(snap_find(snap, "nodes", "id", "n4"), "draining", json_true());
	refused(snap, "node 'n4' is draining but not cordoned", "a node draining but not cordoned");
	snap = snap_of(&m);
	char longid[SPEC_ID_MAX + 2];
	memset(longid, 'n', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	json_object_set_new(snap, "rr_cursor", json_string(longid));
	refused(snap, "rr_cursor", "a round-robin cursor longer than an id");

	/* Bounds that keep the arithmetic and the projection's columns in range. */
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "actors", "id", "a1"), "cpu_required", json_integer(-1));
	refused(snap, "actor 'a1': field 'spec.cpu_required'", "a negative request");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "nodes", "id", "n1"), "cpu_used", json_integer(INT64_MAX));
	refused(snap, "node 'n1': field 'spec.cpu_used'", "a base load that would overflow accounting");
	snap = snap_of(&m);
	json_object_set_new(spec_of(snap, "actors", "id", "a2"), "priority", json_integer(256));
	refused(snap, "actor 'a2': field 'spec.priority'", "a priority the projection cannot hold");

	/* A field this build does not know is a format it does not read. */
	snap = snap_of(&m);
	json_object_set_new(snap_find(snap, "nodes", "id", "n2"), "zone", json_string("b"));
	refused(snap, "node 'n2': unknown field 'zone'", "an unknown field");
	model_release(&m);
}

/* Formats: version 1 (the first, without policy history; without "v" too), and
 * independence from the API's validators. */
static void test_formats(void)
{
	struct model m, r;
	char err[256] = "";
	populate(&m);
	struct model_policy *pol1 = hmap_get(&m.policies, "pol1");
	ok(pol1 && pol1->version == 2 && pol1->nhistory == 1 && pol1->history[0].version == 1 &&
		   pol1->history[0].spec.max_actor_memory_mb == 2048 && pol1->history[0].spec.policy_id == NULL,
	   "a policy updated once keeps version 1 in its history");
	char *dm = dump(&m);
	json_t *snap = snap_of(&m);
	model_init(&r);
	int rc = model_restore(&r, snap, err, sizeof(err));
	ok(rc == MODEL_SNAP_OK, "restore of this build's format (%s)", rc ? err : "ok");
	same_state(dm, &r, "restored with every policy version (the dump holds the history)");
	model_release(&r);
	json_decref(snap);

	/* Version 1: no "v" (or "v":1), no history. */
	snap = snap_of(&m);
	json_object_del(snap, "v");
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(snap, "policies"), i, o) json_object_del(o, "history");
	model_init(&r);
	rc = model_restore(&r, snap, err, sizeof(err));
	struct model_policy *rp = hmap_get(&r.policies, "pol1");
	ok(rc == MODEL_SNAP_OK && rp && rp->version == 2 && rp->nhistory == 0 && r.actors.n == m.actors.n,
	   "a snapshot without \"v\" restores as format 1, without policy history (%s)", rc ? err : "ok");
	model_release(&r);
	json_object_set_new(snap, "v", json_integer(1));
	json_object_set_new(json_array_get(json_object_get(snap, "policies"), 0), "history", json_array());
	model_init(&r);
	ok(model_restore(&r, snap, err, sizeof(err)) == MODEL_SNAP_MALFORMED && contains(err, "unknown field 'history'"),
	   "format 1 with a policy history is refused (%s)", err);
	model_release(&r);
	json_decref(snap);

	/* Values the API refuses today restore: tightening an API rule must not make
	 * a replica's own snapshot unreadable. */
	snap = snap_of(&m);
	json_t *a1 = spec_of(snap, "actors", "id", "a1");
	json_object_set_new(a1, "cpu_required", json_integer(SPEC_CPU_MAX + 1));
	json_object_set_new(a1, "name", json_string("a name\twith a tab"));
	json_object_set_new(spec_of(snap, "nodes", "id", "n5"), "labels", json_pack("{s:s}", "Zone@x", "1"));
	json_object_set_new(spec_of(snap, "providers", "id", "p1"), "image", json_string("not an image ref"));
	model_init(&r);
	rc = model_restore(&r, snap, err, sizeof(err));
	struct model_actor *ra = model_actor_get(&r, "a1");
	ok(rc == MODEL_SNAP_OK && ra && ra->spec.cpu_required == SPEC_CPU_MAX + 1,
	   "restore does not apply the API's validators (request above the API's limit, label key and "
	   "name the API refuses) (%s)",
	   rc ? err : "ok");
	if (rc == MODEL_SNAP_OK)
		check_invariants(&r, "that model is consistent (accounting recomputed with the larger request)");
	else
		ok(0, "that model is consistent (accounting recomputed with the larger request)");
	model_release(&r);
	json_decref(snap);

	/* The text form: the index comes back, duplicate keys are refused. */
	size_t len;
	char *text = model_snapshot_dump(&m, 4242, &len);
	uint64_t index = 0;
	model_init(&r);
	rc = model_restore_text(&r, text, len, &index, err, sizeof(err));
	ok(rc == MODEL_SNAP_OK && index == 4242, "model_restore_text: restores and gives the index (%llu)",
	   (unsigned long long)index);
	same_state(dm, &r, "model_restore_text: the same model");
	model_release(&r);
	raft_free(text);
	const char *dup = "{\"v\":2,\"v\":2,\"event_seq\":0,\"rr_cursor\":\"\",\"nodes\":[],\"actors\":[],"
			  "\"providers\":[],\"links\":[],\"policies\":[]}";
	model_init(&r);
	ok(model_restore_text(&r, dup, strlen(dup), &index, err, sizeof(err)) == MODEL_SNAP_MALFORMED,
	   "model_restore_text refuses a repeated key (%s)", err);
	model_release(&r);
	/* Read as a stream: the writers' order is part of the format. */
	const char *order = "{\"v\":2,\"event_seq\":0,\"rr_cursor\":\"\",\"actors\":[],\"nodes\":[],"
			    "\"providers\":[],\"links\":[],\"policies\":[]}";
	model_init(&r);
	ok(model_restore_text(&r, order, strlen(order), &index, err, sizeof(err)) == MODEL_SNAP_MALFORMED &&
		   contains(err, "'nodes' comes after 'actors'"),
	   "model_restore_text refuses nodes after actors (%s)", err);
	model_release(&r);
	text = model_snapshot_dump(&m, 1, &len);
	char *longer = malloc(len + 3);
	memcpy(longer, text, len);
	memcpy(longer + len, " {}", 3);
	model_init(&r);
	ok(model_restore_text(&r, longer, len + 3, &index, err, sizeof(err)) == MODEL_SNAP_MALFORMED &&
		   model_empty(&r),
	   "model_restore_text refuses bytes after the document (%s)", err);
	model_init(&r);
	ok(model_restore_text(&r, longer, len - 1, &index, err, sizeof(err)) == MODEL_SNAP_MALFORMED &&
		   model_empty(&r),
	   "model_restore_text refuses a cut document (%s)", err);
	model_release(&r);
	free(longer);
	raft_free(text);
	free(dm);
	model_release(&m);
}

int main(void)
{
	tap_plan(28 + N_REFUSALS * (1 + LEAK_POINTS) + 13);
	test_random_log();
	test_snapshot();
	test_refusals();
	test_formats();
	return tap_done();
}
