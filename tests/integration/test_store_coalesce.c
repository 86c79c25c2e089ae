/* test_store_coalesce — test_store's section on coalescing: many log entries
 * written by the store in one transaction, the last change of a row winning. */
#define TAP_SHARED
#include "proj.h"
#include "store.h"
#include "tap.h"
#include "test_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- coalescing: many entries in one transaction ---------------------------- */

/* Stops and reopens the store without starting its writer: the batches submitted
 * next wait in the queue, and the writer takes them all into one transaction. */
static struct store *reopen_stopped(struct store *s)
{
	char err[512];
	if (store_stop(s, 10000) != 0)
		tap_diag("store_stop did not flush");
	store_close(s);
	s = open_store("inst-A", err, sizeof(err));
	if (!s) {
		printf("Bail out! reopen: %s\n", err);
		exit(1);
	}
	return s;
}

/* Starts the writer on what is queued: true when it all went in as one
 * transaction, up to idx, without errors. */
static bool one_transaction(struct store *s, uint64_t idx)
{
	struct store_stats st;
	bool done = store_start(s, on_projected, NULL) == 0 && wait_projected(s, idx, 10000);
	store_stats(s, &st);
	if (!done || st.transactions != 1 || st.errors != 0)
		tap_diag("projected %" PRIu64 " of %" PRIu64 ", %" PRIu64 " transactions, %" PRIu64
			 " errors",
			 store_projected(s), idx, st.transactions, st.errors);
	return done && st.transactions == 1 && st.errors == 0;
}

static void mk_actor(struct model_actor *a, char *id, char *name, struct model_placement *pl, size_t n)
{
	*a = a1;
	a->spec.id = id;
	a->spec.name = name;
	a->spec.replicas = (int64_t)n;
	a->placements = pl;
	a->nplacements = n;
}

static void mk_link(struct model_link *l, char *id, char *actor, char *provider)
{
	*l = l1;
	l->spec.id = id;
	l->spec.actor_id = actor;
	l->spec.provider_id = provider;
}

/* A new batch at ++*idx holding an event (so events, too, go many per statement). */
static struct proj_batch *co_batch(uint64_t *idx, uint64_t *seq)
{
	struct proj_batch *b = proj_batch_new(++*idx);
	uint64_t n = ++*seq;
	proj_event(b, n, T0 + (int64_t)n, "test", "test.coalesce", "node", "c", "{\"c\":1}");
	return b;
}

static void co_submit(struct store *s, struct proj_batch *b)
{
	if (b->failed)
		tap_diag("batch %" PRIu64 " failed to render", b->index);
	store_submit(s, b);
}

static long long count_where(const char *table, const char *where)
{
	char q[512];
	snprintf(q, sizeof(q), "SELECT count(*) FROM %s WHERE %s", table, where);
	return sql_int(q);
}

/* Ids of table matching the LIKE pattern, comma-separated, in order. */
static const char *ids_like(const char *table, const char *pattern, char *buf, size_t len)
{
	char q[512];
	snprintf(q, sizeof(q),
		 "SELECT coalesce(string_agg(id, ',' ORDER BY id), '') FROM %s WHERE id LIKE '%s'", table,
		 pattern);
	return sql_str(q, buf, len);
}

/* The writer coalesces a transaction's changes per (table, key) and writes each
 * (table, kind) with one statement; the rows must be those that writing every
 * change in log order leaves. */
