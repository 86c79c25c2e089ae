/* test_store — store.c, proj.c and query.c against a real PostgreSQL.
 *
 * Run by tests/integration/store.sh, which starts the server and exports:
 *   LATTICE_TEST_PG     conninfo of an empty database
 *   LATTICE_SCHEMA_DIR  the schema/ directory
 *   LATTICE_PG_DIR      the server's directory (for stop/start/kill through
 *                       tests/lib/servers.sh; those tests are skipped without it)
 *   top_srcdir
 * The sections share one database and run in order: each leaves it as the next
 * expects. */
#define TAP_SHARED
#define TAP_MAIN
#include "model.h"
#include "proj.h"
#include "query.h"
#include "store.h"
#include "store_spool.h"
#include "tap.h"
#include "test_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


static const char *conninfo, *schema_dir;
static PGconn *adm; /* the test's own connection, for checks behind the store's back */

static atomic_uint_fast64_t cb_last;
static atomic_int cb_calls;

void on_projected(void *arg, uint64_t index)
{
	(void)arg;
	atomic_store(&cb_last, index);
	atomic_fetch_add(&cb_calls, 1);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* The admin connection, reconnected when the server restarted. */
static PGconn *admin(void)
{
	if (!adm || PQstatus(adm) != CONNECTION_OK) {
		PQfinish(adm);
		adm = PQconnectdb(conninfo);
	}
	return adm;
}

/* PQexec on the admin connection, once more on a fresh one if it had broken. */
static PGresult *sql_exec(const char *sql)
{
	PGresult *r = PQexec(admin(), sql);
	if (PQstatus(adm) != CONNECTION_OK) {
		PQclear(r);
		r = PQexec(admin(), sql);
	}
	return r;
}

/* First column of the first row as an integer; -1 (and a diagnostic) on error. */
long long sql_int(const char *sql)
{
	PGresult *r = sql_exec(sql);
	long long v = -1;
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = atoll(PQgetvalue(r, 0, 0));
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		tap_diag("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return v;
}

/* First column of the first row as text into buf ("" on error or NULL). */
const char *sql_str(const char *sql, char *buf, size_t len)
{
	PGresult *r = sql_exec(sql);
	buf[0] = '\0';
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
	else
		tap_diag("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	return buf;
}

/* Runs sql; returns its SQLSTATE ("" on success). */
static const char *sql_state(const char *sql, char *buf, size_t len)
{
	PGresult *r = sql_exec(sql);
	ExecStatusType st = PQresultStatus(r);
	const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	snprintf(buf, len, "%s", st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : code ? code : "?");
	PQclear(r);
	return buf;
}

int sql_ok(const char *sql)
{
	char st[8];
	return sql_state(sql, st, sizeof(st))[0] == '\0';
}

bool wait_projected(struct store *s, uint64_t index, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 10) {
		if (store_projected(s) >= index)
			return true;
		sleep_ms(10);
	}
	return store_projected(s) >= index;
}

bool wait_healthy(struct store *s, bool want, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 10) {
		if (store_healthy(s) == want)
			return true;
		sleep_ms(10);
	}
	return store_healthy(s) == want;
}

/* Runs a tests/lib/servers.sh function on the test server; -1 when unavailable. */
static int pg_ctl(const char *fn)
{
	const char *top = getenv("top_srcdir"), *dir = getenv("LATTICE_PG_DIR");
	if (!top || !dir)
		return -1;
	char cmd[4096];
	snprintf(cmd, sizeof(cmd),
		 "bash -c '. \"$top_srcdir/tests/lib/servers.sh\" && PG_DIR=\"$LATTICE_PG_DIR\" && "
		 "PG_PID=$(head -1 \"$PG_DIR/data/postmaster.pid\" 2>/dev/null); %s'",
		 fn);
	return system(cmd) == 0 ? 0 : -1;
}

static bool have_pg_ctl(void)
{
	return getenv("top_srcdir") && getenv("LATTICE_PG_DIR");
}

static struct proj_batch *ev_batch(uint64_t index, uint64_t seq)
{
	struct proj_batch *b = proj_batch_new(index);
	proj_event(b, seq, T0 + (int64_t)seq, "test", "test.tick", "node", "n1", "{\"n\":1}");
	return b;
}

/* Opens the store as replica `replica` of group `group`, data dir `instance`;
 * wipe: --pg-reset. */
static struct store *open_as(const char *group, uint64_t replica, const char *instance, bool wipe, char *err,
			     size_t errlen)
{
	struct store *s = NULL;
	const struct store_config cfg = {
		.conninfo = conninfo,
		.schema_dir = schema_dir,
		.group_id = group,
		.replica_id = replica,
		.instance_id = instance,
		.wipe_foreign = wipe,
	};
	if (store_open(&s, &cfg, err, errlen) != 0)
		return NULL;
	return s;
}

/* Replica 1 of group "g1", data dir `instance`. */
struct store *open_store(const char *instance, char *err, size_t errlen)
{
	return open_as("g1", 1, instance, false, err, errlen);
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? json_integer_value(v) : -999;
}

/* ---- model objects by hand ------------------------------------------------- */

static struct kv n1_labels[] = {{"tier", "edge"}, {"zone", "a"}};
static struct kv n2_labels[] = {{"zone", "b"}};
struct kv n3_labels[] = {{"zone", "a"}};
static struct kv a1_constraints[] = {{"zone", "a"}};
static struct kv l1_values[] = {{"URL", "redis://127.0.0.1:6379"}};
static char *kv_contracts[] = {"wasmcloud:keyvalue"};
static char *p1_nodes[] = {"n1", "n2"};
static char *pol_regions[] = {"eu"};

void mk_node(struct model_node *n, char *id, char *region, struct kv *labels, size_t nl,
		    enum node_status st)
{
	memset(n, 0, sizeof(*n));
	n->spec.id = id;
	n->spec.region = region;
	n->spec.labels = (struct kvlist){labels, nl};
	n->spec.cpu_capacity = 4000;
	n->spec.memory_mb = 8192;
	n->spec.cpu_used = 100;
	n->spec.memory_used_mb = 256;
	n->spec.actor_count = 1;
	n->cpu_used = 600;
	n->memory_used_mb = 768;
	n->actor_count = 2;
	n->cpu_measured = -1;
	n->memory_measured_mb = 300;
	n->status = st;
	n->last_heartbeat_ms = st == NODE_HEALTHY ? T0 + 1000 : 0;
	n->policy_version = 2;
	n->agent_version = "1.2.3";
	n->generation = 7;
	n->created_ms = T0;
	n->updated_ms = T0 + 5;
}

struct model_node n1, n2, n3;
static struct model_placement a1_pl[2];
struct model_actor a1;
struct model_provider p1;
struct model_link l1;
struct model_policy pol1;

static void mk_objects(void)
{
	mk_node(&n1, "n1", "eu", n1_labels, 2, NODE_HEALTHY);
	mk_node(&n2, "n2", "us", n2_labels, 1, NODE_HEALTHY);
	mk_node(&n3, "n3", "eu", n3_labels, 1, NODE_DEGRADED);

	a1.spec = (struct actor_spec){.id = "a1", .name = "alpha", .module = "ghcr.io/x/alpha:1",
				      .cpu_required = 500, .memory_required_mb = 512,
				      .preferred_region = "eu", .constraints = {a1_constraints, 1},
				      .priority = 10, .max_latency_ms = 50, .replicas = 2,
				      .strategy = STRATEGY_ROUND_ROBIN, .contracts = {kv_contracts, 1}};
	a1_pl[0] = (struct model_placement){&n1, PL_RUNNING, 3};
	a1_pl[1] = (struct model_placement){&n2, PL_STARTING, 0};
	a1.placements = a1_pl;
	a1.nplacements = 2;
	a1.generation = 4;
	a1.created_ms = T0;
	a1.updated_ms = T0 + 9;

	p1.spec = (struct provider_spec){.id = "p1", .contract_id = "wasmcloud:keyvalue",
					 .image = "ghcr.io/x/redis:1", .nodes = {p1_nodes, 2}};
	p1.created_ms = T0;

	l1.spec = (struct link_spec){.id = "l1", .actor_id = "a1", .provider_id = "p1",
				     .contract_id = "wasmcloud:keyvalue", .link_name = "default",
				     .values = {l1_values, 1}, .timeout_ms = 5000, .retry_count = 3,
				     .retry_delay_ms = 1000};
	l1.created_ms = T0;

	pol1.spec = (struct policy_spec){.policy_id = "pol1", .allowed_contracts = {kv_contracts, 1},
					 .max_actor_memory_mb = 1024, .sel_regions = {pol_regions, 1}};
	pol1.version = 1;
	pol1.created_ms = pol1.updated_ms = T0;
}

/* ---- sections -------------------------------------------------------------- */

/* Number of migrations (NNN_name.sql) in schema_dir, and the highest number. */
static int count_migrations(int *newest)
{
	DIR *d = opendir(schema_dir);
	struct dirent *e;
	int n = 0;
	*newest = 0;
	while (d && (e = readdir(d))) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		size_t len = strlen(e->d_name);
		if (end == e->d_name || *end != '_' || v <= 0 || len < 5 ||
		    strcmp(e->d_name + len - 4, ".sql") != 0)
			continue;
		n++;
		if (v > *newest)
			*newest = (int)v;
	}
	if (d)
		closedir(d);
	return n;
}

