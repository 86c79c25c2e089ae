/* nemesis — see nemesis.h. */
#include "nemesis.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "tswait.h"

static const char *const names[] = {
	[NEM_KILL_AGENTS] = "kill_agents",   [NEM_CRASH_AGENTS] = "crash_agents", [NEM_FLAP_AGENTS] = "flap_agents",
	[NEM_SLOW_ACKS] = "slow_acks",       [NEM_CUT_AGENTS] = "cut_agents",     [NEM_KILL_REPLICA] = "kill_replica",
	[NEM_PG] = "pg",                     [NEM_NATS_RESTART] = "nats_restart", [NEM_PARTITION] = "partition",
};
#define N_KINDS (sizeof(names) / sizeof(names[0]))

const char *nemesis_name(enum nemesis_kind k)
{
	return (size_t)k < N_KINDS ? names[k] : "?";
}

static int nerr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int nerr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int is_agent_fault(enum nemesis_kind k)
{
	return k <= NEM_CUT_AGENTS;
}

/* ---- parsing ---------------------------------------------------------------- */

/* Keys each f takes besides at_s, f, for_s. */
static const char *const agent_keys[] = {"count", "fraction", "region", "nodes", NULL};

static int key_known(enum nemesis_kind k, const char *key)
{
	if (!strcmp(key, "at_s") || !strcmp(key, "f") || !strcmp(key, "for_s"))
		return 1;
	if (is_agent_fault(k)) {
		for (size_t i = 0; agent_keys[i]; i++)
			if (!strcmp(key, agent_keys[i]))
				return 1;
		return (k == NEM_CRASH_AGENTS && !strcmp(key, "disk")) ||
		       (k == NEM_FLAP_AGENTS && !strcmp(key, "period_ms")) ||
		       (k == NEM_SLOW_ACKS && !strcmp(key, "delay_ms"));
	}
	switch (k) {
	case NEM_KILL_REPLICA: return !strcmp(key, "which");
	case NEM_PG: return !strcmp(key, "which") || !strcmp(key, "kill");
	case NEM_PARTITION: return !strcmp(key, "kind");
	default: return 0;
	}
}

/* A number of seconds (integer or fraction) in [0, max] as ms. */
static int get_secs(json_t *o, const char *key, double max, int64_t *out, const char *where, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max)
		return nerr(err, errlen, "%s.%s: want a number of seconds 0-%g", where, key, max);
	*out = (int64_t)llround(json_number_value(v) * 1000.0);
	return 0;
}

