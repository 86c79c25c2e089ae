/* test_snapshot — a Raft snapshot installed through fsm (fsm_restore) against a
 * real PostgreSQL: the rebuilt projection of a replica that joins by snapshot
 * equals the one a replica that applied the log wrote (every policy version
 * included), and a restore that fails leaves the model and raft's buffer alone.
 *
 * Run by tests/integration/snapshot.sh, which starts the server and exports:
 *   LATTICE_TEST_PG, LATTICE_TEST_PG2  conninfos of two empty databases
 *   LATTICE_SCHEMA_DIR                 the schema/ directory */
#include <raft.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fsm.h"
#include "snapz.h"
#include "model.h"
#include "../unit/model_fixture.h"
#include "proj.h"
#include "store.h"
#include "tap.h"

static const char *schema_dir;

/* A store for replica `replica` of one test group, data dir `instance`. */
static int open_store(struct store **out, const char *conninfo, uint64_t replica, const char *instance, char *err,
		      size_t errlen)
{
	const struct store_config cfg = {
		.conninfo = conninfo,
		.schema_dir = schema_dir,
		.group_id = "test-snapshot",
		.replica_id = replica,
		.instance_id = instance,
	};
	return store_open(out, &cfg, err, errlen);
}

/* ---- raft's heap, watched ------------------------------------------------------
 *
 * raft frees a snapshot's buffer itself when restore fails and leaves it to the
 * fsm when restore succeeds. The heap counts how often the watched buffer is
 * freed, and frees it once only, so a second free shows as a count, not a crash. */

static void *watched;
static int watched_frees;

static void *h_malloc(void *d, size_t n)
{
	(void)d;
	return malloc(n);
}
static void h_free(void *d, void *p)
{
	(void)d;
	if (p != NULL && p == watched) {
		if (watched_frees++ > 0)
			return;
	}
	free(p);
}
static void *h_calloc(void *d, size_t n, size_t size)
{
	(void)d;
	return calloc(n, size);
}
static void *h_realloc(void *d, void *p, size_t n)
{
	(void)d;
	return realloc(p, n);
}
static void *h_aligned_alloc(void *d, size_t align, size_t n)
{
	(void)d;
	return aligned_alloc(align, (n + align - 1) / align * align);
}
static void h_aligned_free(void *d, size_t align, void *p)
{
	(void)d;
	(void)align;
	free(p);
}
static struct raft_heap heap = {NULL, h_malloc, h_free, h_calloc, h_realloc, h_aligned_alloc, h_aligned_free};

/* ---- PostgreSQL ------------------------------------------------------------------ */

static void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static bool wait_projected(struct store *s, uint64_t index)
{
	for (int t = 0; t < 30000 && store_projected(s) < index; t += 10)
		sleep_ms(10);
	return store_projected(s) >= index;
}

/* Every row of a query as text, one line each (malloc'd; an error as its text). */
static char *rows(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *r = PQexec(c, sql);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		fprintf(f, "error: %s", PQresultErrorMessage(r));
	} else {
		for (int i = 0; i < PQntuples(r); i++) {
			for (int k = 0; k < PQnfields(r); k++)
				fprintf(f, "%s%s", k ? " | " : "", PQgetisnull(r, i, k) ? "NULL" : PQgetvalue(r, i, k));
			fputc('\n', f);
		}
	}
	fclose(f);
	PQclear(r);
	PQfinish(c);
	return out;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* ok() that two row dumps are equal, showing the first difference. */
static void same_rows(const char *a, const char *b, const char *name)
{
	size_t i = 0;
	while (a[i] && a[i] == b[i])
		i++;
	if (!ok(a[i] == b[i] && strncmp(a, "error", 5) != 0, "%s (%d rows)", name, count_lines(a))) {
		size_t from = i > 80 ? i - 80 : 0;
		tap_diag("  log:      ...%.200s", a + from);
		tap_diag("  snapshot: ...%.200s", b + from);
	}
}

/* ---- the replica that applies the log ------------------------------------------ */

static struct store *log_store;
static uint64_t log_index;

/* Applies an entry (body as apply_j takes it) at the next index and projects it. */
__attribute__((format(printf, 2, 3))) static void log_apply(struct model *m, const char *f, ...)
{
	char body[4096];
	va_list ap;
	va_start(ap, f);
	vsnprintf(body, sizeof(body), f, ap);
	va_end(ap);
	struct proj_batch *b = proj_batch_new(++log_index);
	int rc = apply_j(m, b, "%s", body);
	if (rc != APPLY_OK)
		tap_diag("entry %llu refused (%d: %s): %s", (unsigned long long)log_index, rc, R.message, body);
	store_submit(log_store, b);
}