static void test_migrations(void)
{
	char err[512], buf[512], before[4096], dir[] = "/tmp/lattice-schema.XXXXXX";
	int newest, nmig = count_migrations(&newest);
	struct store *s = open_store("inst-A", err, sizeof(err));
	if (!ok(s != NULL, "store_open migrates an empty database"))
		tap_diag("%s", err);
	is_int(s ? store_applied_index(s) : 99, 0, "a new database has applied index 0");
	ok(s && !store_was_reset(s), "a new database is claimed, not reset");
	is_int(sql_int("SELECT count(*) FROM schema_migrations"), nmig,
	       "every migration recorded (%d)", nmig);
	is_str(sql_str("SELECT version || ' ' || name FROM schema_migrations ORDER BY version LIMIT 1",
		       buf, sizeof(buf)),
	       "1 001_init.sql", "schema_migrations names the file");
	is_str(sql_str("SELECT instance_id FROM lattice_state", buf, sizeof(buf)), "inst-A",
	       "lattice_state records the instance id");
	/* 003 computes timestamps with float division: exactly numeric's result, from
	 * the epoch's first ms to 2100 and densely around now. */
	is_int(sql_int("SELECT count(*) FROM (SELECT g::bigint * 3600001 AS x FROM generate_series(0, "
		       "1139000) g UNION ALL SELECT 1763000000000 + g::bigint * 7 FROM "
		       "generate_series(0, 300000) g) t WHERE lattice_from_ms(x) <> to_timestamp(x / 1000.0)"),
	       0, "lattice_from_ms is exact to the microsecond (1.4 million values)");
	sql_str("SELECT string_agg(version || name || applied_at, ',') FROM schema_migrations", before,
		sizeof(before));
	store_close(s);

	s = open_store("inst-A", err, sizeof(err));
	ok(s != NULL, "store_open again on a migrated database");
	is_str(sql_str("SELECT string_agg(version || name || applied_at, ',') FROM schema_migrations",
		       buf, sizeof(buf)),
	       before, "a second open applies nothing (schema_migrations unchanged)");
	store_close(s);

	{
		const char *keep = schema_dir;
		schema_dir = "/nonexistent";
		s = open_store("inst-A", err, sizeof(err));
		schema_dir = keep;
		ok(s == NULL && strstr(err, "/nonexistent") != NULL, "missing schema dir fails: %s", err);
	}

	/* A broken migration (numbered after the real ones) rolls back entirely and
	 * names its file. */
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	int bad = newest + 1;
	char badname[32], q[128];
	snprintf(badname, sizeof(badname), "%03d_bad.sql", bad);
	snprintf(buf, sizeof(buf), "cp '%s'/[0-9]*_*.sql '%s/' && printf '%s' > '%s/%s'", schema_dir,
		 dir, "CREATE TABLE t_half (x int);\nSELEC nonsense;\n", dir, badname);
	ok(system(buf) == 0, "schema copy with a broken %s", badname);
	{
		const char *keep = schema_dir;
		schema_dir = dir;
		s = open_store("inst-A", err, sizeof(err));
		ok(s == NULL && strstr(err, badname) && strstr(err, "syntax error"),
		   "a broken migration fails, naming the file: %s", err);
		is_int(sql_int("SELECT count(*) FROM pg_tables WHERE tablename = 't_half'"), 0,
		       "... and rolls back all of it");
		is_int(sql_int("SELECT max(version) FROM schema_migrations"), newest,
		       "... and is not recorded");

		/* A good one applies; then a latticed that only knows the real ones
		 * refuses. */
		snprintf(buf, sizeof(buf), "printf '%s' > '%s/%s'", "CREATE TABLE t_extra (x int);", dir,
			 badname);
		ok(system(buf) == 0, "schema copy with a good %s", badname);
		s = open_store("inst-A", err, sizeof(err));
		ok(s != NULL, "a new migration applies on open");
		store_close(s);
		schema_dir = keep;
		s = open_store("inst-A", err, sizeof(err));
		snprintf(q, sizeof(q), "version %d", bad);
		ok(s == NULL && strstr(err, q), "an older schema dir is refused: %s", err);
	}
	snprintf(buf, sizeof(buf), "DELETE FROM schema_migrations WHERE version = %d", bad);
	ok(sql_ok("DROP TABLE t_extra") && sql_ok(buf), "undo the extra migration");
	snprintf(buf, sizeof(buf), "rm -rf '%s'", dir);
	if (system(buf) != 0)
		tap_diag("could not remove %s", dir);
}

static void test_constraints(void)
{
	char st[8];
	is_str(sql_state("INSERT INTO nodes (id, region, cpu_capacity, memory_mb, status, created_at, "
			 "updated_at) VALUES ('x', 'eu', 1, 1, 'bogus', now(), now())",
			 st, sizeof(st)),
	       "23514", "CHECK rejects a bad node status");
	is_str(sql_state("INSERT INTO nodes (id, region, cpu_capacity, memory_mb, status, created_at, "
			 "updated_at) VALUES ('x', 'eu', -1, 1, 'healthy', now(), now())",
			 st, sizeof(st)),
	       "23514", "CHECK rejects negative capacity");
	is_str(sql_state("INSERT INTO actors (id, name, module, cpu_required, memory_required_mb, "
			 "priority, created_at, updated_at) VALUES ('x', 'x', 'm', 1, 1, 256, now(), "
			 "now())",
			 st, sizeof(st)),
	       "23514", "CHECK rejects priority 256");
	is_str(sql_state("INSERT INTO commands (command_id, command_type, target_node, status, "
			 "created_at, updated_at) VALUES ('c', 'reboot', 'n', 'pending', now(), now())",
			 st, sizeof(st)),
	       "23514", "CHECK rejects an unknown command_type");
	is_str(sql_state("INSERT INTO placements (actor_id, instance, node_id, state) VALUES ('nope', "
			 "0, NULL, 'running')",
			 st, sizeof(st)),
	       "23503", "a placement needs its actor (checked at commit)");
}