void test_coalesce(struct store **sp, uint64_t *idx, uint64_t *seq)
{
	struct store *s = *sp;
	char buf[256];
	struct model_node cn[7];
	static char *cids[] = {"c-n0", "c-n1", "c-n2", "c-n3", "c-n4", "c-n5", "c-n6"};
	for (int i = 0; i < 7; i++)
		mk_node(&cn[i], cids[i], "eu", n3_labels, 1, NODE_HEALTHY);
	struct model_provider cp1 = p1, cp2 = p1;
	cp1.spec.id = "c-p1";
	cp2.spec.id = "c-p2";
	struct model_placement pl_a[2] = {{&cn[1], PL_RUNNING, 1}, {&cn[2], PL_RUNNING, 1}};
	struct model_placement pl_b[1] = {{&cn[2], PL_STARTING, 0}};
	struct model_placement pl_c[2] = {{&cn[1], PL_RUNNING, 0}, {&cn[2], PL_RUNNING, 0}};
	struct model_placement pl_d[1] = {{&cn[1], PL_STARTING, 0}};
	struct model_actor ca1, ca2, ca3, ca5, ca6, ca7, ca8;
	struct model_link cl1, cl2, cl3, cl5, cl6;
	struct model_placement pl_e[2] = {{&cn[1], PL_PENDING, 0}, {&cn[2], PL_PENDING, 0}};
	struct model_placement pl_f[1] = {{&cn[2], PL_PENDING, 0}};
	mk_actor(&ca1, "c-a1", "one", pl_a, 2);
	mk_actor(&ca2, "c-a2", "two", pl_c, 2);
	mk_actor(&ca3, "c-a3", "three", pl_c, 2);
	mk_actor(&ca5, "c-a5", "five", pl_d, 1);
	mk_link(&cl1, "c-l1", "c-a1", "c-p1");
	mk_link(&cl2, "c-l2", "c-a2", "c-p1");
	mk_link(&cl3, "c-l3", "c-a3", "c-p1");
	mk_link(&cl5, "c-l5", "c-a5", "c-p1");
	mk_actor(&ca6, "c-a6", "six", pl_d, 1);
	mk_link(&cl6, "c-l6", "c-a6", "c-p1");
	mk_actor(&ca7, "c-a7", "seven", pl_e, 2);
	mk_actor(&ca8, "c-a8", "eight", pl_e, 2);

	/* The database before: nodes c-n1..c-n5, provider c-p1, actors c-a1, c-a2 and
	 * c-a5 with their placements and links. */
	struct proj_batch *b = co_batch(idx, seq);
	for (int i = 1; i <= 5; i++)
		proj_node(b, &cn[i]);
	proj_provider(b, &cp1);
	proj_actor(b, &ca1);
	proj_placements(b, &ca1);
	proj_link(b, &cl1);
	proj_actor(b, &ca2);
	proj_placements(b, &ca2);
	proj_link(b, &cl2);
	proj_actor(b, &ca5);
	proj_placements(b, &ca5);
	proj_link(b, &cl5);
	proj_actor(b, &ca6);
	proj_placements(b, &ca6);
	proj_link(b, &cl6);
	co_submit(s, b);
	ok(wait_projected(s, *idx, 10000) && count_where("placements", "actor_id LIKE 'c-%'") == 6 &&
		   count_where("links", "id LIKE 'c-%'") == 4,
	   "coalescing: the starting rows are written");

	s = *sp = reopen_stopped(s);
	uint64_t first = *idx + 1, seq0 = *seq;

	/* 1. The same keys upserted in 50 entries, twice in some: one row each in
	 * the statement (twice would be refused), the last version. */
	for (int i = 1; i <= 50; i++) {
		b = co_batch(idx, seq);
		cn[1].generation = (uint64_t)i;
		proj_node(b, &cn[1]);
		cn[1].spec.cpu_used = i;
		proj_node(b, &cn[1]);
		ca1.generation = (uint64_t)i;
		pl_a[0].state_version = i;
		ca1.nplacements = i % 2 ? 2 : 1; /* ends with 1: instance 1 goes */
		proj_actor(b, &ca1);
		proj_placements(b, &ca1);
		co_submit(s, b);
	}
	/* 2. Deleted, then created again: the delete and its cascade still come
	 * first (c-l2 and the old placements go), the new rows stay. Same for a
	 * node. */
	b = co_batch(idx, seq);
	proj_actor_delete(b, "c-a2");
	proj_node_delete(b, "c-n4");
	co_submit(s, b);
	b = co_batch(idx, seq);
	mk_actor(&ca2, "c-a2", "two again", pl_b, 1);
	proj_actor(b, &ca2);
	proj_placements(b, &ca2);
	cn[4].spec.region = "ap";
	proj_node(b, &cn[4]);
	co_submit(s, b);
	/* 3. An actor created with placements and a link, then deleted; an existing
	 * actor whose placements and link are rewritten, then deleted. Written
	 * after the delete those rows would outlive their actor (and fail COMMIT). */
	b = co_batch(idx, seq);
	proj_actor(b, &ca3);
	proj_placements(b, &ca3);
	proj_link(b, &cl3);
	pl_d[0].state = PL_RUNNING;
	proj_placements(b, &ca5);
	cl5.spec.timeout_ms = 1;
	proj_link(b, &cl5);
	/* and their snapshots (an agent's checkpoint of each, as after a migration) */
	struct model_actor_snap snap3 = {7, "eyJjb3VudCI6MX0=", "c-n1", 1000};
	ca3.snap = &snap3;
	proj_snapshot(b, &ca3);
	ca5.snap = &snap3;
	proj_snapshot(b, &ca5);
	co_submit(s, b);
	b = co_batch(idx, seq);
	proj_actor_delete(b, "c-a3");
	proj_actor_delete(b, "c-a5");
	co_submit(s, b);
	/* 4. Nodes: an existing one changed then deleted; a new one created then
	 * deleted; an existing one deleted. */
	b = co_batch(idx, seq);
	cn[3].spec.region = "us";
	proj_node(b, &cn[3]);
	proj_node(b, &cn[6]);
	co_submit(s, b);
	b = co_batch(idx, seq);
	proj_node_delete(b, "c-n3");
	proj_node_delete(b, "c-n6");
	proj_node_delete(b, "c-n5");
	/* 5. A link deleted (its actor stays); a provider created then deleted; the
	 * same policy version twice (as a rebuild writes the current one again). */
	proj_link_delete(b, "c-l1");
	proj_provider(b, &cp2);
	co_submit(s, b);
	b = co_batch(idx, seq);
	proj_provider_delete(b, "c-p2");
	struct model_policy cpol = pol1;
	cpol.spec.policy_id = "c-pol";
	cpol.version = 1;
	cpol.spec.max_actor_memory_mb = 1;
	proj_policy(b, &cpol);
	cpol.spec.max_actor_memory_mb = 2;
	proj_policy(b, &cpol);
	co_submit(s, b);
	/* 6. Fresh actors (created by their entry: plain INSERTs). c-a7 created, then
	 * scaled down and renamed: its last version goes in. c-a6 existed: deleted,
	 * then created again fresh: the delete (and its cascade) still comes first.
	 * c-a8 created, deleted, created again: the last one. */
	b = co_batch(idx, seq);
	proj_actor_created(b, &ca7);
	proj_actor_delete(b, "c-a6");
	proj_actor_created(b, &ca8);
	co_submit(s, b);
	b = co_batch(idx, seq);
	mk_actor(&ca7, "c-a7", "seven, smaller", pl_f, 1);
	ca7.generation = 2;
	proj_actor(b, &ca7);
	proj_placements(b, &ca7);
	mk_actor(&ca6, "c-a6", "six again", pl_e, 2);
	proj_actor_created(b, &ca6);
	proj_actor_delete(b, "c-a8");
	co_submit(s, b);
	b = co_batch(idx, seq);
	mk_actor(&ca8, "c-a8", "eight again", pl_f, 1);
	proj_actor_created(b, &ca8);
	co_submit(s, b);

	ok(one_transaction(s, *idx), "entries %" PRIu64 "..%" PRIu64 " written in one transaction",
	   first, *idx);
	is_int(sql_int("SELECT applied_index FROM lattice_state"), (long long)*idx,
	       "... applied_index is the last one");
	snprintf(buf, sizeof(buf), "seq > %" PRIu64, seq0);
	is_int(count_where("events", buf), (long long)(*seq - seq0), "... every event, once");
	/* 1 */
	is_int(sql_int("SELECT generation * 1000 + base_cpu_used FROM nodes WHERE id = 'c-n1'"), 50050,
	       "same key many times: the node's last version");
	is_int(sql_int("SELECT generation FROM actors WHERE id = 'c-a1'"), 50, "... the actor's");
	is_str(sql_str("SELECT string_agg(instance || ':' || state_version, ',' ORDER BY instance) "
		       "FROM placements WHERE actor_id = 'c-a1'",
		       buf, sizeof(buf)),
	       "0:50", "... its last placement set");
	/* 2 */
	is_str(sql_str("SELECT name FROM actors WHERE id = 'c-a2'", buf, sizeof(buf)), "two again",
	       "deleted and created again: the new actor");
	is_str(sql_str("SELECT string_agg(instance || ':' || node_id || ':' || state, ',') "
		       "FROM placements WHERE actor_id = 'c-a2'",
		       buf, sizeof(buf)),
	       "0:c-n2:starting", "... only its new placements");
	is_int(count_where("links", "id = 'c-l2'"), 0, "... its old link went with the delete");
	is_str(sql_str("SELECT region FROM nodes WHERE id = 'c-n4'", buf, sizeof(buf)), "ap",
	       "... a node deleted and created again");
	/* 3 */
	ok(count_where("actors", "id IN ('c-a3', 'c-a5')") == 0 &&
		   count_where("placements", "actor_id IN ('c-a3', 'c-a5')") == 0 &&
		   count_where("links", "id IN ('c-l3', 'c-l5')") == 0,
	   "actor delete: the transaction's earlier placements and links of it are gone");
	is_int(count_where("snapshots", "actor_id IN ('c-a3', 'c-a5')"), 0,
	       "... and its earlier snapshots (found by lattice-sim's smoke run: a restarted replica's "
	       "projection was stuck on the foreign key)");
	/* 4, 5 */
	is_str(ids_like("nodes", "c-%", buf, sizeof(buf)), "c-n1,c-n2,c-n4",
	       "node deletes: changed+deleted, created+deleted, deleted");
	is_str(ids_like("links", "c-%", buf, sizeof(buf)), "", "link deleted");
	is_str(ids_like("providers", "c-%", buf, sizeof(buf)), "c-p1", "provider created+deleted");
	is_str(sql_str("SELECT count(*) || ':' || max(max_actor_memory_mb) FROM policies "
		       "WHERE policy_id = 'c-pol'",
		       buf, sizeof(buf)),
	       "1:2", "the same policy version twice: one row, the last");
	/* 6 */
	const char *pl_of = "SELECT a.name || '|' || a.generation || '|' || coalesce(string_agg("
			    "p.instance || ':' || p.node_id, ',' ORDER BY p.instance), '') FROM actors a "
			    "LEFT JOIN placements p ON p.actor_id = a.id WHERE a.id = '%s' GROUP BY a.id";
	char q[512];
	snprintf(q, sizeof(q), pl_of, "c-a7");
	is_str(sql_str(q, buf, sizeof(buf)), "seven, smaller|2|0:c-n2",
	       "fresh actor changed later in the transaction: its last version, plainly inserted");
	snprintf(q, sizeof(q), pl_of, "c-a6");
	is_str(sql_str(q, buf, sizeof(buf)), "six again|4|0:c-n1,1:c-n2",
	       "existing actor deleted, then created fresh: only the new rows");
	is_int(count_where("links", "id = 'c-l6'"), 0, "... its old link went with the delete");
	snprintf(q, sizeof(q), pl_of, "c-a8");
	is_str(sql_str(q, buf, sizeof(buf)), "eight again|4|0:c-n2",
	       "fresh actor deleted and created fresh again: the last one");

	/* 7. A fresh row the database holds after all is a duplicate key, not an
	 * upsert: refused (counted, kept, retried) until the cause is gone. */
	struct store_stats st0, st1;
	store_stats(s, &st0);
	ok(sql_ok("INSERT INTO actors (id, name, module, cpu_required, memory_required_mb, "
		  "created_at, updated_at) VALUES ('c-a9', 'squatter', 'm', 1, 1, now(), now())"),
	   "plant an actor row that the model does not know");
	tap_diag("an SQL error line from the store (proj_actors_insert) is expected next");
	b = co_batch(idx, seq);
	struct model_actor ca9;
	mk_actor(&ca9, "c-a9", "nine", pl_f, 1);
	proj_actor_created(b, &ca9);
	co_submit(s, b);
	ok(wait_healthy(s, false, 5000), "fresh insert over an existing row: refused");
	store_stats(s, &st1);
	ok(st1.errors > st0.errors && store_projected(s) == *idx - 1, "... counted, nothing projected past it");
	ok(sql_ok("DELETE FROM actors WHERE id = 'c-a9'"), "remove the squatter");
	ok(wait_projected(s, *idx, 10000) && wait_healthy(s, true, 2000), "the retry goes through");
	snprintf(q, sizeof(q), pl_of, "c-a9");
	is_str(sql_str(q, buf, sizeof(buf)), "nine|4|0:c-n2", "... with the model's row");
}