static void log_create(struct model *m, const char *id, const char *fields)
{
	struct proj_batch *b = proj_batch_new(++log_index);
	int rc = create_planned(m, b, id, fields);
	if (rc != APPLY_OK)
		tap_diag("create %s refused (%d: %s)", id, rc, R.message);
	store_submit(log_store, b);
}

/* Several policy versions among the other objects. */
static void build_by_log(struct model *m)
{
	log_apply(m, "'op':'node_put','node':{'id':'n1','region':'eu','labels':{'tier':'edge'},'cpu_capacity':4000,"
		     "'memory_mb':8192}");
	log_apply(m, "'op':'node_put','node':{'id':'n2','region':'eu','cpu_capacity':4000,'memory_mb':8192,"
		     "'cpu_used':500}");
	log_apply(m, "'op':'node_put','node':{'id':'n3','region':'us','cpu_capacity':2000,'memory_mb':4096}");
	log_apply(m, "'op':'policy_put','flag':1,'policy':{'policy_id':'pol1','denied_contracts':"
		     "['wasmcloud:messaging'],'max_actor_memory_mb':2048,'selector':{'labels':{'tier':'edge'}}}");
	log_apply(m, "'op':'policy_put','flag':1,'policy':{'policy_id':'pol2','allowed_contracts':"
		     "['wasmcloud:keyvalue'],'selector':{'regions':['us']}}");
	log_apply(m, "'op':'policy_put','policy':{'policy_id':'pol1','denied_contracts':['wasmcloud:httpserver'],"
		     "'network_restrictions':['10.0.0.0/8']}");
	log_create(m, "a1", "'cpu_required':500,'memory_required_mb':512,'replicas':3");
	log_apply(m, "'op':'policy_put','policy':{'policy_id':'pol1','max_actor_memory_mb':4096,"
		     "'selector':{'regions':['eu']}}");
	log_create(m, "a2", "'cpu_required':200,'memory_required_mb':128,'replicas':2,'strategy':'round_robin'");
	log_apply(m, "'op':'policy_put','policy':{'policy_id':'pol2','allowed_contracts':['wasmcloud:keyvalue',"
		     "'wasmcloud:httpserver']}");
	log_apply(m, "'op':'provider_create','provider':{'id':'p1','contract_id':'wasmcloud:keyvalue',"
		     "'image':'ghcr.io/p/kv:1','nodes':['n1']}");
	log_apply(m, "'op':'link_create','link':{'id':'l1','actor_id':'a1','provider_id':'p1',"
		     "'contract_id':'wasmcloud:keyvalue','values':{'bucket':'x'}}");
	log_apply(m, "'op':'policy_put','policy':{'policy_id':'pol1'}");
	log_apply(m, "'op':'node_flags','target':'n3','flag':1");
}

/* What a replica's projection holds, table by table (events aside: a rebuild
 * starts them again, docs/architecture.md). */
static const char *const compared[][2] = {
	{"policy_versions", "SELECT policy_id, version, allowed_contracts, denied_contracts, max_actor_memory_mb, "
			    "network_restrictions, selector, created_at FROM policies ORDER BY policy_id, version"},
	{"GET /v1/policies/{id}/versions", "SELECT policy_id, doc FROM api_policy_versions ORDER BY policy_id, version"},
	{"nodes", "SELECT doc FROM api_nodes ORDER BY id"},
	{"actors", "SELECT doc FROM api_actors ORDER BY id"},
	{"providers", "SELECT doc FROM api_providers ORDER BY id"},
	{"links", "SELECT doc FROM api_links ORDER BY id"},
};
#define N_COMPARED (sizeof(compared) / sizeof(compared[0]))

static void fail_render(struct proj_batch *b, const struct model *m)
{
	(void)m;
	b->failed = 1; /* as an allocation failure midway leaves it */
}