static void test_projection(struct store *s)
{
	char err[512];
	json_t *j = NULL, *items = NULL;
	char *next = NULL;
	PGconn *c = store_conn(s);
	ok(c != NULL, "store_conn gives a reader connection");

	struct proj_batch *b = proj_batch_new(1);
	/* Placements before their actor and nodes: deferred keys allow any order
	 * within a transaction. */
	proj_placements(b, &a1);
	proj_node(b, &n1);
	proj_node(b, &n2);
	proj_node(b, &n3);
	proj_actor(b, &a1);
	proj_event(b, 1, T0, "api", "node.put", "node", "n1", "{}");
	ok(!b->failed && b->n == 6, "batch 1 rendered (6 changes)");
	store_submit(s, b);
	b = proj_batch_new(2);
	proj_provider(b, &p1);
	proj_link(b, &l1);
	proj_policy(b, &pol1);
	proj_event(b, 2, T0 + 1, "api", "actor.create", "actor", "a1", "{\"replicas\":2}");
	store_submit(s, b);
	pol1.version = 2;
	pol1.spec.max_actor_memory_mb = 2048;
	pol1.updated_ms = T0 + 60000;
	b = proj_batch_new(4); /* index 3 produced no rows */
	proj_policy(b, &pol1);
	proj_event(b, 3, T0 + 2, "api", "policy.put", "policy", "pol1", NULL);
	store_submit(s, b);
	ok(wait_projected(s, 4, 10000), "batches 1, 2, 4 projected");
	is_int(atomic_load(&cb_last), 4, "callback saw index 4");
	is_int(sql_int("SELECT applied_index FROM lattice_state"), 4, "applied_index recorded");

	/* node */
	is_int(query_get(c, QUERY_NODES, "n1", &j, err, sizeof(err)), QUERY_OK, "get node n1");
	if (j) {
		is_str(jstr(j, "region"), "eu", "node region");
		is_str(json_string_value(json_object_get(json_object_get(j, "labels"), "zone")), "a",
		       "node labels");
		/* base 100 + a1's 500 on n1: derived from the placements (schema 003) */
		is_int(jint(j, "cpu_used"), 600, "node cpu_used is the accounted value");
		is_int(jint(j, "memory_used_mb"), 768, "node memory_used_mb accounted");
		is_int(jint(json_object_get(j, "base"), "cpu_used"), 100, "node base.cpu_used");
		is_int(jint(j, "actor_count"), 2, "node actor_count accounted");
		ok(json_is_null(json_object_get(j, "cpu_measured")), "unknown cpu_measured is null");
		is_int(jint(j, "memory_measured_mb"), 300, "memory_measured_mb");
		is_str(jstr(j, "status"), "healthy", "node status");
		ok(json_is_false(json_object_get(j, "cordoned")), "node cordoned false");
		is_str(jstr(j, "created_at"), "2026-11-22T01:02:03.456Z", "created_at RFC 3339 ms UTC");
		is_str(jstr(j, "last_heartbeat"), "2026-11-22T01:02:04.456Z", "last_heartbeat");
		is_str(jstr(j, "agent_version"), "1.2.3", "agent_version");
		is_int(jint(j, "generation"), 7, "generation");
		json_decref(j);
		j = NULL;
	}
	is_int(query_get(c, QUERY_NODES, "n3", &j, err, sizeof(err)), QUERY_OK, "get node n3");
	ok(j && json_is_null(json_object_get(j, "last_heartbeat")), "no heartbeat yet is null");
	json_decref(j);
	j = NULL;
	is_int(query_get(c, QUERY_NODES, "nope", &j, err, sizeof(err)), QUERY_NOT_FOUND,
	       "unknown node: not found");
	ok(j == NULL, "... and *out untouched");

	/* actor */
	is_int(query_get(c, QUERY_ACTORS, "a1", &j, err, sizeof(err)), QUERY_OK, "get actor a1");
	if (j) {
		json_t *pl = json_object_get(j, "placements");
		is_int(json_array_size(pl), 2, "actor has 2 placements");
		is_str(jstr(json_array_get(pl, 0), "node_id"), "n1", "placement 0 on n1");
		is_str(jstr(json_array_get(pl, 0), "state"), "running", "placement 0 running");
		is_int(jint(json_array_get(pl, 0), "state_version"), 3, "placement 0 state_version");
		is_int(jint(json_array_get(pl, 1), "instance"), 1, "placement 1 instance");
		is_str(jstr(j, "strategy"), "round_robin", "actor strategy");
		is_str(json_string_value(json_array_get(json_object_get(j, "contracts"), 0)),
		       "wasmcloud:keyvalue", "actor contracts");
		is_int(jint(j, "priority"), 10, "actor priority");
		json_decref(j);
		j = NULL;
	}
	/* provider, link */
	is_int(query_get(c, QUERY_PROVIDERS, "p1", &j, err, sizeof(err)), QUERY_OK, "get provider");
	ok(j && json_array_size(json_object_get(j, "nodes")) == 2, "provider nodes");
	json_decref(j);
	j = NULL;
	is_int(query_get(c, QUERY_LINKS, "l1", &j, err, sizeof(err)), QUERY_OK, "get link");
	if (j) {
		is_str(json_string_value(json_object_get(json_object_get(j, "values"), "URL")),
		       "redis://127.0.0.1:6379", "link values");
		is_int(jint(j, "timeout_ms"), 5000, "link timeout_ms");
		json_decref(j);
		j = NULL;
	}
	/* policy: current = highest version */
	is_int(query_get(c, QUERY_POLICIES, "pol1", &j, err, sizeof(err)), QUERY_OK, "get policy");
	if (j) {
		is_int(jint(j, "version"), 2, "policy shows its current version");
		is_int(jint(j, "max_actor_memory_mb"), 2048, "... with that version's fields");
		is_str(json_string_value(
			       json_array_get(json_object_get(json_object_get(j, "selector"), "regions"), 0)),
		       "eu", "policy selector.regions");
		ok(json_is_object(json_object_get(json_object_get(j, "selector"), "labels")),
		   "policy selector.labels is an object");
		is_str(jstr(j, "created_at"), "2026-11-22T01:03:03.456Z", "version 2's time");
		json_decref(j);
		j = NULL;
	}
	is_int(query_policy_versions(c, "pol1", &items, err, sizeof(err)), QUERY_OK, "policy versions");
	ok(items && json_array_size(items) == 2 && jint(json_array_get(items, 0), "version") == 1,
	   "two versions, oldest first");
	json_decref(items);
	items = NULL;
	is_int(query_policy_versions(c, "nope", &items, err, sizeof(err)), QUERY_NOT_FOUND,
	       "versions of an unknown policy: not found");

	/* lists, pagination, filters */
	struct query_filter f = {.limit = 2};
	is_int(query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err)), QUERY_OK, "list nodes");
	ok(items && json_array_size(items) == 2 && next && strcmp(next, "n2") == 0,
	   "page 1: 2 nodes, next n2");
	json_decref(items);
	f.after = next;
	is_int(query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err)), QUERY_OK, "page 2");
	ok(items && json_array_size(items) == 1 && !strcmp(jstr(json_array_get(items, 0), "id"), "n3"),
	   "page 2: n3");
	ok(next == NULL, "last page: next is NULL");
	free((char *)f.after);
	json_decref(items);

	f = (struct query_filter){.region = "eu"};
	query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 2, "region=eu: 2 nodes");
	json_decref(items);
	f = (struct query_filter){.status = "degraded"};
	query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err));
	ok(json_array_size(items) == 1 && !strcmp(jstr(json_array_get(items, 0), "id"), "n3"),
	   "status=degraded: n3");
	json_decref(items);
	f = (struct query_filter){.label_key = "zone", .label_value = "b"};
	query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err));
	ok(json_array_size(items) == 1 && !strcmp(jstr(json_array_get(items, 0), "id"), "n2"),
	   "label zone=b: n2");
	json_decref(items);
	f = (struct query_filter){.label_key = "tier"};
	query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 1, "label key tier: 1 node");
	json_decref(items);
	f = (struct query_filter){.region = "eu", .label_key = "zone", .label_value = "a"};
	query_list(c, QUERY_NODES, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 2, "region=eu and zone=a: 2 nodes");
	json_decref(items);
	f = (struct query_filter){.node_id = "n2"};
	query_list(c, QUERY_ACTORS, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 1, "actors on n2: a1");
	json_decref(items);
	f = (struct query_filter){.node_id = "n3"};
	query_list(c, QUERY_ACTORS, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 0, "actors on n3: none");
	json_decref(items);
	f = (struct query_filter){.actor_id = "a1", .contract_id = "wasmcloud:keyvalue"};
	query_list(c, QUERY_LINKS, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 1, "links of a1 for the contract");
	json_decref(items);
	f = (struct query_filter){.provider_id = "p9"};
	query_list(c, QUERY_LINKS, &f, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 0, "links of an unknown provider: none");
	json_decref(items);
	query_list(c, QUERY_PROVIDERS, NULL, &items, &next, err, sizeof(err));
	is_int(json_array_size(items), 1, "providers, no filter");
	json_decref(items);
	query_list(c, QUERY_POLICIES, NULL, &items, &next, err, sizeof(err));
	ok(json_array_size(items) == 1 && jint(json_array_get(items, 0), "version") == 2,
	   "policies list shows current versions only");
	json_decref(items);

	/* events */
	uint64_t last = 0;
	uint64_t first = 0;
	is_int(query_events(c, 0, false, 100, &items, &last, &first, err, sizeof(err)), QUERY_OK, "events");
	ok(json_array_size(items) == 3 && last == 3, "3 events, last seq 3");
	if (json_array_size(items) == 3) {
		json_t *e = json_array_get(items, 2);
		is_int(jint(e, "index"), 4, "event carries its log index");
		is_str(jstr(e, "kind"), "policy.put", "event kind");
		ok(json_is_null(json_object_get(e, "data")), "event without data: null");
		is_str(jstr(json_array_get(items, 1), "at"), "2026-11-22T01:02:03.457Z", "event at");
	}
	json_decref(items);
	query_events(c, 2, false, 100, &items, &last, &first, err, sizeof(err));
	ok(json_array_size(items) == 1 && last == 3, "events since 2: just seq 3");
	json_decref(items);
	query_events(c, 3, false, 100, &items, &last, &first, err, sizeof(err));
	ok(json_array_size(items) == 0 && last == 3, "events since 3: none, cursor stays");
	json_decref(items);

	/* Events missing (as after a rebuild from a snapshot), in a transaction of
	 * the reader's own that is rolled back: never a silent gap. */
	PQclear(PQexec(c, "BEGIN"));
	PQclear(PQexec(c, "DELETE FROM events WHERE seq = 2"));
	items = NULL;
	is_int(query_events(c, 0, false, 100, &items, &last, &first, err, sizeof(err)), QUERY_OK,
	       "event 2 missing: since=0 still answers");
	ok(json_array_size(items) == 1 && last == 1, "... with the page stopping before the gap (seq 1 only)");
	json_decref(items);
	first = 0;
	is_int(query_events(c, 1, false, 100, &items, &last, &first, err, sizeof(err)), QUERY_GONE,
	       "since=1: gone (%s)", err);
	is_int(first, 3, "... naming 3, the next event held");
	PQclear(PQexec(c, "DELETE FROM events WHERE seq = 1"));
	first = 0;
	ok(query_events(c, 0, false, 100, &items, &last, &first, err, sizeof(err)) == QUERY_GONE && first == 3,
	   "events 1 and 2 missing: since=0 is gone too, first 3");
	items = NULL;
	ok(query_events(c, 0, true, 100, &items, &last, &first, err, sizeof(err)) == QUERY_OK &&
		   json_array_size(items) == 1 && last == 3,
	   "without since, the list starts at the oldest held");
	json_decref(items);
	PQclear(PQexec(c, "ROLLBACK"));
	uint64_t ai = 0;
	is_int(query_applied_index(c, &ai, err, sizeof(err)), QUERY_OK, "query_applied_index");
	is_int(ai, 4, "... is 4");
	is_int(query_get(NULL, QUERY_NODES, "n1", &j, err, sizeof(err)), QUERY_UNAVAILABLE,
	       "no connection: unavailable");

	/* fewer replicas, then delete: placements and links go with the actor */
	a1.nplacements = 1;
	b = proj_batch_new(5);
	proj_placements(b, &a1);
	store_submit(s, b);
	ok(wait_projected(s, 5, 10000), "placements replaced");
	is_int(sql_int("SELECT count(*) FROM placements WHERE actor_id = 'a1'"), 1,
	       "placement set shrank to 1");
	b = proj_batch_new(6);
	proj_actor_delete(b, "a1");
	proj_node_delete(b, "n3");
	store_submit(s, b);
	ok(wait_projected(s, 6, 10000), "actor deleted");
	is_int(sql_int("SELECT count(*) FROM placements") + sql_int("SELECT count(*) FROM links"), 0,
	       "its placements and links went with it");
	is_int(query_get(c, QUERY_ACTORS, "a1", &j, err, sizeof(err)), QUERY_NOT_FOUND, "a1 is gone");
	is_int(query_get(c, QUERY_NODES, "n3", &j, err, sizeof(err)), QUERY_NOT_FOUND, "n3 is gone");
}

