/* run — see run.h. */
#include "run.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "cluster.h"
#include "collect.h"
#include "hist.h"
#include "httpc.h"
#include "log.h"
#include "nemesis.h"
#include "observe.h"
#include "procstat.h"
#include "report.h"
#include "simrt.h"
#include "work.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

struct run {
	const struct run_options *o;
	volatile sig_atomic_t *stop;
	struct simrt_scenario *sc;
	json_t *scenario_json;
	struct cluster_cfg ccfg;
	struct work_cfg wcfg;
	struct nemesis_plan plan;
	struct hist *h;
	struct cluster *cl;
	struct simrt *rt;
	struct observe *obs;
	struct work *wk;
	struct nemesis_run *nr;
	struct procstat *ps;
	const char *urls[CLUSTER_MAX_REPLICAS];
};

/* ---- nemesis_env over the cluster and the observer ----------------------------- */

static int e_leader(void *ctx)
{
	return observe_leader(((struct run *)ctx)->obs);
}
static int e_kill(void *ctx, int i, char *err, size_t l)
{
	return cluster_replica_kill(((struct run *)ctx)->cl, i, err, l);
}
static int e_start(void *ctx, int i, char *err, size_t l)
{
	return cluster_replica_start(((struct run *)ctx)->cl, i, err, l);
}
static int e_pg_stop(void *ctx, int i, int kill9, char *err, size_t l)
{
	return cluster_pg_stop(((struct run *)ctx)->cl, i, kill9, err, l);
}
static int e_pg_start(void *ctx, int i, char *err, size_t l)
{
	return cluster_pg_start(((struct run *)ctx)->cl, i, err, l);
}
static int e_nats_stop(void *ctx, char *err, size_t l)
{
	return cluster_nats_stop(((struct run *)ctx)->cl, err, l);
}
static int e_nats_start(void *ctx, char *err, size_t l)
{
	return cluster_nats_start(((struct run *)ctx)->cl, err, l);
}
static int e_cut(void *ctx, int i, int j, char *err, size_t l)
{
	return cluster_cut(((struct run *)ctx)->cl, i, j, err, l);
}
static int e_heal(void *ctx, char *err, size_t l)
{
	return cluster_heal(((struct run *)ctx)->cl, err, l);
}
static size_t e_pids(void *ctx, pid_t *out, size_t n)
{
	return cluster_pids(((struct run *)ctx)->cl, out, n);
}
static void e_watch(void *ctx, const char *const *ids, size_t n)
{
	if (observe_watch_nodes(((struct run *)ctx)->obs, ids, (int)n) < 0)
		log_warn("observer: out of memory: %zu nodes not followed", n);
}

/* ---- helpers --------------------------------------------------------------------- */

static void run_line(struct run *r, const char *f)
{
	hist_writen(r->h, json_pack("{s:s, s:s}", "type", "run", "f", f));
}

/* Sleeps ms in slices, returns -1 when a signal asked to stop. */
static int nap(struct run *r, int64_t ms)
{
	for (int64_t t = 0; t < ms; t += 100) {
		if (*r->stop)
			return -1;
		usleep((useconds_t)((ms - t < 100 ? ms - t : 100) * 1000));
	}
	return *r->stop ? -1 : 0;
}

static int mkdir_new(const char *dir, char *err, size_t errlen)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "%.1000s: %s", dir, strerror(errno));
		return -1;
	}
	char p[4096];
	snprintf(p, sizeof(p), "%s/history.jsonl", dir);
	if (access(p, F_OK) == 0) {
		snprintf(err, errlen, "%.1000s holds a run already (history.jsonl): give a new --out", dir);
		return -1;
	}
	return 0;
}

static int write_json(const char *dir, const char *name, json_t *j, char *err, size_t errlen)
{
	char p[4096], tmp[4200];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", p);
	if (json_dump_file(j, tmp, JSON_INDENT(1) | JSON_PRESERVE_ORDER) < 0 || rename(tmp, p) < 0) {
		snprintf(err, errlen, "cannot write %.1000s", p);
		return -1;
	}
	return 0;
}

/* GET path on url: the JSON answer of a 200 within timeout_ms, or NULL. */
static json_t *get_json(const char *url, const char *path, int timeout_ms)
{
	struct httpc_resp resp = {0};
	char err[256];
	json_t *j = NULL;
	if (httpc_do(url, "GET", path, NULL, timeout_ms, &resp, err, sizeof(err)) == 200)
		j = json_loads(resp.body, 0, NULL);
	httpc_resp_free(&resp);
	return j;
}

