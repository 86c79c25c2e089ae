/* test_model — the replicated state machine's apply (model.c): model_apply of
 * every entry op — what it changes, what it refuses, and that a refusal changes
 * nothing — and the projection rows and events it emits. Snapshots, restore and
 * determinism over a random log: test_model_snap.c. Helpers: model_fixture.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entry.h"
#include "model.h"
#include "model_fixture.h"
#include "policy.h"
#include "proj.h"
#include "sched.h"
#include "tap.h"

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
	uint64_t gen;
	int64_t cpu, mem, cnt;
};

static void snap_acct(const struct model *m, const char *const *ids, size_t n, struct acct *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct model_node *nd = model_node_get(m, ids[i]);
		out[i] = nd ? (struct acct){nd->generation, nd->cpu_used, nd->memory_used_mb, nd->actor_count}
			    : (struct acct){0};
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
			   now[i].cnt == was[i].cnt + k && now[i].gen == was[i].gen;
	}
	ok(acct_ok, "actor create: each planned node's cpu/memory/actor_count grew by the request; "
		    "its generation (its own record) did not move");
	/* No node rows: a node's usage is derived from the placements (schema 003). */
	is_str(kinds(b), "actor_upsert,placements_set,event_insert", "actor create: rows emitted");
	ok(find_kind(b, PROJ_ACTOR_UPSERT)->fresh && find_kind(b, PROJ_PLACEMENTS_SET)->fresh &&
		   !find_kind(b, PROJ_EVENT_INSERT)->fresh,
	   "actor create: the actor's rows are marked fresh (a plain INSERT for the writer)");
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
	is_str(kinds(b), "actor_upsert,placements_set,event_insert", "scale up: rows emitted");
	ok(!find_kind(b, PROJ_ACTOR_UPSERT)->fresh && !find_kind(b, PROJ_PLACEMENTS_SET)->fresh,
	   "scale up: an existing actor's rows are not fresh");
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

	/* An update that changes nothing. The leader proposes none, but one planned as
	 * a change can find another write got there first: with the flag it applies
	 * without a trace; without it (a log from before the flag) it bumps the
	 * generation as it always did, so an old log replays to the same model. */
	struct model_actor *a2 = model_actor_get(&m, "a2");
	uint64_t gen = a2->generation, seq = m.event_seq;
	int64_t upd = a2->updated_ms;
	before = dump(&m);
	is_int(apply_j(&m, batch(&b),
		       "'op':'actor_update','flag':1,'target':'a2','patch':{'replicas':2,'cpu_required':600}"),
	       APPLY_OK, "a flagged update that changes nothing: APPLY_OK");
	ok(a2->generation == gen && a2->updated_ms == upd && m.event_seq == seq && b->n == 0,
	   "flagged no-op update: same generation and updated_ms, no event, no rows");
	same_state(before, &m, "flagged no-op update: nothing changed");
	free(before);
	is_int(apply_j(&m, batch(&b), "'op':'actor_update','target':'a2','patch':{'replicas':2}"), APPLY_OK,
	       "the same update without the flag (an older log): APPLY_OK");
	ok(a2->generation == gen + 1 && m.event_seq == seq + 1 && contains(kinds(b), "event_insert"),
	   "unflagged no-op update: generation bumped and an event written, as before");
	is_int(apply_j(&m, batch(&b), "'op':'actor_update','flag':1,'target':'a2','patch':{'replicas':3}"),
	       APPLY_STALE, "a flagged update that adds a replica without a plan: still APPLY_STALE");
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
	is_str(kinds(b), "actor_delete,event_insert", "actor delete: rows emitted");
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

/* Entries are applied as they were written, whatever the API accepts today:
 * these values are all refused by the current API (id, region, label, contract
 * syntax; values above its maxima; a contract both allowed and denied), as they
 * could have been accepted by an older build, and every replica must still
 * replay them. */