/* A statement that fails (a duplicate event) is logged, retried, and goes through
 * once the cause is gone; meanwhile the store reports unhealthy. */
static void test_sql_error(struct store *s)
{
	struct store_stats st0, st1;
	store_stats(s, &st0);
	ok(sql_ok("INSERT INTO events (seq, raft_index, at, kind) VALUES (4, 1, now(), 'squatter')"),
	   "plant a conflicting event");
	tap_diag("an SQL error line from the store is expected next");
	store_submit(s, ev_batch(7, 4));
	ok(wait_healthy(s, false, 5000), "SQL error: store unhealthy");
	store_stats(s, &st1);
	ok(st1.errors > st0.errors, "SQL error counted");
	is_int(store_projected(s), 6, "nothing projected past the failure");
	ok(store_backlog(s) == 1, "the batch is kept");
	ok(sql_ok("DELETE FROM events WHERE kind = 'squatter'"), "remove the cause");
	ok(wait_projected(s, 7, 10000), "the retry goes through");
	ok(wait_healthy(s, true, 2000), "healthy again");
	is_int(sql_int("SELECT count(*) FROM events WHERE seq = 4 AND raft_index = 7"), 1,
	       "the event is there once");
}

static void test_stop_flush(struct store *s, uint64_t *idx, uint64_t *seq)
{
	for (int i = 0; i < 3000; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	is_int(store_stop(s, 30000), 0, "store_stop flushes 3000 queued batches");
	is_int(sql_int("SELECT applied_index FROM lattice_state"), (long long)*idx,
	       "applied_index is the last one");
	is_int(store_backlog(s), 0, "backlog empty");
	store_close(s);
}

static void test_reopen(uint64_t *idx, uint64_t *seq, struct store **out)
{
	char err[512];
	struct store_stats st;
	struct store *s = open_store("inst-A", err, sizeof(err));
	*out = s;
	if (!ok(s != NULL, "reopen"))
		tap_diag("%s", err);
	if (!s)
		exit(tap_done());
	is_int(store_applied_index(s), (long long)*idx, "reopen: applied index from the database");
	ok(!store_was_reset(s), "same instance: not reset");
	/* A replay of entries the database already has: written twice they would be
	 * duplicate events. */
	for (uint64_t i = *idx - 10; i <= *idx; i++)
		store_submit(s, ev_batch(i, *seq - (*idx - i)));
	is_int(store_backlog(s), 0, "entries at or below applied_index are dropped");
	for (int i = 0; i < 2500; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	ok(store_start(s, on_projected, NULL) == 0, "start writer");
	ok(wait_projected(s, *idx, 30000), "2500 queued batches projected");
	store_stats(s, &st);
	is_int(st.batches, 2500, "2500 batches written");
	is_int(st.transactions, 3, "in 3 transactions (1000 batches each at most)");
	is_int(st.errors, 0, "no errors: nothing written twice");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "one event per seq");
}

/* The writer's backend is killed under it, repeatedly, mid-stream. */
static void test_backend_kill(struct store *s, uint64_t *idx, uint64_t *seq)
{
	struct store_stats st0, st1;
	int kills = 0;
	uint64_t first = *idx + 1;
	store_stats(s, &st0);
	for (int chunk = 0; chunk < 5; chunk++) {
		for (int i = 0; i < 4000; i++)
			store_submit(s, ev_batch(++*idx, ++*seq));
		sleep_ms(150); /* past the reconnect backoff: the writer is busy again */
		long long n = sql_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
				      "WHERE application_name = 'lattice-writer'");
		kills += n > 0;
	}
	ok(kills >= 3, "terminated the writer's backend %d times", kills);
	ok(wait_projected(s, *idx, 60000), "all 20000 batches projected despite that");
	store_stats(s, &st1);
	ok(st1.reconnects > st0.reconnects, "writer reconnected (%" PRIu64 " times)",
	   st1.reconnects - st0.reconnects);
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(DISTINCT raft_index) FROM events WHERE raft_index >= %" PRIu64,
		 first);
	is_int(sql_int(q), 20000, "nothing lost");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "nothing doubled");
	is_int(sql_int("SELECT applied_index FROM lattice_state"), (long long)*idx, "applied_index");
	ok(wait_healthy(s, true, 5000), "healthy");
}