/* applied_index and projected_index of a replica, from its GET /v1/cluster
 * (projected_index only when rep has none: the collector's is the index its
 * database was read at). */
static void replica_indexes(const char *url, json_t *rep)
{
	json_t *j = get_json(url, "/v1/cluster", 3000);
	json_t *a = json_object_get(j, "applied_index"), *p = json_object_get(j, "projected_index");
	if (json_is_integer(a))
		json_object_set(rep, "applied_index", a);
	if (json_is_integer(p) && !json_is_integer(json_object_get(rep, "projected_index")))
		json_object_set(rep, "projected_index", p);
	json_decref(j);
}

struct coll {
	struct collect_snap *snap; /* NULL: collect_begin failed (err says why) */
	int replica;
	json_t *rep;
	char err[512];
	pthread_t th;
};

static void *coll_main(void *arg)
{
	struct coll *c = arg;
	if (!c->snap || collect_finish(c->snap, &c->rep, c->err, sizeof(c->err)) < 0)
		c->rep = NULL;
	c->snap = NULL;
	return NULL;
}

/* The projected index of every replica that answers, if they are all equal
 * (else -1). */
static long long same_index(struct run *r)
{
	long long idx = -1;
	for (int i = 1; i <= r->ccfg.replicas; i++) {
		if (!cluster_replica_alive(r->cl, i))
			continue;
		json_t *rep = json_object();
		replica_indexes(r->urls[i - 1], rep);
		json_t *p = json_object_get(rep, "projected_index"), *a = json_object_get(rep, "applied_index");
		long long v = json_is_integer(p) && json_equal(p, a) ? (long long)json_integer_value(p) : -2;
		json_decref(rep);
		if (v < 0 || (idx >= 0 && v != idx))
			return -1;
		idx = v;
	}
	return idx;
}

/* Takes every replica database's snapshot, one after the other (quick: a
 * connection and one query each), while the agents stand still. */
static void collect_snaps(struct run *r, struct coll *c)
{
	for (int i = 0; i < r->ccfg.replicas; i++) {
		c[i] = (struct coll){.replica = i + 1};
		if (collect_begin(cluster_pg_conninfo(r->cl, i + 1), i + 1, &c[i].snap, c[i].err, sizeof(c[i].err)) < 0)
			c[i].snap = NULL;
	}
}

/* Reads every snapshot collect_snaps took, in parallel. */
static json_t *collect_dbs(struct run *r, struct coll *c)
{
	int n = r->ccfg.replicas;
	for (int i = 0; i < n; i++)
		if (pthread_create(&c[i].th, NULL, coll_main, &c[i]) != 0)
			coll_main(&c[i]), c[i].th = 0;
	json_t *reps = json_array();
	for (int i = 0; i < n; i++) {
		if (c[i].th)
			pthread_join(c[i].th, NULL);
		json_t *rep = c[i].rep;
		if (!rep) {
			log_error("final state: replica %d's database: %s", i + 1, c[i].err);
			rep = json_pack("{s:i, s:b, s:s}", "replica", i + 1, "alive", 0, "error", c[i].err);
		} else {
			json_object_set_new(rep, "alive", json_boolean(cluster_replica_alive(r->cl, i + 1)));
			replica_indexes(r->urls[i], rep);
		}
		json_array_append_new(reps, rep);
	}
	return reps;
}

/* Whether the live replicas' databases were read at one index. */
static int dbs_at_one_index(json_t *reps)
{
	json_t *first = NULL, *rep;
	size_t i;
	json_array_foreach(reps, i, rep)
	{
		if (!json_is_true(json_object_get(rep, "alive")))
			continue;
		json_t *p = json_object_get(rep, "projected_index");
		if (!json_is_integer(p))
			return 0;
		if (first && !json_equal(first, p))
			return 0;
		first = p;
	}
	return 1;
}

/* final.json: every replica's database (also of a replica whose latticed is
 * down: its database is still there) and what every agent runs. The log never
 * stands still (agents' heartbeats and snapshots become entries), so the
 * agents are held still for a moment (well under a heartbeat timeout) while
 * the replicas finish projecting one index and a snapshot of each database
 * is taken; the snapshots are read after; tried again a few times until they
 * were taken at one index. */
