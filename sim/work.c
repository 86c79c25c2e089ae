/* work — see work.h. */
#define _GNU_SOURCE
#include "work.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"

static const char *const f_names[WORK_F_N] = {"create", "scale", "migrate", "delete", "policy", "read"};
static const char *const outcome_names[WORK_OUTCOMES] = {"ok", "fail", "info"};

const char *work_f_name(enum work_f f)
{
	return (unsigned)f < WORK_F_N ? f_names[f] : "?";
}

const char *work_outcome_name(enum work_outcome o)
{
	return (unsigned)o < WORK_OUTCOMES ? outcome_names[o] : "?";
}

__attribute__((format(printf, 3, 4))) static int werr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- the scenario's workload object ------------------------------------------------- */

static int get_int(json_t *o, const char *key, const char *where, long long lo, long long hi, long long *v, char *err,
		   size_t errlen)
{
	json_t *j = json_object_get(o, key);
	if (!j)
		return 0;
	if (!json_is_integer(j) || json_integer_value(j) < lo || json_integer_value(j) > hi)
		return werr(err, errlen, "%s%s: want an integer %lld..%lld", where, key, lo, hi);
	*v = json_integer_value(j);
	return 0;
}

int work_parse(json_t *workload, struct work_cfg *cfg, char *err, size_t errlen)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->clients = 4;
	cfg->ops_per_s = 20;
	cfg->actors = 40;
	cfg->policies = 2;
	cfg->cpu_required = 100;
	cfg->memory_required_mb = 64;
	cfg->max_replicas = 3;
	static const int mix[WORK_F_N] = {2, 3, 1, 1, 1, 4};
	memcpy(cfg->mix, mix, sizeof(mix));
	cfg->timeout_ms = 10000;
	snprintf(cfg->module, sizeof(cfg->module), "registry.local/chaos:1");
	if (!workload)
		return 0;
	if (!json_is_object(workload))
		return werr(err, errlen, "workload: want an object");
	static const char *const keys[] = {"clients", "ops_per_s", "actors", "policies", "cpu_required",
					   "memory_required_mb", "max_replicas", "mix", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(workload, k, v) {
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], k) != 0)
			i++;
		if (!keys[i])
			return werr(err, errlen,
				    "workload.%s: unknown key (clients, ops_per_s, actors, policies, cpu_required, "
				    "memory_required_mb, max_replicas, mix)",
				    k);
	}
	long long clients = cfg->clients, actors = cfg->actors, policies = cfg->policies, cpu = cfg->cpu_required,
		  mem = cfg->memory_required_mb, maxr = cfg->max_replicas;
	if (get_int(workload, "clients", "workload.", 0, WORK_MAX_CLIENTS, &clients, err, errlen) < 0 ||
	    get_int(workload, "actors", "workload.", 1, 10000, &actors, err, errlen) < 0 ||
	    get_int(workload, "policies", "workload.", 0, 1000, &policies, err, errlen) < 0 ||
	    get_int(workload, "cpu_required", "workload.", 0, 1000000, &cpu, err, errlen) < 0 ||
	    get_int(workload, "memory_required_mb", "workload.", 0, 1048576, &mem, err, errlen) < 0 ||
	    get_int(workload, "max_replicas", "workload.", 1, 100, &maxr, err, errlen) < 0)
		return -1;
	json_t *ops = json_object_get(workload, "ops_per_s");
	if (ops) {
		if (!json_is_number(ops) || !(json_number_value(ops) > 0) || json_number_value(ops) > 10000)
			return werr(err, errlen, "workload.ops_per_s: want a number above 0, at most 10000");
		cfg->ops_per_s = json_number_value(ops);
	}
	json_t *m = json_object_get(workload, "mix");
	if (m) {
		if (!json_is_object(m))
			return werr(err, errlen, "workload.mix: want an object of weights");
		json_object_foreach(m, k, v) {
			int f = 0;
			while (f < WORK_F_N && strcmp(f_names[f], k) != 0)
				f++;
			if (f == WORK_F_N)
				return werr(err, errlen,
					    "workload.mix.%s: unknown operation (create, scale, migrate, delete, policy, "
					    "read)",
					    k);
		}
		/* The weights given replace the defaults; those not given are 0. */
		for (int f = 0; f < WORK_F_N; f++) {
			long long wgt = 0;
			if (get_int(m, f_names[f], "workload.mix.", 0, 1000, &wgt, err, errlen) < 0)
				return -1;
			cfg->mix[f] = (int)wgt;
		}
	}
	cfg->clients = (int)clients;
	cfg->actors = (int)actors;
	cfg->policies = (int)policies;
	cfg->cpu_required = cpu;
	cfg->memory_required_mb = mem;
	cfg->max_replicas = (int)maxr;
	int total = 0;
	for (int f = 0; f < WORK_F_N; f++)
		total += f == WORK_POLICY && cfg->policies == 0 ? 0 : cfg->mix[f];
	if (total == 0 && cfg->clients > 0)
		return werr(err, errlen, "workload.mix: every weight is 0 (with policies 0, the policy weight counts as 0)");
	return 0;
}