/* PostgreSQL stops: the store reports unhealthy and keeps its queue; it starts
 * again: the queue drains. */
static void test_pg_restart(struct store *s, uint64_t *idx, uint64_t *seq)
{
	char err[256];
	json_t *j = NULL;
	if (!have_pg_ctl()) {
		for (int i = 0; i < 7; i++)
			ok(1, "# SKIP LATTICE_PG_DIR or top_srcdir not set");
		return;
	}
	uint64_t want = *idx + 50;
	ok(pg_ctl("pg_stop") == 0, "stop PostgreSQL");
	for (int i = 0; i < 50; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	ok(wait_healthy(s, false, 10000), "store unhealthy while PostgreSQL is down");
	ok(store_backlog(s) > 0 && store_projected(s) < want, "queue kept (%zu batches)",
	   store_backlog(s));
	is_int(query_get(store_conn(s), QUERY_NODES, "n1", &j, err, sizeof(err)), QUERY_UNAVAILABLE,
	       "reads: unavailable");
	ok(pg_ctl("pg_ctl_start") == 0, "start PostgreSQL");
	ok(wait_projected(s, want, 30000) && wait_healthy(s, true, 5000),
	   "queue drained, healthy again");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "nothing lost, nothing doubled");
}

/* PostgreSQL is SIGKILLed while commits made with synchronous_commit = off are not
 * yet flushed (a slow WAL writer makes that likely): the store writes the lost ones
 * again from its retained batches. */