static int collect(struct run *r, char *err, size_t errlen)
{
	json_t *reps = NULL, *agents = NULL;
	int64_t hold = r->ccfg.heartbeat_timeout_ms / 2;
	for (int attempt = 1; attempt <= 10; attempt++) {
		json_decref(reps);
		json_decref(agents);
		simrt_pause(r->rt);
		int64_t t0 = hist_now(r->h);
		long long prev = -1, idx;
		while ((idx = same_index(r)) < 0 || idx != prev) {
			prev = idx;
			if (hist_now(r->h) - t0 > hold)
				break;
			usleep(100000);
		}
		agents = simrt_view(r->rt);
		struct coll c[CLUSTER_MAX_REPLICAS];
		collect_snaps(r, c);
		/* The snapshots are taken: the agents go on (heartbeats must not stop
		 * for longer than a moment, or their nodes turn unhealthy) while the
		 * databases are read. */
		simrt_resume(r->rt);
		reps = collect_dbs(r, c);
		if (dbs_at_one_index(reps))
			break;
		log_info("final state: the replicas' databases were read at different indexes; again in 3 s (%d/10)",
			 attempt);
		if (attempt < 10 && nap(r, 3000) < 0)
			break;
	}
	json_t *dead = json_array();
	const char *k;
	json_t *v;
	json_object_foreach(agents, k, v) if (!json_is_true(json_object_get(v, "alive")))
		json_array_append_new(dead, json_string(k));
	json_t *final = NULL;
	if (collect_final(reps, agents, dead, hist_now(r->h), &final, err, errlen) < 0)
		return -1;
	int rc = write_json(r->o->out, "final.json", final, err, errlen);
	json_decref(final);
	return rc;
}

/* GET path on the leader: the items of a list answer, or NULL. */
static json_t *leader_list(struct run *r, const char *path)
{
	int l = observe_leader(r->obs);
	json_t *j = l ? get_json(r->urls[l - 1], path, 5000) : NULL;
	json_t *items = json_incref(json_object_get(j, "items"));
	json_decref(j);
	return json_is_array(items) ? items : (json_decref(items), NULL);
}

/* Quiet: no failover in progress, no command pending, and every published
 * one waits for a node that is dead (agents' view). Why not, into why. */
static int quiet(struct run *r, char *why, size_t wlen)
{
	json_t *fo = leader_list(r, "/v1/failovers?status=in_progress&limit=1");
	json_t *pend = leader_list(r, "/v1/commands?status=pending&limit=1");
	json_t *pub = leader_list(r, "/v1/commands?status=published&limit=1000");
	int q = 0;
	if (!fo || !pend || !pub) {
		snprintf(why, wlen, "no leader answers");
	} else if (json_array_size(fo)) {
		snprintf(why, wlen, "a failover is in progress");
	} else if (json_array_size(pend)) {
		snprintf(why, wlen, "commands are pending");
	} else {
		json_t *view = simrt_view(r->rt), *c;
		size_t i, live = 0;
		json_array_foreach(pub, i, c)
		{
			json_t *a = json_object_get(view, json_string_value(json_object_get(c, "target_node")));
			live += a && json_is_true(json_object_get(a, "alive"));
		}
		json_decref(view);
		if (live)
			snprintf(why, wlen, "%zu published commands to live nodes", live);
		q = live == 0;
	}
	json_decref(fo);
	json_decref(pend);
	json_decref(pub);
	return q;
}

static int wait_bound(struct run *r, int64_t timeout_ms)
{
	int64_t t0 = hist_now(r->h);
	struct simrt_stats st;
	for (;;) {
		simrt_get_stats(r->rt, &st);
		if (st.bound == st.agents)
			return 0;
		if (hist_now(r->h) - t0 > timeout_ms) {
			log_error("only %llu of %llu agents are bound to their consumers after %lld s",
				  (unsigned long long)st.bound, (unsigned long long)st.agents, (long long)timeout_ms / 1000);
			return -1;
		}
		if (nap(r, 250) < 0)
			return -1;
	}
}

static void teardown(struct run *r)
{
	if (r->nr)
		nemesis_stop(r->nr, 1);
	r->nr = NULL;
	work_free(r->wk); /* stops it first */
	r->wk = NULL;
	if (r->obs)
		observe_stop(r->obs);
	r->obs = NULL;
	procstat_stop(r->ps);
	r->ps = NULL;
	if (r->rt)
		simrt_stop(r->rt);
	r->rt = NULL;
	if (r->cl)
		cluster_down(r->cl);
	r->cl = NULL;
}