/* A PROJ_RESET in the middle of a transaction's entries acts in log order: what
 * came before it is emptied (but for events), what comes after stays. */
void test_coalesce_reset(struct store **sp, uint64_t *idx, uint64_t *seq)
{
	struct store *s = *sp = reopen_stopped(*sp);
	char buf[256];
	struct model_node r1, r2;
	mk_node(&r1, "c-r1", "eu", n3_labels, 1, NODE_HEALTHY);
	mk_node(&r2, "c-r2", "eu", n3_labels, 1, NODE_HEALTHY);
	struct model m;
	model_init(&m);
	hmap_put(&m.nodes, "n1", &n1);
	hmap_put(&m.nodes, "n2", &n2);
	hmap_put(&m.actors, "a1", &a1);
	hmap_put(&m.providers, "p1", &p1);
	hmap_put(&m.links, "l1", &l1);
	hmap_put(&m.policies, "pol1", &pol1);

	struct proj_batch *b = co_batch(idx, seq);
	proj_node(b, &r1);
	proj_node_delete(b, "n2");
	proj_actor_delete(b, "a1");
	co_submit(s, b);
	b = co_batch(idx, seq);
	proj_model(b, &m);
	proj_node(b, &r2); /* the same entry, after the reset */
	co_submit(s, b);
	b = co_batch(idx, seq);
	proj_link_delete(b, "l1");
	co_submit(s, b);

	ok(one_transaction(s, *idx), "reset mid-transaction: one transaction");
	is_str(ids_like("nodes", "%", buf, sizeof(buf)), "c-r2,n1,n2",
	       "rows before the reset are gone, the model's and later ones stay");
	ok(count_where("actors", "id = 'a1'") == 1 && count_where("placements", "actor_id = 'a1'") == 1,
	   "an actor deleted before the reset is back with its placements");
	is_int(count_where("links", "true"), 0, "a link deleted after the reset is gone");
	is_int(count_where("events", "true"), (long long)*seq, "events stay through the reset");
	hmap_release(&m.nodes);
	hmap_release(&m.actors);
	hmap_release(&m.providers);
	hmap_release(&m.links);
	hmap_release(&m.policies);
	sched_index_release(&m.sched);
}