/* ---- classifying answers --------------------------------------------------------------- */

enum work_outcome work_classify(enum work_f f, int status, const char *code)
{
	if (status <= 0)
		return WORK_INFO; /* no answer: it may or may not have been acted on */
	if (status >= 200 && status < 300)
		return WORK_OK;
	if (f == WORK_READ) /* 404 is a value (no such actor); nothing else changes state */
		return status == 404 ? WORK_OK : WORK_FAIL;
	if (status >= 400 && status < 500)
		return WORK_FAIL; /* refused before (or when) it was applied: no effect */
	/* 503s answered before the write was proposed anywhere (controller/leader.c:
	 * run_parked, leader_flush, loop_submit; a follower re-parks a leader's
	 * not_leader / no_leader instead of relaying it). Every other 5xx
	 * (unavailable, commit_timeout, projection_lagging, database_unavailable,
	 * disk_full...) may come after the entry reached the log. */
	if (status == 503 && code &&
	    (strcmp(code, "no_leader") == 0 || strcmp(code, "not_leader") == 0 ||
	     strcmp(code, "shutting_down") == 0 || strcmp(code, "not_ready") == 0))
		return WORK_FAIL;
	return WORK_INFO;
}

/* ---- the clients ------------------------------------------------------------------------ */

struct client {
	struct work *w;
	int id;      /* 1.. */
	uint64_t rng;
	pthread_t th;
};

struct work {
	struct work_cfg cfg;
	char **urls;
	int n;
	struct hist *h;
	int mix[WORK_F_N];
	int mix_total;
	atomic_int *policy_known; /* per policy: 1 when it is known to exist (PUT), else POST */
	atomic_uint_fast64_t next_op;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct work_stats stats;
	struct client *clients;
	int started;
	int64_t t0_ms;
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static int rnd(struct client *c, int n)
{
	return n <= 1 ? 0 : (int)(splitmix(&c->rng) % (uint64_t)n);
}

/* Sleeps until monotonic ms `at`, or until work_stop. false when stopping. */
static bool sleep_until(struct work *w, int64_t at)
{
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		int64_t now = mono_ms();
		if (now >= at)
			break;
		struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000};
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	bool go = !w->stop;
	pthread_mutex_unlock(&w->mu);
	return go;
}

static json_t *member_or_null(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return v ? json_incref(v) : json_null();
}

/* [[instance, node_id, state], ...] of an actor object. */
static json_t *placements_of(json_t *actor)
{
	json_t *out = json_array(), *p;
	size_t i;
	json_array_foreach(json_object_get(actor, "placements"), i, p)
		json_array_append_new(out, json_pack("[ooo]", member_or_null(p, "instance"), member_or_null(p, "node_id"),
						     member_or_null(p, "state")));
	return out;
}

/* The value an `ok` records (NULL: none). */
static json_t *ok_value(enum work_f f, int status, json_t *body)
{
	switch (f) {
	case WORK_CREATE:
	case WORK_SCALE:
		return json_pack("{soso}", "replicas", member_or_null(body, "replicas"), "generation",
				 member_or_null(body, "generation"));
	case WORK_MIGRATE: /* the 202 body is the actor as it is now */
		return json_pack("{sososo}", "replicas", member_or_null(body, "replicas"), "generation",
				 member_or_null(body, "generation"), "placements", placements_of(body));
	case WORK_READ:
		if (status == 404)
			return json_null();
		return json_pack("{sososo}", "replicas", member_or_null(body, "replicas"), "generation",
				 member_or_null(body, "generation"), "placements", placements_of(body));
	case WORK_POLICY:
		return json_pack("{so}", "version", member_or_null(body, "version"));
	default:
		return NULL;
	}
}