static int load_scenario(struct run *r, char *err, size_t errlen)
{
	const struct run_options *o = r->o;
	char e[1024];
	if (simrt_scenario_load(&r->sc, o->scenario, e, sizeof(e)) < 0) {
		snprintf(err, errlen, "scenario %s", e);
		return -1;
	}
	json_error_t je;
	if (!(r->scenario_json = json_load_file(o->scenario, JSON_REJECT_DUPLICATES, &je))) {
		snprintf(err, errlen, "scenario %s: %s", o->scenario, je.text);
		return -1;
	}
	if (cluster_parse(r->sc->cluster, &r->ccfg, e, sizeof(e)) < 0 ||
	    work_parse(r->sc->workload, &r->wcfg, e, sizeof(e)) < 0 ||
	    nemesis_parse(r->sc->nemeses, r->ccfg.replicas, r->ccfg.netns, r->sc->duration_s * 1000, &r->plan, e,
			  sizeof(e)) < 0) {
		snprintf(err, errlen, "scenario %s: %s", o->scenario, e);
		return -1;
	}
	/* policy selectors pick among the scenario's regions */
	for (size_t g = 0; g < r->sc->n_groups && r->wcfg.n_regions < WORK_MAX_REGIONS; g++) {
		int seen = 0;
		for (int k = 0; k < r->wcfg.n_regions; k++)
			seen |= !strcmp(r->wcfg.regions[k], r->sc->groups[g].region);
		if (!seen && strlen(r->sc->groups[g].region) < sizeof(r->wcfg.regions[0]))
			snprintf(r->wcfg.regions[r->wcfg.n_regions++], sizeof(r->wcfg.regions[0]), "%s",
				 r->sc->groups[g].region);
	}
	return 0;
}