static void test_pg_crash(struct store *s, uint64_t *idx, uint64_t *seq)
{
	if (!have_pg_ctl()) {
		for (int i = 0; i < 5; i++)
			ok(1, "# SKIP LATTICE_PG_DIR or top_srcdir not set");
		return;
	}
	ok(sql_ok("ALTER SYSTEM SET wal_writer_delay = '10s'") && sql_int("SELECT 1 FROM pg_reload_conf()") == 1,
	   "slow WAL writer");
	sleep_ms(300);
	for (int i = 0; i < 200; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	ok(wait_projected(s, *idx, 10000), "200 batches committed");
	uint64_t want = *idx;
	ok(pg_ctl("pg_kill && pg_ctl_start") == 0, "kill -9 PostgreSQL and start it again");
	long long after = sql_int("SELECT applied_index FROM lattice_state");
	tap_diag("after the crash PostgreSQL has applied_index %lld of %" PRIu64, after, want);
	for (int i = 0; i < 10; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	ok(wait_projected(s, *idx, 30000) &&
		   sql_int("SELECT applied_index FROM lattice_state") == (long long)*idx,
	   "everything projected again");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "nothing lost, nothing doubled");
	if (!sql_ok("ALTER SYSTEM RESET wal_writer_delay") || sql_int("SELECT 1 FROM pg_reload_conf()") != 1)
		tap_diag("could not reset wal_writer_delay");
}

static bool wait_errors(struct store *s, uint64_t above, int timeout_ms)
{
	struct store_stats st;
	for (int t = 0; t < timeout_ms; t += 10) {
		store_stats(s, &st);
		if (st.errors > above)
			return true;
		sleep_ms(10);
	}
	store_stats(s, &st);
	return st.errors > above;
}

/* Writers' sessions holding the projection lock ("latticeW", store.c). */
static long long lock_holders(void)
{
	return sql_int("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
		       "classid = 1818326132 AND objid = 1768121687 AND objsubid = 1");
}

/* Kills the writer's session and, once it has gone, takes the projection lock on
 * a connection of the test's own (returned: PQfinish releases it). */
static PGconn *steal_lock(void)
{
	PGconn *c = PQconnectdb(conninfo);
	PQclear(PQexec(c, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
			  "WHERE application_name = 'lattice-writer'"));
	/* pg_advisory_lock waits until the killed session has let go. */
	PGresult *r = PQexec(c, "SELECT pg_advisory_lock(7809651272170300759)");
	if (PQresultStatus(r) != PGRES_TUPLES_OK)
		tap_diag("pg_advisory_lock: %s", PQerrorMessage(c));
	PQclear(r);
	return c;
}

/* The projection lock: a second store on the database refuses at open; a writer
 * that reconnects takes it again before writing, and writes nothing while
 * another session holds it. */
static void test_lock(struct store *s, uint64_t *idx, uint64_t *seq)
{
	char err[1024];
	struct store_stats st0;
	is_int(lock_holders(), 1, "the writer's session holds the projection lock");
	struct store *t = open_store("inst-A", err, sizeof(err));
	ok(t == NULL && strstr(err, "another latticed is projecting into database") && strstr(err, "backend pid") &&
		   strstr(err, "lattice_state records it for replica 1 of group g1"),
	   "a second store on the database is refused, naming the holder: %s", err);
	store_close(t);

	long long applied = sql_int("SELECT applied_index FROM lattice_state");
	store_stats(s, &st0);
	PGconn *other = steal_lock();
	for (int i = 0; i < 5; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	tap_diag("a line about the projection lock from the store is expected next");
	ok(wait_errors(s, st0.errors, 10000), "the reconnected writer finds the lock taken (counted as an error)");
	ok(!store_healthy(s), "... and reports unhealthy");
	is_int(sql_int("SELECT applied_index FROM lattice_state"), applied,
	       "nothing written while another session holds the lock");
	PQfinish(other);
	ok(wait_projected(s, *idx, 15000) && wait_healthy(s, true, 5000),
	   "once the lock is free the writer takes it and writes");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "nothing lost, nothing doubled");
	is_int(lock_holders(), 1, "the writer holds the lock again");
}

/* A database taken over while the writer was away (another owner in
 * lattice_state): the writer takes the lock, sees it, lets go and never writes
 * again. Its own store, closed at the end. */
static void test_disowned(uint64_t *idx, uint64_t *seq)
{
	char err[512];
	struct store *s = open_store("inst-A", err, sizeof(err));
	if (!ok(s && store_start(s, NULL, NULL) == 0, "open and start a store"))
		return;
	long long applied = sql_int("SELECT applied_index FROM lattice_state");
	PGconn *other = steal_lock();
	PQclear(PQexec(other, "UPDATE lattice_state SET group_id = 'g9', instance_id = 'inst-Z'"));
	PQfinish(other);
	struct store_stats st0;
	store_stats(s, &st0);
	for (int i = 0; i < 3; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	tap_diag("a line about the database taken over is expected next");
	ok(wait_errors(s, st0.errors, 10000), "the writer finds the database taken over (counted as an error)");
	ok(!store_healthy(s), "... reports unhealthy");
	is_int(sql_int("SELECT applied_index FROM lattice_state"), applied, "... writes nothing");
	for (int i = 0; i < 100 && lock_holders() != 0; i++)
		sleep_ms(20);
	is_int(lock_holders(), 0, "... and lets go of the lock");
	ok(store_stop(s, 100) != 0, "store_stop reports the batches it could not write");
	store_close(s);
	*idx -= 3;
	*seq -= 3;
	ok(sql_ok("UPDATE lattice_state SET group_id = 'g1', instance_id = 'inst-A'"), "give the database back");
}

/* ---- the bounded queue and its spool -------------------------------------------- */

static char spool_dir[] = "/tmp/lattice-spool.XXXXXX";
static char spool_path[sizeof(spool_dir) + 32];

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* The spool's disk guard in these tests: lets `room_left` appends through. */
static atomic_int room_left = 1000000;
static bool test_room(void *arg, size_t len, char *why, size_t whylen)
{
	(void)arg;
	(void)len;
	if (atomic_fetch_sub(&room_left, 1) > 0)
		return true;
	snprintf(why, whylen, "the test's guard says the disk is full");
	return false;
}

/* Replica 1 of g1, data dir inst-A, with a spool and a queue bound of
 * queue_max bytes. */
static struct store *open_spooling(size_t queue_max, char *err, size_t errlen)
{
	struct store *s = NULL;
	const struct store_config cfg = {
		.conninfo = conninfo,
		.schema_dir = schema_dir,
		.group_id = "g1",
		.replica_id = 1,
		.instance_id = "inst-A",
		.spool_path = spool_path,
		.queue_max = queue_max,
		.room = test_room,
	};
	if (store_open(&s, &cfg, err, errlen) != 0)
		return NULL;
	return s;
}

/* Events of the database in seq order, with raft_index never going back. */
static long long events_out_of_order(void)
{
	return sql_int("SELECT count(*) FROM (SELECT raft_index, lag(raft_index) OVER (ORDER BY seq) AS prev "
		       "FROM events) t WHERE raft_index <= prev");
}

/* Two batches hold the same changes: kinds, fresh flags, parameters (NULL alike). */
static bool same_batch(const struct proj_batch *a, const struct proj_batch *b)
{
	if (a->index != b->index || a->n != b->n)
		return false;
	for (const struct proj_change *x = a->head, *y = b->head; x || y; x = x->next, y = y->next) {
		if (!x || !y || x->kind != y->kind || x->fresh != y->fresh || x->nparams != y->nparams)
			return false;
		for (int i = 0; i < x->nparams; i++)
			if ((x->params[i] == NULL) != (y->params[i] == NULL) ||
			    (x->params[i] && strcmp(x->params[i], y->params[i]) != 0))
				return false;
	}
	return true;
}

/* store_spool: a batch written as a record reads back the same. */
static void test_spool_codec(void)
{
	char err[256], dir[] = "/tmp/lattice-spool-codec.XXXXXX", path[64];
	struct spool sp;
	if (!mkdtemp(dir)) {
		ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/s", dir);
	struct model m;
	model_init(&m);
	hmap_put(&m.nodes, "n1", &n1);
	hmap_put(&m.nodes, "n2", &n2);
	hmap_put(&m.actors, "a1", &a1);
	hmap_put(&m.providers, "p1", &p1);
	hmap_put(&m.links, "l1", &l1);
	hmap_put(&m.policies, "pol1", &pol1);
	struct proj_batch *a = proj_batch_new(((uint64_t)7 << 32) + 5), *b = proj_batch_new(9);
	proj_model(a, &m); /* a reset, every kind of row, NULL parameters (n1's cpu_measured) */
	proj_actor_created(a, &a1);
	proj_event(a, 3, T0, "who", "kind", NULL, NULL, "{}");
	ok(spool_init(&sp, path, err, sizeof(err)) == 0, "spool_init");
	size_t len = spool_encode(&sp, a, err, sizeof(err));
	ok(len > 0 && spool_append(&sp, err, sizeof(err)) == 0 && spool_encode(&sp, b, err, sizeof(err)) > 0 &&
		   spool_append(&sp, err, sizeof(err)) == 0,
	   "two batches appended (%zu bytes, then an empty one)", len);
	struct proj_batch *ra = NULL, *rb = NULL;
	ok(spool_read(&sp, sp.end, &ra, err, sizeof(err)) == 0 && spool_read(&sp, sp.end, &rb, err, sizeof(err)) == 0,
	   "both read back: %s", err);
	ok(ra && rb && same_batch(a, ra) && same_batch(b, rb) && a->n > 8,
	   "with the same index, changes, fresh flags and parameters (NULLs too)");
	ok(sp.rd == sp.end && spool_read(&sp, sp.end, &rb, err, sizeof(err)) != 0, "then nothing more: %s", err);
	spool_release(&sp);
	ok(access(path, F_OK) != 0, "spool_release removes the file");
	proj_batch_free(a);
	proj_batch_free(b);
	proj_batch_free(ra);
	proj_batch_free(rb);
	hmap_release(&m.nodes);
	hmap_release(&m.actors);
	hmap_release(&m.providers);
	hmap_release(&m.links);
	hmap_release(&m.policies);
	sched_index_release(&m.sched);
	rmdir(dir);
}

/* While PostgreSQL is down, the writer holds at most the bound in memory and
 * spools the rest; once it is back everything arrives in order and the spool
 * is removed. */
static void test_spool(uint64_t *idx, uint64_t *seq)
{
	char err[512];
	struct store_stats st;
	const size_t bound = 20000;
	if (!have_pg_ctl()) {
		for (int i = 0; i < 14; i++)
			ok(1, "# SKIP LATTICE_PG_DIR or top_srcdir not set");
		return;
	}
	if (!mkdtemp(spool_dir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		exit(1);
	}
	snprintf(spool_path, sizeof(spool_path), "%s/projection.spool", spool_dir);
	FILE *f = fopen(spool_path, "w");
	if (f) {
		fputs("left over by an earlier process", f);
		fclose(f);
	}
	struct store *s = open_spooling(bound, err, sizeof(err));
	if (!s) {
		printf("Bail out! open with a spool: %s\n", err);
		exit(1);
	}
	is_int(file_size(spool_path), -1, "store_open removes a spool an earlier process left");
	ok(store_start(s, NULL, NULL) == 0, "start writer");
	ok(pg_ctl("pg_stop") == 0 && wait_healthy(s, false, 10000), "stop PostgreSQL; the writer notices");
	uint64_t first = *idx + 1;
	for (int i = 0; i < 300; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	store_stats(s, &st);
	ok(st.queue_bytes > 0 && st.queue_bytes <= bound, "memory stays under the bound: %" PRIu64 " of %zu bytes",
	   st.queue_bytes, bound);
	ok(st.spooled > 250 && st.spooled < 300, "the rest went to the spool (%" PRIu64 " of 300 batches)", st.spooled);
	ok(st.spool_bytes > 0 && (long long)st.spool_bytes == file_size(spool_path),
	   "the spool file holds them (%" PRIu64 " bytes)", st.spool_bytes);
	is_int(store_backlog(s), 300, "all 300 count as waiting");
	ok(!store_healthy(s), "unhealthy while PostgreSQL is down");
	ok(pg_ctl("pg_ctl_start") == 0, "start PostgreSQL");
	ok(wait_projected(s, *idx, 30000) && wait_healthy(s, true, 5000), "everything projected once it is back");
	char q[256];
	snprintf(q, sizeof(q), "SELECT count(*) FROM events WHERE raft_index >= %" PRIu64, first);
	is_int(sql_int(q), 300, "all 300 arrived, once each");
	is_int(events_out_of_order(), 0, "in log order");
	store_stats(s, &st);
	ok(file_size(spool_path) == -1 && st.spool_bytes == 0, "the spool file is gone");
	is_int(store_stop(s, 10000), 0, "store_stop: flushed");
	store_close(s);
}

/* The spool cannot grow (the disk guard refuses): the store halts. What it held
 * before is written, nothing after, and it stays unhealthy. */
static void test_spool_full(uint64_t *idx, uint64_t *seq)
{
	char err[512];
	struct store_stats st;
	if (!have_pg_ctl()) {
		for (int i = 0; i < 6; i++)
			ok(1, "# SKIP LATTICE_PG_DIR or top_srcdir not set");
		return;
	}
	struct store *s = open_spooling(20000, err, sizeof(err));
	if (!s) {
		printf("Bail out! open with a spool: %s\n", err);
		exit(1);
	}
	store_start(s, NULL, NULL);
	if (pg_ctl("pg_stop") != 0 || !wait_healthy(s, false, 10000))
		tap_diag("PostgreSQL did not stop, or the writer did not notice");
	atomic_store(&room_left, 40);
	uint64_t from = *idx, from_seq = *seq;
	tap_diag("a line about the projection stopping is expected next");
	for (int i = 0; i < 200; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	store_stats(s, &st);
	uint64_t kept = store_backlog(s);
	ok(st.spooled == 40 && kept < 200, "the guard refused the 41st spooled batch; %" PRIu64 " of 200 kept", kept);
	pg_ctl("pg_ctl_start");
	ok(wait_projected(s, from + kept, 30000), "what was kept before it is written");
	ok(!store_healthy(s), "the store stays unhealthy");
	is_int(store_stop(s, 2000), -1, "store_stop says it is not all written");
	store_close(s);
	is_int(sql_int("SELECT applied_index FROM lattice_state"), (long long)(from + kept),
	       "nothing after the refused batch is written");
	is_int(events_out_of_order() + sql_int("SELECT count(*) - max(seq) FROM events"), 0,
	       "no gap, nothing out of order");
	atomic_store(&room_left, 1000000);
	*idx = from + kept;
	*seq = from_seq + kept;
}

/* A spool record that does not read back (corrupt) halts the store there. */
static void test_spool_corrupt(uint64_t *idx, uint64_t *seq)
{
	char err[512];
	struct store_stats st;
	if (!have_pg_ctl()) {
		for (int i = 0; i < 4; i++)
			ok(1, "# SKIP LATTICE_PG_DIR or top_srcdir not set");
		return;
	}
	struct store *s = open_spooling(20000, err, sizeof(err));
	if (!s) {
		printf("Bail out! open with a spool: %s\n", err);
		exit(1);
	}
	store_start(s, NULL, NULL);
	/* Once the writer knows PostgreSQL is gone it reads nothing back from the
	 * spool, so the file holds every spooled batch when it is corrupted. */
	if (pg_ctl("pg_stop") != 0 || !wait_healthy(s, false, 10000))
		tap_diag("PostgreSQL did not stop, or the writer did not notice");
	uint64_t from = *idx, from_seq = *seq;
	for (int i = 0; i < 100; i++)
		store_submit(s, ev_batch(++*idx, ++*seq));
	store_stats(s, &st);
	/* Every record of these batches has one size: flip a byte inside the
	 * sixth. */
	long long rec = file_size(spool_path) / (long long)st.spooled;
	int fd = open(spool_path, O_WRONLY);
	char x = 'X';
	ok(fd >= 0 && pwrite(fd, &x, 1, 5 * rec + 20) == 1, "corrupt the sixth spooled record");
	if (fd >= 0)
		close(fd);
	uint64_t good = from + (100 - st.spooled) + 5;
	tap_diag("a line about a corrupt spool record is expected next");
	pg_ctl("pg_ctl_start");
	ok(wait_projected(s, good, 30000) && wait_healthy(s, false, 5000),
	   "the batches before it are written; the store halts unhealthy");
	is_int(store_stop(s, 2000), -1, "store_stop says it is not all written");
	store_close(s);
	is_int(sql_int("SELECT applied_index FROM lattice_state"), (long long)good,
	       "nothing from the corrupt record on is written");
	*idx = good;
	*seq = from_seq + (good - from);
	rmdir(spool_dir);
}

/* A rebuild: proj_model starts with PROJ_RESET, which empties the state tables,
 * then writes every row of the model; the event history stays. */
static void test_rebuild(struct store *s, uint64_t *idx, uint64_t *seq)
{
	struct model m;
	model_init(&m);
	hmap_put(&m.nodes, "n1", &n1);
	hmap_put(&m.nodes, "n2", &n2);
	hmap_put(&m.actors, "a1", &a1);
	hmap_put(&m.providers, "p1", &p1);
	hmap_put(&m.links, "l1", &l1);
	hmap_put(&m.policies, "pol1", &pol1);
	ok(sql_ok("INSERT INTO providers (id, contract_id, image, created_at) "
		  "VALUES ('stale', 'x:y', 'img', now())"),
	   "a row the model does not have");
	struct proj_batch *b = proj_batch_new(++*idx);
	proj_model(b, &m);
	ok(!b->failed && b->head && b->head->kind == PROJ_RESET && b->n == 8,
	   "proj_model: reset + 2 nodes, actor, placements, provider, link, policy");
	store_submit(s, b);
	ok(wait_projected(s, *idx, 10000), "rebuild projected");
	ok(sql_int("SELECT count(*) FROM nodes") == 2 && sql_int("SELECT count(*) FROM actors") == 1 &&
		   sql_int("SELECT count(*) FROM placements") == 1 &&
		   sql_int("SELECT count(*) FROM providers") == 1 &&
		   sql_int("SELECT count(*) FROM links") == 1,
	   "exactly the model's rows");
	is_int(sql_int("SELECT count(*) FROM policies"), 1, "policies: the current version only");
	is_int(sql_int("SELECT count(*) FROM events"), (long long)*seq, "events kept");
	/* The objects are the test's: release the maps, not the objects. */
	hmap_release(&m.nodes);
	hmap_release(&m.actors);
	hmap_release(&m.providers);
	hmap_release(&m.links);
	hmap_release(&m.policies);
	sched_index_release(&m.sched);
}

/* Whose database it is (migrate_claim): the same replica's earlier data dir is
 * emptied; another group's or another replica id's is refused, untouched, unless
 * wipe_foreign (--pg-reset). */
static void test_owner(void)
{
	char err[1024], buf[128];
	struct store *s = open_store("inst-B", err, sizeof(err));
	ok(s != NULL, "open with another instance id of the same group and replica");
	ok(s && store_was_reset(s), "the database is reset");
	ok(s && strstr(store_claim_note(s), "earlier data dir of this replica") != NULL,
	   "the note says why: %s", s ? store_claim_note(s) : "");
	is_int(s ? store_applied_index(s) : 99, 0, "applied index 0");
	ok(sql_int("SELECT count(*) FROM nodes") == 0 && sql_int("SELECT count(*) FROM events") == 0,
	   "state and events emptied");
	is_str(sql_str("SELECT instance_id || ' ' || group_id || ' ' || replica_id FROM lattice_state", buf,
		       sizeof(buf)),
	       "inst-B g1 1", "new instance id recorded, with the group and replica id");
	if (s) {
		ok(store_start(s, NULL, NULL) == 0, "start writer");
		for (uint64_t i = 1; i <= 3; i++)
			store_submit(s, ev_batch(i, i));
		ok(wait_projected(s, 3, 10000), "three entries projected");
		store_close(s);
	} else {
		ok(0, "start writer");
		ok(0, "three entries projected");
	}
	s = open_store("inst-B", err, sizeof(err));
	ok(s && !store_was_reset(s) && store_claim_note(s)[0] == '\0',
	   "reopened by the same instance: not reset again, nothing to note");
	store_close(s);

	/* Another group: refused, untouched. */
	s = open_as("g2", 1, "inst-C", false, err, sizeof(err));
	ok(s == NULL, "a database of another group is refused");
	ok(strstr(err, "belongs to replica 1 of another lattice group (group g1, data dir instance inst-B") &&
		   strstr(err, "--pg-reset"),
	   "the message says whose it is and how to proceed: %s", err);
	store_close(s);
	is_str(sql_str("SELECT applied_index || ' ' || instance_id || ' ' || group_id || ' ' || "
		       "(SELECT count(*) FROM events) FROM lattice_state",
		       buf, sizeof(buf)),
	       "3 inst-B g1 3", "the refused database is untouched");

	/* Another replica id of this group: refused, untouched. */
	s = open_as("g1", 2, "inst-C", false, err, sizeof(err));
	ok(s == NULL && strstr(err, "belongs to replica 1 of this lattice group") &&
		   strstr(err, "not to replica 2") && strstr(err, "--pg-reset"),
	   "a database of another replica id is refused: %s", err);
	store_close(s);
	is_str(sql_str("SELECT applied_index || ' ' || instance_id || ' ' || (SELECT count(*) FROM events) "
		       "FROM lattice_state",
		       buf, sizeof(buf)),
	       "3 inst-B 3", "... and untouched");

	/* --pg-reset: wiped and taken over. */
	s = open_as("g2", 1, "inst-C", true, err, sizeof(err));
	ok(s && store_was_reset(s) && store_applied_index(s) == 0, "with wipe_foreign (--pg-reset) it is wiped");
	ok(s && strstr(store_claim_note(s), "--pg-reset") && strstr(store_claim_note(s), "group g1"),
	   "the note says whose it was: %s", s ? store_claim_note(s) : "");
	store_close(s);
	is_str(sql_str("SELECT applied_index || ' ' || instance_id || ' ' || group_id || ' ' || replica_id || ' ' || "
		       "(SELECT count(*) FROM events) FROM lattice_state",
		       buf, sizeof(buf)),
	       "0 inst-C g2 1 0", "now recorded for the new owner, history gone");
	s = open_as("g2", 1, "inst-C", true, err, sizeof(err));
	ok(s && !store_was_reset(s), "--pg-reset does not wipe the owner's own database");
	store_close(s);

	/* A row claimed before groups were recorded (schema 003): adopted by its
	 * instance id, refused to any other. */
	ok(sql_ok("UPDATE lattice_state SET group_id = NULL, replica_id = NULL, applied_index = 5"),
	   "a claim from before 004: instance id alone");
	s = open_as("g3", 4, "inst-D", false, err, sizeof(err));
	ok(s == NULL && strstr(err, "instance id inst-C (before latticed recorded lattice groups"),
	   "another instance id is refused: %s", err);
	store_close(s);
	s = open_as("g3", 4, "inst-C", false, err, sizeof(err));
	ok(s && !store_was_reset(s) && store_applied_index(s) == 5, "its own instance id keeps it");
	store_close(s);
	is_str(sql_str("SELECT group_id || ' ' || replica_id FROM lattice_state", buf, sizeof(buf)), "g3 4",
	       "and records its group and replica id");
}

int main(void)
{
	conninfo = getenv("LATTICE_TEST_PG");
	schema_dir = getenv("LATTICE_SCHEMA_DIR");
	if (!conninfo || !schema_dir) {
		printf("1..0 # SKIP LATTICE_TEST_PG and LATTICE_SCHEMA_DIR must be set\n");
		return 0;
	}
	if (PQstatus(admin()) != CONNECTION_OK) {
		printf("Bail out! cannot connect: %s\n", PQerrorMessage(adm));
		return 1;
	}
	tap_plan(257);
	mk_objects();
	test_migrations();
	test_constraints();

	char err[512];
	struct store *s = open_store("inst-A", err, sizeof(err));
	if (!s) {
		printf("Bail out! store_open: %s\n", err);
		return 1;
	}
	ok(store_start(s, on_projected, NULL) == 0, "start writer");
	test_projection(s);
	test_sql_error(s);
	uint64_t idx = 7, seq = 4;
	test_stop_flush(s, &idx, &seq);
	test_reopen(&idx, &seq, &s);
	test_backend_kill(s, &idx, &seq);
	test_pg_restart(s, &idx, &seq);
	test_pg_crash(s, &idx, &seq);
	test_lock(s, &idx, &seq);
	test_rebuild(s, &idx, &seq);
	test_coalesce(&s, &idx, &seq);
	test_coalesce_reset(&s, &idx, &seq);
	is_int(store_stop(s, 10000), 0, "stop");
	store_close(s);
	test_spool_codec();
	test_spool(&idx, &seq);
	test_spool_full(&idx, &seq);
	test_spool_corrupt(&idx, &seq);
	test_disowned(&idx, &seq);
	test_owner();
	PQfinish(adm);
	return tap_done();
}
