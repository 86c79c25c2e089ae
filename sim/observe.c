/* observe — see observe.h. */
#define _GNU_SOURCE
#include "observe.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "httpc.h"

#define CLUSTER_EVERY_MS 250
#define NODES_EVERY_MS 500
/* A replica that does not answer within this is "not answering" for the
 * round (a partitioned or stopped replica must not stall the others). */
#define POLL_TIMEOUT_MS 1000

struct slot {
	bool answered;
	uint64_t leader; /* 0: it knows none */
	uint64_t term;
	char state[16];  /* self.state: leader, follower, candidate... */
};

struct watched {
	char *id;
	bool known;       /* a status was written for it */
	bool present;     /* the leader had it (else: 404) */
	char status[32];
};

struct poller {
	struct observe *o;
	int idx; /* 0-based */
	pthread_t th;
};

struct observe {
	char *urls[OBSERVE_MAX_REPLICAS];
	int n;
	struct hist *h;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct slot slots[OBSERVE_MAX_REPLICAS];
	bool written; /* a leader line was written */
	int leader;   /* agreed, 0 none */
	uint64_t term;
	struct watched *nodes;
	size_t n_nodes, cap_nodes;
	struct poller pollers[OBSERVE_MAX_REPLICAS];
	int started;
	pthread_t node_th;
	bool node_started;
};

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sleeps until monotonic ms `at` or observe_stop; false when stopping. */
static bool sleep_until(struct observe *o, int64_t at)
{
	pthread_mutex_lock(&o->mu);
	while (!o->stop && mono_ms() < at) {
		struct timespec ts = {.tv_sec = at / 1000, .tv_nsec = (at % 1000) * 1000000};
		pthread_cond_timedwait(&o->cv, &o->mu, &ts);
	}
	bool go = !o->stop;
	pthread_mutex_unlock(&o->mu);
	return go;
}

/* With o->mu held: the leader a majority of all the replicas name (in one
 * term: a raft leader of a term is unique, and one named by a majority leads
 * it); a line when it changed. So a restarting replica that knows no leader
 * yet, or an old leader cut off by a partition that still thinks it leads,
 * does not hide the leader the others follow. */
static void agree(struct observe *o)
{
	int leader = 0;
	uint64_t term = 0;
	for (int i = 0; i < o->n; i++) {
		const struct slot *s = &o->slots[i];
		if (!s->answered || s->leader == 0 || s->leader > (uint64_t)o->n)
			continue;
		int votes = 0;
		for (int j = 0; j < o->n; j++)
			votes += o->slots[j].answered && o->slots[j].leader == s->leader && o->slots[j].term == s->term;
		if (2 * votes > o->n && (leader == 0 || s->term > term)) {
			leader = (int)s->leader;
			term = s->term;
		}
	}
	if (o->written && leader == o->leader && term == o->term)
		return;
	o->written = true;
	o->leader = leader;
	o->term = term;
	json_t *line = json_pack("{ssss}", "type", "observe", "f", "leader");
	if (line) {
		json_object_set_new(line, "replica", leader ? json_integer(leader) : json_null());
		json_object_set_new(line, "term", leader ? json_integer((json_int_t)term) : json_null());
	}
	hist_writen(o->h, line);
}

static void *cluster_poller(void *arg)
{
	struct poller *p = arg;
	struct observe *o = p->o;
	int64_t next = mono_ms();
	do {
		struct httpc_resp r;
		char err[256];
		struct slot s = {0};
		int st = httpc_do(o->urls[p->idx], "GET", "/v1/cluster", NULL, POLL_TIMEOUT_MS, &r, err, sizeof(err));
		json_t *j = st == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
		json_t *term = json_object_get(j, "term");
		if (j && json_is_integer(term)) {
			s.answered = true;
			s.term = (uint64_t)json_integer_value(term);
			json_t *lid = json_object_get(json_object_get(j, "leader"), "id");
			s.leader = json_is_integer(lid) && json_integer_value(lid) > 0 ? (uint64_t)json_integer_value(lid) : 0;
			const char *state = json_string_value(json_object_get(json_object_get(j, "self"), "state"));
			snprintf(s.state, sizeof(s.state), "%s", state ? state : "");
		}
		json_decref(j);
		httpc_resp_free(&r);
		pthread_mutex_lock(&o->mu);
		if (!o->stop) {
			o->slots[p->idx] = s;
			agree(o);
		}
		pthread_mutex_unlock(&o->mu);
		next += CLUSTER_EVERY_MS;
		int64_t now = mono_ms();
		if (next < now)
			next = now;
	} while (sleep_until(o, next));
	return NULL;
}

/* ---- nodes ------------------------------------------------------------------------ */