static int get_ms(json_t *o, const char *key, long long min, long long max, int64_t *out, const char *where, char *err,
		  size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return nerr(err, errlen, "%s.%s: want an integer %lld-%lld", where, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

static int get_bool(json_t *o, const char *key, int *out, const char *where, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return nerr(err, errlen, "%s.%s: want true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

static void nem_free(struct nemesis *n)
{
	free(n->region);
	if (n->nodes)
		for (char **p = n->nodes; *p; p++)
			free(*p);
	free(n->nodes);
}

void nemesis_plan_free(struct nemesis_plan *p)
{
	for (size_t i = 0; i < p->n; i++)
		nem_free(&p->v[i]);
	free(p->v);
	p->v = NULL;
	p->n = 0;
}

static int parse_targets(json_t *o, struct nemesis *n, const char *where, char *err, size_t errlen)
{
	json_t *c = json_object_get(o, "count"), *f = json_object_get(o, "fraction"), *r = json_object_get(o, "region"),
	       *ids = json_object_get(o, "nodes");
	if (!!c + !!f + !!ids != 1)
		return nerr(err, errlen, "%s: want exactly one of count, fraction, nodes", where);
	if (c && (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > 100000))
		return nerr(err, errlen, "%s.count: want an integer 1-100000", where);
	if (c)
		n->count = json_integer_value(c);
	if (f && (!json_is_number(f) || json_number_value(f) <= 0 || json_number_value(f) > 1))
		return nerr(err, errlen, "%s.fraction: want a number above 0, at most 1", where);
	if (f)
		n->fraction = json_number_value(f);
	if (r) {
		if (!json_is_string(r) || json_string_length(r) == 0 || json_string_length(r) > 128)
			return nerr(err, errlen, "%s.region: want a region name (1-128 characters)", where);
		if (!(n->region = strdup(json_string_value(r))))
			return nerr(err, errlen, "out of memory");
	}
	if (ids) {
		if (r)
			return nerr(err, errlen, "%s: nodes and region do not go together", where);
		if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100000)
			return nerr(err, errlen, "%s.nodes: want a non-empty array of node ids", where);
		if (!(n->nodes = calloc(json_array_size(ids) + 1, sizeof(*n->nodes))))
			return nerr(err, errlen, "out of memory");
		for (size_t i = 0; i < json_array_size(ids); i++) {
			json_t *s = json_array_get(ids, i);
			if (!json_is_string(s) || !agent_valid_token(json_string_value(s)))
				return nerr(err, errlen, "%s.nodes[%zu]: want a node id", where, i);
			if (!(n->nodes[i] = strdup(json_string_value(s))))
				return nerr(err, errlen, "out of memory");
		}
	}
	return 0;
}

static int parse_which(json_t *o, int replicas, int *which, const char *where, char *err, size_t errlen)
{
	json_t *v = json_object_get(o, "which");
	if (!v)
		return nerr(err, errlen, "%s.which: required (leader, follower or 1-%d)", where, replicas);
	if (json_is_string(v) && !strcmp(json_string_value(v), "leader"))
		*which = NEM_WHICH_LEADER;
	else if (json_is_string(v) && !strcmp(json_string_value(v), "follower"))
		*which = NEM_WHICH_FOLLOWER;
	else if (json_is_integer(v) && json_integer_value(v) >= 1 && json_integer_value(v) <= replicas)
		*which = (int)json_integer_value(v);
	else
		return nerr(err, errlen, "%s.which: want leader, follower or 1-%d", where, replicas);
	return 0;
}

static int parse_one(json_t *o, size_t i, int replicas, int netns, int64_t duration_ms, struct nemesis *n, char *err,
		     size_t errlen)
{
	char where[32];
	snprintf(where, sizeof(where), "nemeses[%zu]", i);
	if (!json_is_object(o))
		return nerr(err, errlen, "%s: want an object", where);
	json_t *f = json_object_get(o, "f");
	size_t k = 0;
	for (; f && json_is_string(f) && k < N_KINDS; k++)
		if (!strcmp(names[k], json_string_value(f)))
			break;
	if (!f || !json_is_string(f) || k == N_KINDS)
		return nerr(err, errlen,
			    "%s.f: want one of kill_agents, crash_agents, flap_agents, slow_acks, cut_agents, "
			    "kill_replica, pg, nats_restart, partition",
			    where);
	n->kind = (enum nemesis_kind)k;
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) if (!key_known(n->kind, key)) return nerr(
		err, errlen, "%s: unknown key '%s' for %s", where, key, names[k]);
	json_t *at = json_object_get(o, "at_s");
	if (!at)
		return nerr(err, errlen, "%s.at_s: required", where);
	if (get_secs(o, "at_s", (double)duration_ms / 1000.0, &n->at_ms, where, err, errlen) < 0)
		return -1;
	static const int64_t dflt_for[] = {[NEM_KILL_AGENTS] = 0,   [NEM_CRASH_AGENTS] = 5000, [NEM_FLAP_AGENTS] = 20000,
					   [NEM_SLOW_ACKS] = 0,     [NEM_CUT_AGENTS] = 10000,  [NEM_KILL_REPLICA] = 5000,
					   [NEM_PG] = 3000,         [NEM_NATS_RESTART] = 3000, [NEM_PARTITION] = 10000};
	n->for_ms = dflt_for[n->kind];
	if (get_secs(o, "for_s", 86400, &n->for_ms, where, err, errlen) < 0)
		return -1;
	int must_end = n->kind == NEM_CRASH_AGENTS || n->kind == NEM_FLAP_AGENTS || n->kind >= NEM_KILL_REPLICA;
	if (must_end && n->for_ms == 0)
		return nerr(err, errlen, "%s.for_s: %s must end (want more than 0)", where, names[k]);
	n->disk = 1;
	n->period_ms = 4000;
	n->delay_ms = 3000;
	if (is_agent_fault(n->kind)) {
		if (parse_targets(o, n, where, err, errlen) < 0 || get_bool(o, "disk", &n->disk, where, err, errlen) < 0 ||
		    get_ms(o, "period_ms", 200, 3600000, &n->period_ms, where, err, errlen) < 0 ||
		    get_ms(o, "delay_ms", 1, 3600000, &n->delay_ms, where, err, errlen) < 0)
			return -1;
	} else if (n->kind == NEM_KILL_REPLICA || n->kind == NEM_PG) {
		if (parse_which(o, replicas, &n->which, where, err, errlen) < 0 ||
		    get_bool(o, "kill", &n->kill9, where, err, errlen) < 0)
			return -1;
		if (n->which == NEM_WHICH_FOLLOWER && replicas < 2)
			return nerr(err, errlen, "%s.which: follower, but the cluster has one replica", where);
	} else if (n->kind == NEM_PARTITION) {
		json_t *kd = json_object_get(o, "kind");
		const char *s = json_is_string(kd) ? json_string_value(kd) : "";
		if (!strcmp(s, "leader_isolated"))
			n->part = NEM_PART_LEADER_ISOLATED;
		else if (!strcmp(s, "minority"))
			n->part = NEM_PART_MINORITY;
		else if (!strcmp(s, "bridge"))
			n->part = NEM_PART_BRIDGE;
		else
			return nerr(err, errlen, "%s.kind: want leader_isolated, minority or bridge", where);
		if (!netns)
			return nerr(err, errlen, "%s: partitions need cluster.netns true", where);
		if (replicas < (n->part == NEM_PART_LEADER_ISOLATED ? 2 : 3))
			return nerr(err, errlen, "%s: a %s partition needs at least %d replicas", where, s,
				    n->part == NEM_PART_LEADER_ISOLATED ? 2 : 3);
	}
	return 0;
}

int nemesis_parse(json_t *nemeses, int replicas, int netns, int64_t duration_ms, struct nemesis_plan *out, char *err,
		  size_t errlen)
{
	*out = (struct nemesis_plan){0};
	if (!nemeses)
		return 0;
	if (!json_is_array(nemeses))
		return nerr(err, errlen, "nemeses: want an array");
	size_t n = json_array_size(nemeses);
	if (n > 10000)
		return nerr(err, errlen, "nemeses: %zu faults; at most 10000", n);
	if (n && !(out->v = calloc(n, sizeof(*out->v))))
		return nerr(err, errlen, "out of memory");
	for (size_t i = 0; i < n; i++) {
		out->n++;
		if (parse_one(json_array_get(nemeses, i), i, replicas, netns, duration_ms, &out->v[i], err, errlen) < 0) {
			nemesis_plan_free(out);
			return -1;
		}
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			const struct nemesis *a = &out->v[i], *b = &out->v[j];
			if (a->kind == NEM_PARTITION && b->kind == NEM_PARTITION && a->at_ms < b->at_ms + b->for_ms &&
			    b->at_ms < a->at_ms + a->for_ms) {
				nemesis_plan_free(out);
				return nerr(err, errlen, "nemeses[%zu] and nemeses[%zu]: two partitions at once (one at a time)",
					    i, j);
			}
		}
	return 0;
}

/* ---- the run ------------------------------------------------------------------ */

enum act { ACT_START, ACT_END, ACT_FLAP };

struct action {
	int64_t t;
	size_t nem;
	enum act act;
};

struct nstate {
	int state;      /* 0 pending, 1 active, 2 ended, 3 skipped */
	size_t *targets; /* agent indexes */
	size_t n_targets;
	int replica;    /* resolved which */
	int flap_down;
};

struct nemesis_run {
	const struct nemesis_plan *plan;
	const struct simrt_scenario *sc;
	struct simrt *rt;
	struct nemesis_env env;
	struct hist *h;
	uint64_t rng;
	struct nstate *st;
	struct action *acts; /* a heap would do; the lists are short */
	size_t n_acts, cap_acts;
	unsigned char *busy;    /* per agent: in a fault */
	unsigned char *rdown;   /* per replica (1..N): we killed it */
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	atomic_uint_fast64_t started, ended, skipped, failed;
};

static uint64_t rng_next(uint64_t *s) /* splitmix64 */
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int push_act(struct nemesis_run *r, int64_t t, size_t nem, enum act a)
{
	if (r->n_acts == r->cap_acts) {
		size_t nc = r->cap_acts ? r->cap_acts * 2 : 32;
		struct action *na = realloc(r->acts, nc * sizeof(*na));
		if (!na)
			return -1;
		r->acts = na;
		r->cap_acts = nc;
	}
	r->acts[r->n_acts++] = (struct action){t, nem, a};
	return 0;
}

/* Takes the earliest action (stable: the first pushed of equal times). */
static int pop_act(struct nemesis_run *r, struct action *out)
{
	if (!r->n_acts)
		return 0;
	size_t best = 0;
	for (size_t i = 1; i < r->n_acts; i++)
		if (r->acts[i].t < r->acts[best].t)
			best = i;
	*out = r->acts[best];
	memmove(&r->acts[best], &r->acts[best + 1], (r->n_acts - best - 1) * sizeof(*r->acts));
	r->n_acts--;
	return 1;
}

static void hist_phase(struct nemesis_run *r, size_t k, const char *phase, const char *key, const char *text)
{
	json_t *line = json_pack("{s:s, s:s, s:s, s:I}", "type", "nemesis", "f", names[r->plan->v[k].kind], "phase",
				 phase, "id", (json_int_t)k);
	if (line && key && text)
		json_object_set_new(line, key, json_string(text));
	hist_writen(r->h, line);
}

/* Picks the agents of fault k: explicit nodes, or count / fraction of the
 * (region's) agents not in another fault, at random. */
static int pick_agents(struct nemesis_run *r, size_t k, char *why, size_t wlen)
{
	const struct nemesis *n = &r->plan->v[k];
	struct nstate *s = &r->st[k];
	size_t total = simrt_agents(r->rt);
	size_t *cand = malloc((total ? total : 1) * sizeof(*cand));
	if (!cand)
		return nerr(why, wlen, "out of memory");
	size_t nc = 0, in_scope = 0;
	if (n->nodes) {
		for (char **p = n->nodes; *p; p++) {
			long idx = simrt_agent_find(r->rt, *p);
			if (idx < 0) {
				free(cand);
				return nerr(why, wlen, "no agent %s in this run", *p);
			}
			in_scope++;
			if (!r->busy[idx])
				cand[nc++] = (size_t)idx;
		}
	} else {
		for (size_t i = 0; i < total; i++) {
			char id[96];
			const struct simrt_group *g = simrt_scenario_node(r->sc, i, id, sizeof(id));
			if (n->region && (!g || strcmp(g->region, n->region) != 0))
				continue;
			in_scope++;
			if (!r->busy[i])
				cand[nc++] = i;
		}
	}
	size_t want = n->nodes ? nc : n->count ? (size_t)n->count : (size_t)llround(n->fraction * (double)in_scope);
	if (want == 0 && !n->nodes && n->fraction > 0 && in_scope > 0)
		want = 1;
	if (want > nc)
		want = nc;
	if (want == 0) {
		free(cand);
		return nerr(why, wlen, "no agent to take (%zu in scope, all in other faults)", in_scope);
	}
	for (size_t i = 0; i < want; i++) { /* partial Fisher-Yates */
		size_t j = i + (size_t)(rng_next(&r->rng) % (nc - i));
		size_t t = cand[i];
		cand[i] = cand[j];
		cand[j] = t;
	}
	s->targets = cand;
	s->n_targets = want;
	for (size_t i = 0; i < want; i++)
		r->busy[cand[i]] = 1;
	return 0;
}

static void agents_do(struct nemesis_run *r, size_t k, enum simrt_fault f, int64_t arg)
{
	struct nstate *s = &r->st[k];
	for (size_t i = 0; i < s->n_targets; i++)
		if (simrt_fault(r->rt, s->targets[i], f, arg) < 0)
			atomic_fetch_add(&r->failed, 1);
}

static int live_follower(struct nemesis_run *r, int leader)
{
	int n = r->env.replicas, off = (int)(rng_next(&r->rng) % (uint64_t)n);
	for (int i = 0; i < n; i++) {
		int c = 1 + (off + i) % n;
		if (c != leader && !r->rdown[c])
			return c;
	}
	return 0;
}

/* Resolves which: 0 (with why) when it cannot be done now. */
static int resolve_which(struct nemesis_run *r, int which, char *why, size_t wlen)
{
	int leader = r->env.leader ? r->env.leader(r->env.ctx) : 0;
	int c = which;
	if (which == NEM_WHICH_LEADER && !(c = leader))
		snprintf(why, wlen, "no leader now");
	else if (which == NEM_WHICH_FOLLOWER && !(c = live_follower(r, leader)))
		snprintf(why, wlen, "no live follower now");
	else if (c > 0 && r->rdown[c]) {
		snprintf(why, wlen, "replica %d is down already", c);
		c = 0;
	}
	return c;
}

static void start_partition(struct nemesis_run *r, size_t k, json_t *line, char *why, size_t wlen, int *ok)
{
	const struct nemesis *n = &r->plan->v[k];
	int N = r->env.replicas, leader = r->env.leader ? r->env.leader(r->env.ctx) : 0;
	*ok = 0;
	if (!leader) {
		snprintf(why, wlen, "no leader now");
		return;
	}
	int side[8] = {0}; /* 1, 2; 3 = the bridge (both) */
	int alone = n->part == NEM_PART_LEADER_ISOLATED ? leader : n->part == NEM_PART_MINORITY ? live_follower(r, leader) : 0;
	int bridge = n->part == NEM_PART_BRIDGE ? live_follower(r, leader) : 0;
	if ((n->part == NEM_PART_MINORITY && !alone) || (n->part == NEM_PART_BRIDGE && !bridge)) {
		snprintf(why, wlen, "no live follower now");
		return;
	}
	if (alone) {
		for (int i = 1; i <= N; i++)
			side[i] = i == alone ? 1 : 2;
	} else { /* the leader's side and the other side, the bridge in both */
		int flip = 0;
		for (int i = 1; i <= N; i++)
			side[i] = i == bridge ? 3 : i == leader ? 1 : (flip++ % 2 == 0 ? 2 : 1);
	}
	json_t *groups = json_pack("[[], []]");
	for (int i = 1; i <= N; i++) {
		char id[4];
		snprintf(id, sizeof(id), "%d", i);
		if (side[i] & 1)
			json_array_append_new(json_array_get(groups, 0), json_string(id));
		if (side[i] & 2)
			json_array_append_new(json_array_get(groups, 1), json_string(id));
	}
	json_object_set_new(line, "groups", groups);
	if (bridge) {
		char id[4];
		snprintf(id, sizeof(id), "%d", bridge);
		json_object_set_new(line, "bridge", json_string(id));
	}
	json_t *targets = json_array();
	for (int i = 1; i <= N; i++)
		if (side[i] == 1 || (alone && i == alone)) {
			char id[4];
			snprintf(id, sizeof(id), "%d", i);
			json_array_append_new(targets, json_string(id));
		}
	json_object_set_new(line, "targets", targets);
	for (int i = 1; i <= N; i++)
		for (int j = i + 1; j <= N; j++)
			if ((side[i] | side[j]) == 3 && side[i] != 3 && side[j] != 3) {
				char e[256];
				if (r->env.cut(r->env.ctx, i, j, e, sizeof(e)) < 0) {
					snprintf(why, wlen, "cut %d-%d: %s", i, j, e);
					r->env.heal(r->env.ctx, e, sizeof(e));
					return;
				}
			}
	*ok = 1;
}

static void do_start(struct nemesis_run *r, size_t k, int64_t now)
{
	const struct nemesis *n = &r->plan->v[k];
	struct nstate *s = &r->st[k];
	char why[512] = "", e[512] = "";
	int ok = 1;
	json_t *line = json_pack("{s:s, s:s, s:s, s:I}", "type", "nemesis", "f", names[n->kind], "phase", "start", "id",
				 (json_int_t)k);
	char detail[256] = "";
	if (is_agent_fault(n->kind)) {
		if (pick_agents(r, k, why, sizeof(why)) < 0) {
			ok = 0;
		} else {
			json_t *t = json_array();
			const char **ids = malloc(s->n_targets * sizeof(*ids));
			for (size_t i = 0; i < s->n_targets; i++) {
				json_array_append_new(t, json_string(simrt_agent_id(r->rt, s->targets[i])));
				if (ids)
					ids[i] = simrt_agent_id(r->rt, s->targets[i]);
			}
			json_object_set_new(line, "targets", t);
			if (ids && r->env.watch_nodes)
				r->env.watch_nodes(r->env.ctx, ids, s->n_targets);
			free(ids);
			static const enum simrt_fault first[] = {[NEM_KILL_AGENTS] = SIMRT_FREEZE,
								  [NEM_CRASH_AGENTS] = SIMRT_CRASH,
								  [NEM_FLAP_AGENTS] = SIMRT_FREEZE,
								  [NEM_SLOW_ACKS] = SIMRT_SLOW_ACKS,
								  [NEM_CUT_AGENTS] = SIMRT_CUT};
			agents_do(r, k, first[n->kind], n->delay_ms);
			s->flap_down = 1;
			snprintf(detail, sizeof(detail), "%zu agents%s%s", s->n_targets, n->region ? " of " : "",
				 n->region ? n->region : "");
		}
	} else if (n->kind == NEM_KILL_REPLICA || n->kind == NEM_PG) {
		if (!(s->replica = resolve_which(r, n->which, why, sizeof(why)))) {
			ok = 0;
		} else {
			char id[8];
			snprintf(id, sizeof(id), n->kind == NEM_PG ? "pg%d" : "%d", s->replica);
			json_object_set_new(line, "targets", json_pack("[s]", id));
			int rc = n->kind == NEM_KILL_REPLICA
					 ? r->env.replica_kill(r->env.ctx, s->replica, e, sizeof(e))
					 : r->env.pg_stop(r->env.ctx, s->replica, n->kill9, e, sizeof(e));
			if (rc < 0) {
				ok = 0;
				snprintf(why, sizeof(why), "%s", e);
			} else if (n->kind == NEM_KILL_REPLICA) {
				r->rdown[s->replica] = 1;
			}
			snprintf(detail, sizeof(detail), "%s replica %d%s",
				 n->kind == NEM_PG ? (n->kill9 ? "kill -9 PostgreSQL of" : "restart PostgreSQL of") : "kill -9",
				 s->replica, n->which == NEM_WHICH_LEADER ? " (the leader)" : "");
		}
	} else if (n->kind == NEM_NATS_RESTART) {
		json_object_set_new(line, "targets", json_pack("[s]", "nats"));
		if (r->env.nats_stop(r->env.ctx, e, sizeof(e)) < 0) {
			ok = 0;
			snprintf(why, sizeof(why), "%s", e);
		}
		snprintf(detail, sizeof(detail), "nats-server stopped");
	} else {
		start_partition(r, k, line, why, sizeof(why), &ok);
		snprintf(detail, sizeof(detail), "%s", n->part == NEM_PART_LEADER_ISOLATED ? "the leader isolated"
						       : n->part == NEM_PART_MINORITY	   ? "one follower isolated"
											   : "a bridge follower");
	}
	if (!ok) {
		json_decref(line);
		s->state = 3;
		atomic_fetch_add(&r->skipped, 1);
		hist_phase(r, k, "skipped", "reason", why);
		log_warn("fault %zu (%s) skipped: %s", k, names[n->kind], why);
		return;
	}
	json_object_set_new(line, "detail", json_string(detail));
	hist_writen(r->h, line);
	log_info("fault %zu: %s: %s", k, names[n->kind], detail);
	s->state = 1;
	atomic_fetch_add(&r->started, 1);
	if (n->for_ms > 0)
		push_act(r, now + n->for_ms, k, ACT_END);
	if (n->kind == NEM_FLAP_AGENTS)
		push_act(r, now + n->period_ms / 2, k, ACT_FLAP);
}

static void do_end(struct nemesis_run *r, size_t k)
{
	const struct nemesis *n = &r->plan->v[k];
	struct nstate *s = &r->st[k];
	if (s->state != 1)
		return;
	char e[512] = "";
	int rc = 0;
	switch (n->kind) {
	case NEM_KILL_AGENTS:
	case NEM_FLAP_AGENTS: agents_do(r, k, SIMRT_THAW, 0); break;
	case NEM_CRASH_AGENTS: agents_do(r, k, n->disk ? SIMRT_RESTART : SIMRT_RESTART_EMPTY, 0); break;
	case NEM_SLOW_ACKS: agents_do(r, k, SIMRT_SLOW_ACKS, 0); break;
	case NEM_CUT_AGENTS: agents_do(r, k, SIMRT_UNCUT, 0); break;
	case NEM_KILL_REPLICA:
		if ((rc = r->env.replica_start(r->env.ctx, s->replica, e, sizeof(e))) == 0)
			r->rdown[s->replica] = 0;
		break;
	case NEM_PG: rc = r->env.pg_start(r->env.ctx, s->replica, e, sizeof(e)); break;
	case NEM_NATS_RESTART: rc = r->env.nats_start(r->env.ctx, e, sizeof(e)); break;
	case NEM_PARTITION: rc = r->env.heal(r->env.ctx, e, sizeof(e)); break;
	}
	for (size_t i = 0; i < s->n_targets; i++)
		r->busy[s->targets[i]] = 0;
	s->state = 2;
	if (rc < 0) {
		atomic_fetch_add(&r->failed, 1);
		hist_phase(r, k, "error", "error", e);
		log_error("fault %zu (%s): ending it failed: %s", k, names[n->kind], e);
		return;
	}
	atomic_fetch_add(&r->ended, 1);
	hist_phase(r, k, "end", NULL, NULL);
	log_info("fault %zu: %s ended", k, names[n->kind]);
}

static void do_flap(struct nemesis_run *r, size_t k, int64_t now)
{
	const struct nemesis *n = &r->plan->v[k];
	struct nstate *s = &r->st[k];
	if (s->state != 1)
		return;
	s->flap_down = !s->flap_down;
	agents_do(r, k, s->flap_down ? SIMRT_FREEZE : SIMRT_THAW, 0);
	push_act(r, now + n->period_ms / 2, k, ACT_FLAP);
}

/* The actions run with mu held (they are short, but a PostgreSQL stop can take
 * a second or two): nemesis_done then sees a consistent plan. */
static void *run_main(void *arg)
{
	struct nemesis_run *r = arg;
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		int64_t now = hist_now(r->h);
		size_t best = 0;
		for (size_t i = 1; i < r->n_acts; i++)
			if (r->acts[i].t < r->acts[best].t)
				best = i;
		if (r->n_acts && r->acts[best].t <= now) {
			struct action a;
			pop_act(r, &a);
			if (a.act == ACT_START)
				do_start(r, a.nem, now);
			else if (a.act == ACT_END)
				do_end(r, a.nem);
			else
				do_flap(r, a.nem, now);
			continue;
		}
		int64_t d = r->n_acts ? r->acts[best].t - now : 1000;
		if (d > 1000)
			d = 1000;
		struct timespec ts = tswait_after(CLOCK_MONOTONIC, d);
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

int nemesis_start(struct nemesis_run **out, const struct nemesis_plan *plan, const struct simrt_scenario *sc,
		  struct simrt *rt, const struct nemesis_env *env, struct hist *h, uint64_t seed, char *err,
		  size_t errlen)
{
	*out = NULL;
	struct nemesis_run *r = calloc(1, sizeof(*r));
	if (!r)
		return nerr(err, errlen, "out of memory");
	r->plan = plan;
	r->sc = sc;
	r->rt = rt;
	r->env = *env;
	r->h = h;
	r->rng = seed;
	r->st = calloc(plan->n ? plan->n : 1, sizeof(*r->st));
	r->busy = calloc(simrt_agents(rt) + 1, 1);
	r->rdown = calloc((size_t)env->replicas + 2, 1);
	int bad = !r->st || !r->busy || !r->rdown;
	for (size_t i = 0; i < plan->n && !bad; i++)
		bad = push_act(r, plan->v[i].at_ms, i, ACT_START) < 0;
	if (bad) {
		nemesis_stop(r, 0);
		return nerr(err, errlen, "out of memory");
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&r->th, NULL, run_main, r) != 0) {
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
		free(r->st);
		free(r->busy);
		free(r->rdown);
		free(r->acts);
		free(r);
		return nerr(err, errlen, "cannot start the nemesis thread");
	}
	*out = r;
	return 0;
}

int nemesis_done(struct nemesis_run *r)
{
	pthread_mutex_lock(&r->mu);
	int done = 1;
	for (size_t i = 0; i < r->n_acts; i++)
		done &= r->acts[i].act == ACT_FLAP; /* a flap's own END is queued as well */
	for (size_t i = 0; i < r->plan->n; i++)
		if (r->st[i].state == 0 || (r->st[i].state == 1 && r->plan->v[i].for_ms > 0))
			done = 0;
	pthread_mutex_unlock(&r->mu);
	return done;
}

void nemesis_stop(struct nemesis_run *r, int heal_agents)
{
	if (!r)
		return;
	if (r->th) {
		pthread_mutex_lock(&r->mu);
		r->stop = 1;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->th, NULL);
		for (size_t i = 0; i < r->plan->n; i++)
			if (r->st[i].state == 1 && (r->plan->v[i].for_ms > 0 || heal_agents))
				do_end(r, i);
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cv);
	}
	for (size_t i = 0; r->st && i < r->plan->n; i++)
		free(r->st[i].targets);
	free(r->st);
	free(r->busy);
	free(r->rdown);
	free(r->acts);
	free(r);
}

void nemesis_counts(struct nemesis_run *r, uint64_t *started, uint64_t *ended, uint64_t *skipped, uint64_t *failed)
{
	*started = atomic_load(&r->started);
	*ended = atomic_load(&r->ended);
	*skipped = atomic_load(&r->skipped);
	*failed = atomic_load(&r->failed);
}