int run_main(const struct run_options *o, volatile sig_atomic_t *stop)
{
	struct run run = {.o = o, .stop = stop}, *r = &run;
	char err[2048];
	int status = 1;
	if (load_scenario(r, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: %s\n", err);
		status = 2;
		goto out;
	}
	char logs[4096], agents_dir[4096], hpath[4096];
	snprintf(logs, sizeof(logs), "%s/logs", o->out);
	snprintf(agents_dir, sizeof(agents_dir), "%s/agents", o->out);
	snprintf(hpath, sizeof(hpath), "%s/history.jsonl", o->out);
	if (mkdir_new(o->out, err, sizeof(err)) < 0 || mkdir_new(logs, err, sizeof(err)) < 0 ||
	    write_json(o->out, "scenario.json", r->scenario_json, err, sizeof(err)) < 0 ||
	    !(r->h = hist_open(hpath, err, sizeof(err)))) {
		fprintf(stderr, "lattice-sim run: %s\n", err);
		status = 2;
		goto out;
	}
	hist_writen(r->h, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:i, s:s}", "type", "run", "f", "start", "scenario",
				    o->scenario, "seed", (json_int_t)o->seed, "agents", (json_int_t)r->sc->n_agents,
				    "duration_ms", (json_int_t)r->sc->duration_s * 1000, "replicas", r->ccfg.replicas,
				    "version", PACKAGE_VERSION));
	log_info("run: %zu agents, %d replicas, %lld s of workload and %zu faults, then %lld s to settle; out %s",
		 r->sc->n_agents, r->ccfg.replicas, r->sc->duration_s, r->plan.n, r->sc->settle_s, o->out);

	struct cluster_env cenv = {.dir = o->out,
				   .latticed = o->latticed,
				   .schema_dir = o->schema_dir,
				   .pg_bindir = o->pg_bindir,
				   .nats_server = o->nats_server,
				   .lattice = r->sc->lattice,
				   .heartbeat_ms = (int)r->sc->heartbeat_ms};
	if (cluster_up(&r->cl, &r->ccfg, &cenv, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: the lattice did not come up: %s\n", err);
		goto out;
	}
	for (int i = 1; i <= r->ccfg.replicas; i++) {
		r->urls[i - 1] = cluster_api_url(r->cl, i);
		log_info("run: replica %d at %s", i, r->urls[i - 1]);
	}
	run_line(r, "lattice_up");
	if (!(r->ps = procstat_start(r->h, 5000, e_pids, r)))
		log_warn("run: the resource sampler did not start (no resources lines)");
	struct simrt_options so = {.nats = cluster_nats_url(r->cl),
				   .state_dir = agents_dir,
				   .agent_version = "lattice-sim " PACKAGE_VERSION,
				   .threads = o->threads > 0 ? o->threads : 2,
				   .hist = r->h};
	if (simrt_start(&r->rt, r->sc, &so, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: agents: %s\n", err);
		goto out;
	}
	if (observe_start(&r->obs, r->urls, r->ccfg.replicas, r->h, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: observer: %s\n", err);
		goto out;
	}
	if (wait_bound(r, 180000) < 0)
		goto out;
	run_line(r, "agents_up");
	log_info("run: every agent is bound; the workload and the faults start");
	if (work_start(&r->wk, &r->wcfg, r->urls, r->ccfg.replicas, r->h, o->seed, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: workload: %s\n", err);
		goto out;
	}
	struct nemesis_env env = {.ctx = r,
				  .replicas = r->ccfg.replicas,
				  .leader = e_leader,
				  .replica_kill = e_kill,
				  .replica_start = e_start,
				  .pg_stop = e_pg_stop,
				  .pg_start = e_pg_start,
				  .nats_stop = e_nats_stop,
				  .nats_start = e_nats_start,
				  .cut = e_cut,
				  .heal = e_heal,
				  .watch_nodes = e_watch};
	/* The faults' clock starts with the workload: at_s counts from here. */
	struct nemesis_plan shifted = r->plan;
	int64_t base = hist_now(r->h);
	for (size_t i = 0; i < shifted.n; i++)
		shifted.v[i].at_ms += base;
	if (nemesis_start(&r->nr, &shifted, r->sc, r->rt, &env, r->h, o->seed, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: faults: %s\n", err);
		goto out;
	}
	if (nap(r, r->sc->duration_s * 1000) < 0)
		goto out;
	work_free(r->wk);
	r->wk = NULL;
	run_line(r, "workload_end");
	int64_t last_end = 0;
	for (size_t i = 0; i < shifted.n; i++)
		if (shifted.v[i].at_ms + shifted.v[i].for_ms > last_end)
			last_end = shifted.v[i].at_ms + shifted.v[i].for_ms;
	while (!nemesis_done(r->nr) && hist_now(r->h) < last_end + 120000)
		if (nap(r, 200) < 0)
			goto out;
	nemesis_stop(r->nr, 0); /* what still lasts ends now; dead agents stay dead */
	r->nr = NULL;
	run_line(r, "faults_end");
	log_info("run: faults over; settling for %lld s", r->sc->settle_s);
	if (nap(r, r->sc->settle_s * 1000) < 0)
		goto out;
	/* A loaded machine (a sanitizer build, a busy CI) is slower than the
	 * scenario's author guessed: settle up to twice as long again while the
	 * lattice is visibly still at work. */
	char why[128] = "";
	int q = 0;
	for (int64_t extra = 0; !(q = quiet(r, why, sizeof(why))) && extra < 2 * r->sc->settle_s * 1000; extra += 1000) {
		if (extra == 0)
			log_info("run: not settled yet (%s); waiting up to %lld s more", why, 2 * r->sc->settle_s);
		if (nap(r, 1000) < 0)
			goto out;
	}
	if (!q)
		log_warn("run: still not settled (%s); the final state is read now", why);
	hist_writen(r->h, json_pack("{s:s, s:s, s:s}", "type", "run", "f", "settled", "quiet", q ? "yes" : why));
	if (collect(r, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: final state: %s\n", err);
		goto out;
	}
	if (o->keep) {
		log_info("run: --keep: the lattice stays up until SIGINT/SIGTERM (replica 1 at %s)", r->urls[0]);
		while (!*stop)
			usleep(200000);
	}
	teardown(r);
	run_line(r, "end");
	hist_close(r->h);
	r->h = NULL;
	size_t nv = 0;
	if (check_dir(o->out, &nv, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: checker: %s\n", err);
		goto out;
	}
	if (report_dir(o->out, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim run: report: %s\n", err);
		goto out;
	}
	status = nv ? 1 : 0;
	log_info("run: %zu violation%s; report in %s/summary.txt, picture in %s/timeline.svg", nv, nv == 1 ? "" : "s",
		 o->out, o->out);
out:
	if (*stop)
		fprintf(stderr, "lattice-sim run: stopped by a signal; the lattice is torn down, the run dir kept\n");
	teardown(r);
	if (r->h) {
		run_line(r, "end");
		hist_close(r->h);
	}
	nemesis_plan_free(&r->plan);
	cluster_cfg_free(&r->ccfg);
	json_decref(r->scenario_json);
	simrt_scenario_free(r->sc);
	return status;
}