static void one_op(struct client *c)
{
	struct work *w = c->w;
	const struct work_cfg *cfg = &w->cfg;
	int pick = rnd(c, w->mix_total), f = 0;
	while (f < WORK_F_N - 1 && pick >= w->mix[f])
		pick -= w->mix[f++];
	int replica = rnd(c, w->n) + 1;
	char key[32], path[96], *body = NULL;
	const char *method = "GET";
	json_t *value = NULL, *req = NULL; /* at invoke; the request body */
	int policy = -1;
	bool post = false;
	if (f == WORK_POLICY) {
		policy = rnd(c, cfg->policies);
		snprintf(key, sizeof(key), "p-%d", policy);
	} else {
		snprintf(key, sizeof(key), "w-%04d", rnd(c, cfg->actors));
	}
	switch ((enum work_f)f) {
	case WORK_CREATE: {
		int r = 1 + rnd(c, cfg->max_replicas);
		method = "POST";
		snprintf(path, sizeof(path), "/v1/actors");
		req = json_pack("{sssssIsIsi}", "id", key, "module", cfg->module, "cpu_required",
				(json_int_t)cfg->cpu_required, "memory_required_mb", (json_int_t)cfg->memory_required_mb,
				"replicas", r);
		value = json_pack("{si}", "replicas", r);
		break;
	}
	case WORK_SCALE: {
		int r = 1 + rnd(c, cfg->max_replicas);
		method = "PATCH";
		snprintf(path, sizeof(path), "/v1/actors/%s", key);
		req = json_pack("{si}", "replicas", r);
		value = json_pack("{si}", "replicas", r);
		break;
	}
	case WORK_MIGRATE:
		method = "POST";
		snprintf(path, sizeof(path), "/v1/actors/%s/migrate", key);
		break;
	case WORK_DELETE:
		method = "DELETE";
		snprintf(path, sizeof(path), "/v1/actors/%s", key);
		break;
	case WORK_POLICY: {
		/* A cap above what the actors ask (so it never blocks them) that
		 * changes from version to version, and a region selector that moves:
		 * each version reaches other nodes, whose agents get commands. */
		int64_t base = cfg->memory_required_mb > 64 ? cfg->memory_required_mb : 64;
		int64_t mem = base * (2 + rnd(c, 7));
		json_t *regions = json_array();
		if (cfg->n_regions > 0) {
			for (int i = 0; i < cfg->n_regions; i++)
				if (rnd(c, 2))
					json_array_append_new(regions, json_string(cfg->regions[i]));
		} else if (rnd(c, 2)) {
			json_array_append_new(regions, json_string("default"));
		}
		post = atomic_load(&w->policy_known[policy]) == 0;
		method = post ? "POST" : "PUT";
		if (post)
			snprintf(path, sizeof(path), "/v1/policies");
		else
			snprintf(path, sizeof(path), "/v1/policies/%s", key);
		req = json_pack("{sIs{sO}}", "max_actor_memory_mb", (json_int_t)mem, "selector", "regions", regions);
		if (req && post)
			json_object_set_new(req, "policy_id", json_string(key));
		value = json_pack("{snsIsOss}", "version_expected", "max_actor_memory_mb", (json_int_t)mem, "regions",
				  regions, "method", method);
		json_decref(regions);
		break;
	}
	case WORK_READ:
		snprintf(path, sizeof(path), "/v1/actors/%s?consistent=true", key);
		break;
	default:
		break;
	}
	if (req)
		body = json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(req);

	uint64_t op = atomic_fetch_add(&w->next_op, 1);
	json_t *inv = json_pack("{sssIsisssssi}", "type", "invoke", "op", (json_int_t)op, "client", c->id, "f",
				f_names[f], "key", key, "replica", replica);
	if (inv && value)
		json_object_set(inv, "value", value);
	hist_writen(w->h, inv);
	json_decref(value);
	pthread_mutex_lock(&w->mu);
	w->stats.invoked++;
	pthread_mutex_unlock(&w->mu);

	struct httpc_resp r;
	char err[256];
	int status = httpc_do(w->urls[replica - 1], method, path, body, cfg->timeout_ms, &r, err, sizeof(err));
	free(body);
	json_t *rb = status > 0 && r.body_len ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
	const char *code = json_string_value(json_object_get(json_object_get(rb, "error"), "code"));
	enum work_outcome o = work_classify((enum work_f)f, status > 0 ? status : 0, code);

	json_t *done = json_pack("{sssI}", "type", outcome_names[o], "op", (json_int_t)op);
	if (done && status > 0) {
		json_object_set_new(done, "status", json_integer(status));
		if (code)
			json_object_set_new(done, "error", json_string(code));
		if (r.has_index)
			json_object_set_new(done, "index", json_integer((json_int_t)r.index));
		if (o == WORK_OK) {
			json_t *v = ok_value((enum work_f)f, status, rb);
			if (v)
				json_object_set_new(done, "value", v);
		}
	} else if (done) { /* no answer: our own reason, not an API code */
		json_object_set_new(done, "error", json_string(httpc_error_name(status) ? httpc_error_name(status) : "no_answer"));
		json_object_set_new(done, "detail", json_string(err));
	}
	hist_writen(w->h, done);
	if (f == WORK_POLICY && status > 0) {
		/* Which request the next policy op of this id sends. */
		if ((post && (status == 201 || (status == 409 && code && strcmp(code, "already_exists") == 0))) ||
		    (!post && status >= 200 && status < 300))
			atomic_store(&w->policy_known[policy], 1);
		else if (!post && status == 404)
			atomic_store(&w->policy_known[policy], 0);
	}
	json_decref(rb);
	httpc_resp_free(&r);
	pthread_mutex_lock(&w->mu);
	w->stats.n[f][o]++;
	pthread_mutex_unlock(&w->mu);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct work *w = c->w;
	/* Each client sends one request every `interval`, the clients spread over
	 * it; one that fell behind (a slow answer) does not burst to catch up. */
	double interval = w->cfg.clients * 1000.0 / w->cfg.ops_per_s;
	double next = (double)w->t0_ms + interval * (c->id - 1) / w->cfg.clients;
	while (sleep_until(w, (int64_t)next)) {
		one_op(c);
		next += interval;
		double now = (double)mono_ms();
		if (next < now)
			next = now;
	}
	return NULL;
}