static void *node_poller(void *arg)
{
	struct observe *o = arg;
	int64_t next = mono_ms();
	while (sleep_until(o, next)) {
		next += NODES_EVERY_MS;
		for (size_t i = 0;; i++) {
			pthread_mutex_lock(&o->mu);
			bool more = i < o->n_nodes && !o->stop && o->leader != 0;
			/* ids are never freed before observe_stop: safe to use unlocked */
			const char *id = more ? o->nodes[i].id : NULL;
			const char *url = more ? o->urls[o->leader - 1] : NULL;
			pthread_mutex_unlock(&o->mu);
			if (!more)
				break;
			char path[200];
			snprintf(path, sizeof(path), "/v1/nodes/%s", id);
			struct httpc_resp r;
			char err[256];
			int st = httpc_do(url, "GET", path, NULL, POLL_TIMEOUT_MS, &r, err, sizeof(err));
			json_t *j = st == 200 ? json_loadb(r.body, r.body_len, 0, NULL) : NULL;
			const char *status = json_string_value(json_object_get(j, "status"));
			if (status || st == 404) {
				pthread_mutex_lock(&o->mu);
				struct watched *w = &o->nodes[i];
				bool present = st == 200;
				if (!w->known || w->present != present || (present && strcmp(w->status, status) != 0)) {
					w->known = true;
					w->present = present;
					snprintf(w->status, sizeof(w->status), "%s", present ? status : "");
					json_t *line = json_pack("{ssssss}", "type", "observe", "f", "node_status", "node", id);
					if (line)
						json_object_set_new(line, "status",
								    present ? json_string(status) : json_null());
					hist_writen(o->h, line);
				}
				pthread_mutex_unlock(&o->mu);
			}
			json_decref(j);
			httpc_resp_free(&r);
			if (st < 0) /* the leader does not answer: not once per node, try next round */
				break;
		}
		int64_t now = mono_ms();
		if (next < now)
			next = now;
	}
	return NULL;
}

int observe_watch_nodes(struct observe *o, const char *const *ids, int n)
{
	int rc = 0;
	pthread_mutex_lock(&o->mu);
	for (int k = 0; k < n && rc == 0; k++) {
		bool have = false;
		for (size_t i = 0; i < o->n_nodes && !have; i++)
			have = strcmp(o->nodes[i].id, ids[k]) == 0;
		if (have)
			continue;
		if (o->n_nodes == o->cap_nodes) {
			size_t nc = o->cap_nodes ? o->cap_nodes * 2 : 64;
			struct watched *nn = realloc(o->nodes, nc * sizeof(*nn));
			if (!nn) {
				rc = -1;
				break;
			}
			o->nodes = nn;
			o->cap_nodes = nc;
		}
		struct watched *w = &o->nodes[o->n_nodes];
		memset(w, 0, sizeof(*w));
		if (!(w->id = strdup(ids[k])))
			rc = -1;
		else
			o->n_nodes++;
	}
	pthread_mutex_unlock(&o->mu);
	return rc;
}

/* ---- the rest ---------------------------------------------------------------------- */

int observe_leader(struct observe *o)
{
	pthread_mutex_lock(&o->mu);
	int l = o->leader;
	pthread_mutex_unlock(&o->mu);
	return l;
}

uint64_t observe_term(struct observe *o)
{
	pthread_mutex_lock(&o->mu);
	uint64_t t = o->term;
	pthread_mutex_unlock(&o->mu);
	return t;
}

int observe_follower(struct observe *o)
{
	int f = 0;
	pthread_mutex_lock(&o->mu);
	for (int i = 0; i < o->n && !f; i++)
		if (o->leader && i + 1 != o->leader && o->slots[i].answered && o->slots[i].leader == (uint64_t)o->leader &&
		    strcmp(o->slots[i].state, "follower") == 0)
			f = i + 1;
	pthread_mutex_unlock(&o->mu);
	return f;
}

int observe_start(struct observe **out, const char *const *api_urls, int n_replicas, struct hist *h, char *err,
		  size_t errlen)
{
	*out = NULL;
	if (n_replicas < 1 || n_replicas > OBSERVE_MAX_REPLICAS) {
		snprintf(err, errlen, "observe: %d replicas; want 1..%d", n_replicas, OBSERVE_MAX_REPLICAS);
		return -1;
	}
	struct observe *o = calloc(1, sizeof(*o));
	if (!o) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	o->n = n_replicas;
	o->h = h;
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cv, &ca);
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < n_replicas; i++)
		if (!(o->urls[i] = strdup(api_urls[i]))) {
			snprintf(err, errlen, "out of memory");
			observe_stop(o);
			return -1;
		}
	for (int i = 0; i < n_replicas; i++) {
		o->pollers[i] = (struct poller){.o = o, .idx = i};
		int e = pthread_create(&o->pollers[i].th, NULL, cluster_poller, &o->pollers[i]);
		if (e != 0) {
			snprintf(err, errlen, "observe: cannot start a thread: %s", strerror(e));
			observe_stop(o);
			return -1;
		}
		o->started++;
	}
	int e = pthread_create(&o->node_th, NULL, node_poller, o);
	if (e != 0) {
		snprintf(err, errlen, "observe: cannot start a thread: %s", strerror(e));
		observe_stop(o);
		return -1;
	}
	o->node_started = true;
	*out = o;
	return 0;
}

void observe_stop(struct observe *o)
{
	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	for (int i = 0; i < o->started; i++)
		pthread_join(o->pollers[i].th, NULL);
	if (o->node_started)
		pthread_join(o->node_th, NULL);
	for (int i = 0; i < o->n; i++)
		free(o->urls[i]);
	for (size_t i = 0; i < o->n_nodes; i++)
		free(o->nodes[i].id);
	free(o->nodes);
	pthread_cond_destroy(&o->cv);
	pthread_mutex_destroy(&o->mu);
	free(o);
}