static void test_old_entries(void)
{
	struct model m;
	model_init(&m);
	is_int(apply_j(&m, NULL,
		       "'op':'node_put','node':{'id':'edge node/1','region':'Europe West!','labels':{'has space':'x'},"
		       "'cpu_capacity':1000000000000,'memory_mb':1000000000000,'cpu_used':5,'actor_count':2000000}"),
	       APPLY_OK, "old entry: a node whose id, region and label the API refuses, capacity above its maximum");
	const struct model_node *n = model_node_get(&m, "edge node/1");
	ok(n && n->spec.cpu_capacity == 1000000000000LL && strcmp(n->spec.region, "Europe West!") == 0 &&
		   n->actor_count == 2000000,
	   "old entry: the node is in the model as written");
	is_int(apply_j(&m, NULL,
		       "'op':'actor_create','actor':{'id':'a b','module':'not a ref','cpu_required':200000000,"
		       "'memory_required_mb':64,'priority':999,'max_latency_ms':99999999,"
		       "'name':'%0300d'},'placements':['edge node/1']",
		       0),
	       APPLY_OK, "old entry: an actor whose id, module, name length, request and priority the API refuses");
	const struct model_actor *a = model_actor_get(&m, "a b");
	ok(a && a->spec.priority == 999 && strlen(a->spec.name) == 300 && n->cpu_used == 200000005,
	   "old entry: the actor is placed and accounted as written");
	is_int(apply_j(&m, NULL,
		       "'op':'provider_create','provider':{'id':'p 1','contract_id':'KeyValue','image':'x y',"
		       "'nodes':['edge node/1']}"),
	       APPLY_OK, "old entry: a provider whose contract syntax the API refuses");
	is_int(apply_j(&m, NULL,
		       "'op':'link_create','link':{'id':'l 1','actor_id':'a b','provider_id':'p 1',"
		       "'contract_id':'KeyValue','link_name':'.','timeout_ms':86400000,'retry_count':1000000}"),
	       APPLY_OK, "old entry: a link whose name and timeouts the API refuses");
	is_int(apply_j(&m, NULL,
		       "'op':'actor_update','target':'a b','patch':{'cpu_required':300000000,'replicas':2},"
		       "'placements':['edge node/1']"),
	       APPLY_OK, "old entry: an update to a request above the API's maximum");
	is_int(apply_j(&m, NULL,
		       "'op':'policy_put','flag':1,'policy':{'policy_id':'pol 1','allowed_contracts':['KeyValue'],"
		       "'denied_contracts':['KeyValue'],'selector':{'regions':['Europe West!']}}"),
	       APPLY_OK, "old entry: a policy allowing and denying one contract");
	check_invariants(&m, "old entries: accounting, index and policy coverage consistent");
	model_release(&m);
}

/* Entry times never go backwards across leaders: the model keeps the latest
 * applied entry's time, and a proposer whose clock is behind it takes it. */