int main(void)
{
	const char *pg_log = getenv("LATTICE_TEST_PG"), *pg_snap = getenv("LATTICE_TEST_PG2");
	schema_dir = getenv("LATTICE_SCHEMA_DIR");
	if (!pg_log || !pg_snap || !schema_dir) {
		printf("1..0 # SKIP LATTICE_TEST_PG, LATTICE_TEST_PG2 and LATTICE_SCHEMA_DIR must be set\n");
		return 0;
	}
	tap_plan(13 + (int)N_COMPARED);
	raft_heap_set(&heap);
	char err[512];
	struct store *snap_store = NULL;
	if (open_store(&log_store, pg_log, 1, "inst-log", err, sizeof(err)) != 0 ||
	    open_store(&snap_store, pg_snap, 2, "inst-snap", err, sizeof(err)) != 0 ||
	    store_start(log_store, NULL, NULL) != 0 || store_start(snap_store, NULL, NULL) != 0) {
		printf("Bail out! store: %s\n", err);
		return 1;
	}

	/* 1. A replica applies the log and projects every entry. */
	struct model lm;
	model_init(&lm);
	build_by_log(&lm);
	struct model_policy *pol1 = hmap_get(&lm.policies, "pol1");
	ok(pol1 && pol1->version == 4 && wait_projected(log_store, log_index),
	   "log replica: %llu entries applied and projected, pol1 at version 4", (unsigned long long)log_index);

	/* 2. Another joins by the first one's snapshot: restored through fsm, its
	 * projection rebuilt from the model. */
	struct model sm;
	model_init(&sm);
	struct fsm f;
	memset(&f, 0, sizeof(f));
	f.model = &sm;
	f.store = snap_store;
	struct raft_fsm rf;
	fsm_init(&rf, &f);
	size_t len;
	struct raft_buffer buf;
	/* Packed, as this build writes snapshots (snapz.h). */
	char *text = model_snapshot_dump(&lm, log_index, &len);
	buf.base = snapz_pack(text, len, &buf.len);
	raft_free(text);
	watched = buf.base;
	watched_frees = 0;
	int rc = rf.restore(&rf, &buf);
	ok(rc == 0 && watched_frees == 1 && sm.actors.n == lm.actors.n,
	   "restore of a packed snapshot succeeds and takes raft's buffer (freed once, by fsm) (rc %d, %d frees)", rc,
	   watched_frees);
	fsm_flush(&f);
	ok(wait_projected(snap_store, log_index), "snapshot replica: its PostgreSQL rebuilt up to index %llu",
	   (unsigned long long)log_index);
	for (size_t i = 0; i < N_COMPARED; i++) {
		char *a = rows(pg_log, compared[i][1]), *b = rows(pg_snap, compared[i][1]);
		char name[160];
		snprintf(name, sizeof(name), "%s: the snapshot replica's rows are the log replica's", compared[i][0]);
		same_rows(a, b, name);
		free(a);
		free(b);
	}
	char *pv = rows(pg_snap, "SELECT count(*) FROM policies WHERE policy_id = 'pol1'");
	is_str(pv, "4\n", "snapshot replica: pol1 has its 4 versions");
	free(pv);

	/* 3. A restore that fails after the model is decoded — here, rendering the
	 * rebuilt projection runs out of memory — changes nothing and leaves the
	 * buffer to raft, which frees it. The snapshot is text, as a build before
	 * snapz wrote it: read as it is. */
	char *before = dump(&sm);
	log_apply(&lm, "'op':'policy_put','policy':{'policy_id':'pol2','max_actor_memory_mb':64}");
	f.render_model = fail_render;
	buf.base = model_snapshot_dump(&lm, log_index + 100, &len);
	buf.len = len;
	watched = buf.base;
	watched_frees = 0;
	rc = rf.restore(&rf, &buf);
	ok(rc == RAFT_NOMEM, "restore whose projection cannot be rendered fails with RAFT_NOMEM (rc %d)", rc);
	is_int(watched_frees, 0, "the failed restore did not free raft's buffer");
	same_state(before, &sm, "the failed restore left the model as it was");
	ok(f.restores == 1, "restores counts the one that succeeded (%llu)", (unsigned long long)f.restores);
	raft_free(buf.base); /* what raft does after a failed restore */
	is_int(watched_frees, 1, "raft's own free is the buffer's only one");

	/* 4. A snapshot this build cannot read changes nothing either. */
	f.render_model = NULL;
	const char *newer = "{\"v\":99,\"event_seq\":0}";
	buf.base = raft_malloc(strlen(newer));
	memcpy(buf.base, newer, strlen(newer));
	buf.len = strlen(newer);
	watched = buf.base;
	watched_frees = 0;
	rc = rf.restore(&rf, &buf);
	ok(rc == RAFT_MALFORMED && watched_frees == 0, "a newer snapshot format is refused, the buffer left to raft (rc %d)",
	   rc);
	same_state(before, &sm, "the refused restore left the model as it was");
	raft_free(buf.base);
	/* ... nor does a damaged frame. */
	text = model_snapshot_dump(&lm, log_index + 200, &len);
	buf.base = snapz_pack(text, len, &buf.len);
	raft_free(text);
	((char *)buf.base)[buf.len / 2] ^= 0x5a;
	watched = buf.base;
	watched_frees = 0;
	rc = rf.restore(&rf, &buf);
	ok(rc == RAFT_MALFORMED && watched_frees == 0,
	   "a damaged packed snapshot is refused, the buffer left to raft (rc %d)", rc);
	same_state(before, &sm, "... and the model is as it was");
	raft_free(buf.base);
	free(before);

	store_stop(log_store, 10000);
	store_stop(snap_store, 10000);
	store_close(log_store);
	store_close(snap_store);
	model_release(&lm);
	model_release(&sm);
	raft_heap_set_default();
	return tap_done();
}