int work_start(struct work **out, const struct work_cfg *cfg, const char *const *api_urls, int n_replicas,
	       struct hist *h, uint64_t seed, char *err, size_t errlen)
{
	*out = NULL;
	if (n_replicas < 1)
		return werr(err, errlen, "work: no replica to send requests to");
	if (cfg->clients < 0 || cfg->clients > WORK_MAX_CLIENTS || !(cfg->ops_per_s > 0) || cfg->actors < 1 ||
	    cfg->max_replicas < 1 || cfg->timeout_ms < 1 || cfg->n_regions < 0 || cfg->n_regions > WORK_MAX_REGIONS)
		return werr(err, errlen, "work: bad configuration (use work_parse)");
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return werr(err, errlen, "out of memory");
	w->cfg = *cfg;
	w->h = h;
	w->n = n_replicas;
	atomic_init(&w->next_op, 1);
	for (int f = 0; f < WORK_F_N; f++) {
		w->mix[f] = f == WORK_POLICY && cfg->policies == 0 ? 0 : cfg->mix[f];
		w->mix_total += w->mix[f];
	}
	if (w->mix_total == 0 && cfg->clients > 0) {
		free(w);
		return werr(err, errlen, "work: every weight of the mix is 0");
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	w->urls = calloc((size_t)n_replicas, sizeof(*w->urls));
	w->policy_known = calloc((size_t)(cfg->policies > 0 ? cfg->policies : 1), sizeof(*w->policy_known));
	w->clients = calloc((size_t)(cfg->clients > 0 ? cfg->clients : 1), sizeof(*w->clients));
	bool oom = !w->urls || !w->policy_known || !w->clients;
	for (int i = 0; !oom && i < n_replicas; i++)
		oom = !(w->urls[i] = strdup(api_urls[i]));
	if (oom) {
		work_free(w);
		return werr(err, errlen, "out of memory");
	}
	w->t0_ms = mono_ms();
	for (int i = 0; i < cfg->clients; i++) {
		struct client *c = &w->clients[i];
		c->w = w;
		c->id = i + 1;
		c->rng = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(i + 1));
		int e = pthread_create(&c->th, NULL, client_main, c);
		if (e != 0) {
			werr(err, errlen, "work: cannot start client %d: %s", i + 1, strerror(e));
			work_free(w);
			return -1;
		}
		w->started++;
	}
	*out = w;
	return 0;
}

void work_stats(struct work *w, struct work_stats *out)
{
	pthread_mutex_lock(&w->mu);
	*out = w->stats;
	pthread_mutex_unlock(&w->mu);
}

void work_stop(struct work *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; i < w->started; i++)
		pthread_join(w->clients[i].th, NULL);
	w->started = 0;
}

void work_free(struct work *w)
{
	if (!w)
		return;
	work_stop(w);
	for (int i = 0; w->urls && i < w->n; i++)
		free(w->urls[i]);
	free(w->urls);
	free(w->policy_known);
	free(w->clients);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