static void test_entry_time(void)
{
	struct model m;
	model_init(&m);
	is_int(m.last_at_ms, 0, "entry time: a new model has applied no entry");
	is_int(model_entry_time(&m, 1234), 1234, "entry time: with nothing applied, the wall clock");
	char *t = dq(fmt("%s", "{'v':1,'op':'node_put','at':5000,'node':{'id':'n1','region':'eu'}}"));
	apply_text(&m, NULL, t);
	free(t);
	is_int(m.last_at_ms, 5000, "entry time: an applied entry's time is kept");
	t = dq(fmt("%s", "{'v':1,'op':'node_delete','at':9000,'target':'nope'}"));
	is_int(apply_text(&m, NULL, t), APPLY_NOT_FOUND, "entry time: a refused entry...");
	free(t);
	is_int(m.last_at_ms, 5000, "...leaves it (a refused entry changes nothing)");
	t = dq(fmt("%s", "{'v':1,'op':'node_flags','at':4000,'target':'n1','flag':1}"));
	is_int(apply_text(&m, NULL, t), APPLY_OK, "entry time: an entry from a clock behind (an older log) applies");
	free(t);
	is_int(m.last_at_ms, 5000, "...and does not move it back");
	const struct model_node *n = model_node_get(&m, "n1");
	ok(n && n->updated_ms == 4000, "apply takes the entry's time as it is (deterministic: the proposer decides)");
	is_int(model_entry_time(&m, 4999), 5000,
	       "a proposer whose clock is behind the last applied entry takes its time");
	is_int(model_entry_time(&m, 5000), 5000, "a proposer at the same time keeps it");
	is_int(model_entry_time(&m, 7000), 7000, "a proposer whose clock is ahead takes its clock");
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
	/* The moved actors' rows (generation bumped) and placements; of the
	 * nodes, only the drained one's own record changes (cordoned, draining). */
	is_str(kinds(b), "actor_upsert,placements_set,actor_upsert,placements_set,node_upsert,event_insert",
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

/* ---- failover apply ------------------------------------------------------- */

/* Failover of n1 (drain_setup's model with n1 unhealthy): moves, then unplaced. */
static int fo_on(struct model *m, struct proj_batch *b, const char *id, const char *moves, const char *unplaced)
{
	return apply_j(m, b, "'op':'failover','target':'%s','moves':[%s],'unplaced':[%s],'detected_at':1", id, moves,
		       unplaced);
}

static void fo_setup(struct model *m)
{
	drain_setup(m);
	struct model_node *n1 = model_node_get(m, "n1");
	n1->status = NODE_UNHEALTHY; /* as a status entry from the failure detector would */
	sched_index_update(&m->sched, n1);
}

/* Drain and failover re-check a plan alike; what each says when it refuses one
 * is pinned here word for word (the API answers with it). */
static void test_failover(void)
{
	struct model m;
	struct proj_batch *b = NULL;
	fo_setup(&m);
	struct model_node *n1 = model_node_get(&m, "n1"), *n3 = model_node_get(&m, "n3");
	struct model_actor *a1 = model_actor_get(&m, "a1"), *a2 = model_actor_get(&m, "a2");
	is_int(fo_on(&m, batch(&b), "n1", MV("a1", 0, "n3") "," MV("a2", 0, "n3"), ""), APPLY_OK,
	       "failover of n1: both replicas to n3");
	ok(a1->placements[0].node == n3 && a2->placements[0].node == n3 && a1->placements[0].state == PL_PENDING &&
		   n1->nplacements == 0 && n3->nplacements == 2,
	   "failover: the replicas are on n3, pending; n1 holds none");
	check_invariants(&m, "failover: accounting matches placements");
	ok(m.fo_tail != NULL && m.fo_tail->nmoved == 2 && m.fo_tail->status == FO_IN_PROGRESS && m.fo_tail->error == NULL,
	   "failover: recorded in progress, two moves waiting");
	model_release(&m);

	fo_setup(&m);
	is_int(fo_on(&m, batch(&b), "n1", MV("a1", 0, "n3"), "{'actor_id':'a2','instance':0}"), APPLY_OK,
	       "failover with an unplaced replica");
	ok(m.fo_tail && m.fo_tail->nassign == 2 && contains(m.fo_tail->error, "no healthy target") &&
		   model_actor_get(&m, "a2")->placements[0].state == PL_FAILED,
	   "unplaced: recorded, failed, the replica stays on n1 failed (%s)", m.fo_tail ? m.fo_tail->error : "");
	model_release(&m);

	static const struct {
		const char *node, *moves, *name, *message;
		int code;
	} stale[] = {
		{"n1", MV("zz", 0, "n3"), "unknown actor", "failover plan of node 'n1' is out of date", APPLY_STALE},
		{"n1", MV("a2", 5, "n3"), "no such instance", "failover plan of node 'n1' is out of date", APPLY_STALE},
		{"n1", MV("a2", 1, "n3"), "replica on another node", "failover plan of node 'n1' is out of date",
		 APPLY_STALE},
		{"n1", MV("a1", 0, "nx"), "unknown target", "failover plan of node 'n1' is out of date", APPLY_STALE},
		{"n1", MV("a1", 0, "n1"), "to the node itself", "failover plan of node 'n1' is out of date", APPLY_STALE},
		{"n1", MV("a1", 0, "n2") "," MV("a1", 0, "n3"), "same replica twice",
		 "failover plan of node 'n1' is out of date", APPLY_STALE},
		{"n1", MV("a2", 0, "n3") "," MV("a1", 0, "n4"), "second move without room",
		 "failover plan of node 'n1' is out of date: insufficient cpu: 200 free, 500 required",
		 APPLY_STALE},
		{"n1", MV("a1", 0, "n4") "," MV("zz", 0, "n3"), "unfit move before an unknown actor",
		 "failover plan of node 'n1' is out of date: insufficient cpu: 200 free, 500 required",
		 APPLY_STALE},
		{"n2", MV("a2", 1, "n3"), "healthy node", "node 'n2' is healthy again: no failover", APPLY_CONFLICT},
		{"nx", "", "unknown node", "node 'nx' not found", APPLY_NOT_FOUND},
	};
	for (size_t i = 0; i < sizeof(stale) / sizeof(stale[0]); i++) {
		fo_setup(&m);
		char *before = dump(&m);
		int rc = fo_on(&m, batch(&b), stale[i].node, stale[i].moves, "");
		ok(rc == stale[i].code && b->n == 0, "stale failover (%s): refused (%d), no rows", stale[i].name, rc);
		is_str(R.message, stale[i].message, "stale failover (%s): message", stale[i].name);
		same_state(before, &m, "stale failover: nothing changed");
		free(before);
		model_release(&m);
	}

	/* The drain's words for the same refusals. */
	static const struct {
		const char *moves, *name, *message;
	} dstale[] = {
		{MV("zz", 0, "n3"), "unknown actor", "drain plan of node 'n1' is out of date"},
		{MV("a1", 0, "n2") "," MV("a1", 0, "n3"), "same replica twice",
		 "drain plan of node 'n1' is out of date: a1#0 moved twice"},
		{MV("a2", 0, "n3") "," MV("a1", 0, "n4"), "second move without room",
		 "drain plan of node 'n1' is out of date: n4: insufficient cpu: 200 free, 500 required"},
		{MV("a1", 0, "n4") "," MV("zz", 0, "n3"), "unfit move before an unknown actor",
		 "drain plan of node 'n1' is out of date"},
	};
	for (size_t i = 0; i < sizeof(dstale) / sizeof(dstale[0]); i++) {
		drain_setup(&m);
		char *before = dump(&m);
		is_int(drain_on(&m, batch(&b), "n1", dstale[i].moves), APPLY_STALE, "stale drain (%s): refused",
		       dstale[i].name);
		is_str(R.message, dstale[i].message, "stale drain (%s): message", dstale[i].name);
		same_state(before, &m, "stale drain: nothing changed");
		free(before);
		model_release(&m);
	}
	proj_batch_free(b);
}

int main(void)
{
	tap_plan(304);
	test_node_put();
	test_flags_delete();
	test_actor_create();
	test_actor_update();
	test_actor_delete();
	test_provider();
	test_link();
	test_malformed();
	test_old_entries();
	test_entry_time();
	test_policy();
	test_drain();
	test_failover();
	return tap_done();
}
