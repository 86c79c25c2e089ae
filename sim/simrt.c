/* simrt — lattice-sim's runtime: see simrt.h. */
#include "simrt.h"

#include <errno.h>
#include <jansson.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "driver.h"
#include "log.h"

#define SIMRT_MAX_AGENTS 100000
#define SIMRT_MAX_LABELS 64

/* ---- scenario ------------------------------------------------------------- */

static int serr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int serr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int only_keys(json_t *obj, const char *const *keys, const char *where, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		int known = 0;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known) {
			char list[256] = "";
			for (size_t i = 0; keys[i]; i++)
				snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", keys[i]);
			return serr(err, errlen, "%s: unknown key '%s' (known: %s)", where, k, list);
		}
	}
	return 0;
}

/* An optional integer key in [min, max]; absent keeps *out. */
static int get_int(json_t *obj, const char *key, long long min, long long max, long long *out, const char *where,
		   char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return serr(err, errlen, "%s%s: want an integer %lld-%lld", where, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

/* An optional string key of 1-maxlen characters; absent keeps *out. */
static int get_str(json_t *obj, const char *key, size_t maxlen, const char **out, const char *where, char *err,
		   size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > maxlen ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return serr(err, errlen, "%s%s: want a string of 1-%zu characters", where, key, maxlen);
	*out = json_string_value(v);
	return 0;
}

void simrt_scenario_free(struct simrt_scenario *sc)
{
	if (!sc)
		return;
	for (size_t g = 0; g < sc->n_groups; g++) {
		struct simrt_group *gr = &sc->groups[g];
		free(gr->prefix);
		free(gr->region);
		for (size_t i = 0; i < gr->n_labels; i++) {
			free((char *)gr->labels[i].key);
			free((char *)gr->labels[i].value);
		}
		free(gr->labels);
	}
	free(sc->groups);
	free(sc->lattice);
	json_decref(sc->cluster);
	json_decref(sc->workload);
	json_decref(sc->nemeses);
	free(sc);
}

const struct simrt_group *simrt_scenario_node(const struct simrt_scenario *sc, size_t i, char *buf, size_t len)
{
	for (size_t g = 0; g < sc->n_groups; g++) {
		if (i < (size_t)sc->groups[g].count) {
			snprintf(buf, len, "%s-%04zu", sc->groups[g].prefix, i);
			return &sc->groups[g];
		}
		i -= (size_t)sc->groups[g].count;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_group(json_t *ja, size_t gi, struct simrt_group *gr, char *err, size_t errlen)
{
	char where[48];
	snprintf(where, sizeof(where), "agents[%zu]", gi);
	if (!json_is_object(ja))
		return serr(err, errlen, "%s: want an object", where);
	static const char *const keys[] = {"count", "prefix", "region", "labels", "cpu_capacity", "memory_mb", NULL};
	if (only_keys(ja, keys, where, err, errlen) < 0)
		return -1;
	snprintf(where, sizeof(where), "agents[%zu].", gi);
	if (!json_object_get(ja, "count"))
		return serr(err, errlen, "%scount is required", where);
	if (!json_object_get(ja, "prefix"))
		return serr(err, errlen, "%sprefix is required", where);
	const char *prefix = NULL, *region = "default";
	long long count = 0, cpu = 4000, mem = 4096;
	if (get_int(ja, "count", 1, SIMRT_MAX_AGENTS, &count, where, err, errlen) < 0 ||
	    get_str(ja, "prefix", 58, &prefix, where, err, errlen) < 0 ||
	    get_str(ja, "region", 128, &region, where, err, errlen) < 0 ||
	    get_int(ja, "cpu_capacity", 0, 1LL << 40, &cpu, where, err, errlen) < 0 ||
	    get_int(ja, "memory_mb", 0, 1LL << 40, &mem, where, err, errlen) < 0)
		return -1;
	/* the longest id it makes must be a subject token */
	char probe[96];
	snprintf(probe, sizeof(probe), "%s-%04lld", prefix, count - 1);
	if (!agent_valid_token(prefix) || !agent_valid_token(probe))
		return serr(err, errlen,
			    "%sprefix '%s': node ids %s-0000... must be subject tokens: 1-64 of A-Z a-z 0-9 _ -", where,
			    prefix, prefix);
	gr->count = count;
	gr->cpu_capacity = cpu;
	gr->memory_mb = mem;
	gr->prefix = strdup(prefix);
	gr->region = strdup(region);
	if (!gr->prefix || !gr->region)
		return serr(err, errlen, "out of memory");
	json_t *labels = json_object_get(ja, "labels");
	if (labels) {
		if (!json_is_object(labels))
			return serr(err, errlen, "%slabels: want an object of strings", where);
		if (json_object_size(labels) > SIMRT_MAX_LABELS)
			return serr(err, errlen, "%slabels: at most %d", where, SIMRT_MAX_LABELS);
		gr->labels = calloc(json_object_size(labels) + 1, sizeof(*gr->labels));
		if (!gr->labels)
			return serr(err, errlen, "out of memory");
		const char *k;
		json_t *v;
		json_object_foreach(labels, k, v) {
			if (!*k || strlen(k) > 63)
				return serr(err, errlen, "%slabels: key '%s': want 1-63 characters", where, k);
			if (!json_is_string(v) || json_string_length(v) > 256 ||
			    strlen(json_string_value(v)) != json_string_length(v))
				return serr(err, errlen, "%slabels.%s: want a string of at most 256 characters", where, k);
			char *kk = strdup(k), *vv = strdup(json_string_value(v));
			gr->labels[gr->n_labels++] = (struct agent_label){kk, vv};
			if (!kk || !vv)
				return serr(err, errlen, "out of memory");
		}
	}
	return 0;
}

int simrt_scenario_parse(struct simrt_scenario **out, const char *json, size_t len, char *err, size_t errlen)
{
	*out = NULL;
	json_error_t je;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return serr(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
	struct simrt_scenario *sc = calloc(1, sizeof(*sc));
	char **ids = NULL;
	size_t n_ids = 0;
	int rc = -1;
	if (!sc) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	if (!json_is_object(root)) {
		serr(err, errlen, "want a JSON object");
		goto out;
	}
	static const char *const keys[] = {"lattice",  "heartbeat_ms", "snapshot_ms", "agents", "duration_s",
					   "settle_s", "cluster",      "workload",    "nemeses", NULL};
	if (only_keys(root, keys, "scenario", err, errlen) < 0)
		goto out;
	const char *lattice = "default";
	sc->heartbeat_ms = 1000;
	sc->snapshot_ms = 5000;
	sc->duration_s = 60;
	sc->settle_s = 30;
	if (get_str(root, "lattice", 64, &lattice, "", err, errlen) < 0 ||
	    get_int(root, "duration_s", 1, 86400, &sc->duration_s, "", err, errlen) < 0 ||
	    get_int(root, "settle_s", 0, 3600, &sc->settle_s, "", err, errlen) < 0 ||
	    get_int(root, "heartbeat_ms", 10, 3600000, &sc->heartbeat_ms, "", err, errlen) < 0 ||
	    get_int(root, "snapshot_ms", 0, 86400000, &sc->snapshot_ms, "", err, errlen) < 0)
		goto out;
	if (!agent_valid_token(lattice)) {
		serr(err, errlen, "lattice '%s': want a subject token (1-64 of A-Z a-z 0-9 _ -)", lattice);
		goto out;
	}
	if (!(sc->lattice = strdup(lattice))) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	static const struct {
		const char *key;
		int array;
	} parts[] = {{"cluster", 0}, {"workload", 0}, {"nemeses", 1}};
	for (size_t i = 0; i < 3; i++) {
		json_t *v = json_object_get(root, parts[i].key);
		if (v && (parts[i].array ? !json_is_array(v) : !json_is_object(v))) {
			serr(err, errlen, "%s: want %s", parts[i].key, parts[i].array ? "an array" : "an object");
			goto out;
		}
	}
	sc->cluster = json_incref(json_object_get(root, "cluster"));
	sc->workload = json_incref(json_object_get(root, "workload"));
	sc->nemeses = json_incref(json_object_get(root, "nemeses"));
	json_t *agents = json_object_get(root, "agents");
	if (!agents || !json_is_array(agents) || json_array_size(agents) == 0) {
		serr(err, errlen, "agents: want a non-empty array of agent groups");
		goto out;
	}
	sc->groups = calloc(json_array_size(agents), sizeof(*sc->groups));
	if (!sc->groups) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t g = 0; g < json_array_size(agents); g++) {
		sc->n_groups++; /* freed with the scenario even when half filled */
		if (parse_group(json_array_get(agents, g), g, &sc->groups[g], err, errlen) < 0)
			goto out;
		sc->n_agents += (size_t)sc->groups[g].count;
	}
	if (sc->n_agents > SIMRT_MAX_AGENTS) {
		serr(err, errlen, "agents: %zu in all; at most %d", sc->n_agents, SIMRT_MAX_AGENTS);
		goto out;
	}
	/* Duplicate node ids (two groups with one prefix, or "a" 10 and "a-0"...). */
	ids = calloc(sc->n_agents, sizeof(*ids));
	if (!ids) {
		serr(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < sc->n_agents; i++) {
		char id[96];
		simrt_scenario_node(sc, i, id, sizeof(id));
		if (!(ids[i] = strdup(id))) {
			serr(err, errlen, "out of memory");
			goto out;
		}
		n_ids++;
	}
	qsort(ids, n_ids, sizeof(*ids), cmp_str);
	for (size_t i = 1; i < sc->n_agents; i++)
		if (strcmp(ids[i - 1], ids[i]) == 0) {
			serr(err, errlen, "agents: node id '%s' is made by more than one group (prefixes must differ)",
			     ids[i]);
			goto out;
		}
	rc = 0;
	*out = sc;
	sc = NULL;
out:
	for (size_t i = 0; i < n_ids; i++)
		free(ids[i]);
	free(ids);
	simrt_scenario_free(sc);
	json_decref(root);
	return rc;
}

int simrt_scenario_load(struct simrt_scenario **out, const char *path, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "r");
	if (!f)
		return serr(err, errlen, "%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 > cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
			if (!nb) {
				free(buf);
				fclose(f);
				return serr(err, errlen, "%s: out of memory", path);
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
		if (len > (16u << 20)) {
			free(buf);
			fclose(f);
			return serr(err, errlen, "%s: larger than 16 MiB", path);
		}
	}
	int rerr = ferror(f);
	fclose(f);
	if (rerr) {
		free(buf);
		return serr(err, errlen, "%s: read error", path);
	}
	char msg[400];
	int rc = simrt_scenario_parse(out, buf, len, msg, sizeof(msg));
	free(buf);
	if (rc < 0)
		serr(err, errlen, "%s: %s", path, msg);
	return rc;
}

/* ---- runtime -------------------------------------------------------------- */

#define PULL_BATCH 64
#define UNBOUND_EXPIRES_MS 500 /* short: a consumer that does not exist never answers */
#define DEADLINE_GRACE_MS 3000  /* a bound agent's answer (408) is overdue by then: ask again */
#define UNBOUND_GRACE_MS 250    /* not bound: ask again every 750 ms */
#define GEN_UNKNOWN 0xffffffffUL /* a command: which request brought it is not known */
#define CHUNK 1024              /* messages handled in one round (one fsync per agent, one ack wait) */

struct sagent {
	struct agent *a;
	struct worker *w;
	char *pull_subj;
	uint32_t gen;       /* of the current pull request (its reply subject ends with it) */
	int outstanding;
	int delivered;      /* messages of the current request */
	atomic_int bound;   /* its consumer answered (read by simrt_get_stats) */
	int missing_logged;
	int64_t pull_deadline, next_pull, next_hb, next_tick;
	int touched;        /* scratch of a round */
};

struct qitem {
	natsMsg *m;
	uint32_t idx, gen;
	uint32_t seq; /* arrival order, for a stable sort */
};

struct worker {
	struct simrt *rt;
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct qitem *q;
	size_t qn, qcap;
	jsCtx *js;
	atomic_int ack_failed;
	size_t first, n; /* its agents: rt->agents[first .. first+n) */
	unsigned epoch;  /* rt->epoch when it last re-issued its pulls */
	unsigned rnd;
};

struct simrt {
	const struct simrt_scenario *sc;
	struct sagent *agents;
	size_t n;
	size_t *by_id; /* agent indexes sorted by node id */
	struct worker *workers;
	int nw;
	natsOptions *nopts;
	natsConnection *nc;
	natsSubscription *sub;
	char *inbox;    /* "_INBOX.<unique>." */
	size_t inbox_len;
	char *creds_path;
	char *urls_buf;
	int64_t expires_ms;
	atomic_int stopping;
	atomic_uint epoch; /* + 1 per reconnect: every pull request is asked again */
	atomic_int failed;
	atomic_int in_cb; /* delivery callbacks running (simrt_stop waits for them) */
	atomic_int closed; /* on_closed ran (free_rt waits for it) */
	atomic_uint_fast64_t applied, acks, msg_acks, naks, terms, heartbeats, pulls, errors;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static unsigned rnd_next(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

/* Synchronous: a snapshot is rare (actor_migrate, changed actors every
 * snapshot_ms) and the agent core waits for it anyway. */
static int publish_snapshot(void *ctx, const char *subject, const char *msg_id, const char *json, size_t len)
{
	struct sagent *sa = ctx;
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msg_id;
	po.MaxWait = 5000;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&pa, sa->w->js, subject, json, (int)len, &po, &jerr);
	if (s != NATS_OK) {
		atomic_fetch_add(&sa->w->rt->errors, 1);
		log_warn("%s: publish on %s (%s) failed: %s (JetStream error %d)", agent_node_id(sa->a), subject, msg_id,
			 natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	jsPubAck_Destroy(pa);
	return 0;
}

/* nats.c's thread: the outcome of one ack publish of a worker. */
static void on_ack_published(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pa;
	struct worker *w = closure;
	if (pae) {
		const char *id = NULL;
		natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
		log_warn("publish of ack %s failed: %s%s%s", id ? id : "?", natsStatus_GetText(pae->Err),
			 pae->ErrText ? ": " : "", pae->ErrText ? pae->ErrText : "");
		atomic_fetch_add(&w->ack_failed, 1);
	}
	natsMsg_Destroy(msg);
}

/* The agent a command message is for: JetStream delivers it with its stream
 * subject, so it is found from its ack subject, $JS.ACK.<stream>.<consumer>.
 * ... (or, from servers with domains, $JS.ACK.<domain>.<hash>.<stream>.<consumer>. ...). */
static long agent_of_ack(struct simrt *rt, const char *reply)
{
	if (!reply || strncmp(reply, "$JS.ACK.", 8) != 0)
		return -1;
	const char *tok[16];
	size_t len[16], n = 0;
	for (const char *p = reply; n < 16;) {
		const char *dot = strchr(p, '.');
		tok[n] = p;
		len[n++] = dot ? (size_t)(dot - p) : strlen(p);
		if (!dot)
			break;
		p = dot + 1;
	}
	size_t ci = n >= 12 ? 5 : 3; /* 9 tokens: the old form; 12 or more: with domain and account hash */
	if (ci >= n || len[ci] < 7 || strncmp(tok[ci], "agent_", 6) != 0)
		return -1;
	char id[80];
	if (len[ci] - 6 >= sizeof(id))
		return -1;
	memcpy(id, tok[ci] + 6, len[ci] - 6);
	id[len[ci] - 6] = '\0';
	size_t lo = 0, hi = rt->n;
	while (lo < hi) { /* rt->by_id is sorted by node id */
		size_t mid = (lo + hi) / 2;
		int c = strcmp(agent_node_id(rt->agents[rt->by_id[mid]].a), id);
		if (c == 0)
			return (long)rt->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* nats.c's delivery thread: hand the message to the worker owning its agent.
 * Statuses of a pull request come on its reply subject, <inbox><agent>.<gen>;
 * commands are found by their ack subject. */
static void on_inbox(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
	(void)nc;
	(void)sub;
	struct simrt *rt = closure;
	atomic_fetch_add(&rt->in_cb, 1);
	if (atomic_load(&rt->stopping)) {
		natsMsg_Destroy(m);
		atomic_fetch_sub(&rt->in_cb, 1);
		return;
	}
	const char *subj = natsMsg_GetSubject(m);
	long idx = -1;
	unsigned long gen = GEN_UNKNOWN;
	if (strncmp(subj, rt->inbox, rt->inbox_len) == 0) {
		char *end = NULL;
		unsigned long i = strtoul(subj + rt->inbox_len, &end, 10);
		if (end && *end == '.') {
			gen = strtoul(end + 1, &end, 10);
			if (*end == '\0' && i < rt->n)
				idx = (long)i;
		}
	} else {
		idx = agent_of_ack(rt, natsMsg_GetReply(m));
	}
	if (idx < 0) {
		log_warn("message on %s (reply %s) is for no agent of this simulator: dropped", subj,
			 natsMsg_GetReply(m) ? natsMsg_GetReply(m) : "none");
		atomic_fetch_add(&rt->errors, 1);
		natsMsg_Destroy(m);
		atomic_fetch_sub(&rt->in_cb, 1);
		return;
	}
	struct worker *w = rt->agents[idx].w;
	pthread_mutex_lock(&w->mu);
	if (w->qn == w->qcap) {
		size_t nc2 = w->qcap ? w->qcap * 2 : 256;
		struct qitem *nq = realloc(w->q, nc2 * sizeof(*nq));
		if (!nq) {
			pthread_mutex_unlock(&w->mu);
			log_error("out of memory: a message for agent %ld dropped (redelivered after ack_wait)", idx);
			atomic_fetch_add(&rt->errors, 1);
			natsMsg_Destroy(m);
			atomic_fetch_sub(&rt->in_cb, 1);
			return;
		}
		w->q = nq;
		w->qcap = nc2;
	}
	static atomic_uint seq;
	w->q[w->qn++] = (struct qitem){m, (uint32_t)idx, (uint32_t)gen, atomic_fetch_add(&seq, 1)};
	if (w->qn == 1)
		pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	atomic_fetch_sub(&rt->in_cb, 1);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct simrt *rt = closure;
	if (!atomic_load(&rt->stopping))
		log_warn("NATS: disconnected; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct simrt *rt = closure;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("NATS: reconnected to %s; asking every agent's consumer again", url);
	/* requests in flight may have been answered while we were away */
	atomic_fetch_add(&rt->epoch, 1);
}

static void on_connected(natsConnection *nc, void *closure)
{
	struct simrt *rt = closure;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("NATS: connected to %s", url);
	atomic_fetch_add(&rt->epoch, 1);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	(void)nc;
	(void)sub;
	struct simrt *rt = closure;
	if (err == NATS_SLOW_CONSUMER)
		log_warn("NATS: slow consumer: the workers fall behind, messages dropped (redelivered after ack_wait)");
	else
		log_warn("NATS: asynchronous error: %s", natsStatus_GetText(err));
	atomic_fetch_add(&rt->errors, 1);
}

static void on_closed(natsConnection *nc, void *closure)
{
	struct simrt *rt = closure;
	if (atomic_load(&rt->stopping)) {
		/* free_rt waits for this before it frees rt: touch nothing after */
		atomic_store(&rt->closed, 1);
		return;
	}
	const char *text = NULL;
	natsStatus s = natsConnection_GetLastError(nc, &text);
	log_error("NATS: the connection is closed for good (%s%s%s); no longer trying: restart lattice-sim",
		  natsStatus_GetText(s), text ? ": " : "", text ? text : "");
	atomic_store(&rt->closed, 1); /* last: free_rt may free rt from here on */
}

static void issue_pull(struct worker *w, struct sagent *sa, int64_t now)
{
	struct simrt *rt = w->rt;
	size_t idx = (size_t)(sa - rt->agents);
	int64_t expires = sa->bound ? rt->expires_ms : UNBOUND_EXPIRES_MS;
	char reply[96], body[96];
	sa->gen++;
	snprintf(reply, sizeof(reply), "%s%zu.%u", rt->inbox, idx, sa->gen);
	int blen = snprintf(body, sizeof(body), "{\"batch\":%d,\"expires\":%lld}", PULL_BATCH,
			    (long long)expires * 1000000LL);
	natsStatus s = natsConnection_PublishRequest(rt->nc, sa->pull_subj, reply, body, blen);
	sa->delivered = 0;
	if (s != NATS_OK) {
		sa->outstanding = 0;
		sa->next_pull = now + 500;
		log_debug("%s: pull request not sent: %s", agent_node_id(sa->a), natsStatus_GetText(s));
		return;
	}
	atomic_fetch_add(&rt->pulls, 1);
	sa->outstanding = 1;
	sa->pull_deadline = now + expires + (sa->bound ? DEADLINE_GRACE_MS : UNBOUND_GRACE_MS);
}

/* The request failed or the consumer is not there: ask again in 250-750 ms. */
static void pull_backoff(struct worker *w, struct sagent *sa, int64_t now)
{
	sa->outstanding = 0;
	sa->next_pull = now + 250 + (int64_t)(rnd_next(&w->rnd) % 500);
}

static void handle_status(struct worker *w, struct sagent *sa, natsMsg *m, const char *status, int64_t now)
{
	const char *desc = NULL;
	natsMsgHeader_Get(m, "Description", &desc);
	int code = atoi(status);
	switch (code) {
	case 408: /* expired (or the consumer went away mid-request): ask again */
		if (!sa->bound)
			log_info("%s: bound to consumer %s", agent_node_id(sa->a), agent_consumer(sa->a));
		sa->bound = 1;
		sa->missing_logged = 0;
		sa->outstanding = 0;
		sa->next_pull = now;
		break;
	case 404: /* no messages (a no_wait request): ask again */
		sa->bound = 1;
		sa->outstanding = 0;
		sa->next_pull = now + 100;
		break;
	case 100: /* idle heartbeat: none asked for */
		break;
	default: /* 409 consumer deleted / max waiting / leadership change, 503 no responders, ... */
		if (sa->bound || !sa->missing_logged)
			log_info("%s: pull request on %s: %d %s; asking again soon", agent_node_id(sa->a),
				 agent_consumer(sa->a), code, desc ? desc : "");
		sa->bound = 0;
		sa->missing_logged = 1;
		pull_backoff(w, sa, now);
		break;
	}
}

static int cmp_qitem(const void *a, const void *b)
{
	const struct qitem *x = a, *y = b;
	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void settle(struct simrt *rt, natsMsg *m, const char *what)
{
	const char *reply = natsMsg_GetReply(m);
	if (reply && *reply)
		natsConnection_PublishString(rt->nc, reply, what);
}

/* One round of command messages (sorted by agent): apply each with its journal
 * records unsynced, one fsync per agent, every ack published asynchronously
 * and awaited together, then the command messages acked. As lattice-agent's
 * handle_batch: no ack before the fsync of its command; no command message
 * acked before its ack is stored (else NAKed: its redelivery acks again from
 * the journal). */
static void handle_commands(struct worker *w, struct qitem *it, size_t n, int64_t now)
{
	struct simrt *rt = w->rt;
	struct agent_reply *r = calloc(n, sizeof(*r));
	if (!r) {
		log_error("out of memory: %zu command messages left for redelivery", n);
		for (size_t i = 0; i < n; i++)
			natsMsg_Destroy(it[i].m);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct sagent *sa = &rt->agents[it[i].idx];
		uint64_t before = agent_applied_count(sa->a);
		agent_handle_deferred(sa->a, natsMsg_GetData(it[i].m), (size_t)natsMsg_GetDataLength(it[i].m), now,
				      &r[i]);
		atomic_fetch_add(&rt->applied, agent_applied_count(sa->a) - before);
		if (r[i].verdict == AGENT_ACK)
			sa->touched = 1;
	}
	for (size_t i = 0; i < n; i++) {
		struct sagent *sa = &rt->agents[it[i].idx];
		if (!sa->touched)
			continue;
		sa->touched = 0;
		char err[256];
		if (agent_sync(sa->a, err, sizeof(err)) < 0) {
			/* fsyncgate: a failed fsync may have dropped the pages. Nothing of
			 * this round is acked; the process must exit (simrt_failed). */
			log_error("%s: journal: %s: lattice-sim stops without acking; restart it (the journals are the "
				  "truth, and the unacked commands are redelivered)",
				  agent_node_id(sa->a), err);
			atomic_store(&rt->failed, 1);
			for (size_t j = 0; j < n; j++) {
				agent_reply_release(&r[j]);
				natsMsg_Destroy(it[j].m);
			}
			free(r);
			return;
		}
	}
	atomic_store(&w->ack_failed, 0);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	int sent = 0;
	for (size_t i = 0; i < n; i++) {
		if (r[i].verdict != AGENT_ACK)
			continue;
		struct sagent *sa = &rt->agents[it[i].idx];
		natsMsg *am = NULL;
		natsStatus s = natsMsg_Create(&am, agent_subject_ack(sa->a), NULL, r[i].ack, (int)strlen(r[i].ack));
		if (s == NATS_OK)
			s = natsMsgHeader_Set(am, "Nats-Msg-Id", r[i].ack_msg_id);
		if (s == NATS_OK)
			s = js_PublishMsgAsync(w->js, &am, &po);
		natsMsg_Destroy(am); /* NULL when the library took it */
		if (s != NATS_OK) {
			log_warn("%s: publish of ack %s failed: %s", agent_node_id(sa->a), r[i].ack_msg_id,
				 natsStatus_GetText(s));
			atomic_fetch_add(&w->ack_failed, 1);
		}
		sent++;
	}
	if (sent) {
		jsPubOptions wo;
		jsPubOptions_Init(&wo);
		wo.MaxWait = 6000; /* past every publish's own MaxWait */
		natsStatus s = js_PublishAsyncComplete(w->js, &wo);
		if (s != NATS_OK) {
			log_warn("acks of %d commands: %s", sent, natsStatus_GetText(s));
			atomic_fetch_add(&w->ack_failed, 1);
		}
	}
	int failed = atomic_load(&w->ack_failed) > 0;
	if (failed)
		atomic_fetch_add(&rt->errors, 1);
	else
		atomic_fetch_add(&rt->acks, (uint64_t)sent);
	for (size_t i = 0; i < n; i++) {
		struct sagent *sa = &rt->agents[it[i].idx];
		switch (r[i].verdict) {
		case AGENT_TERM:
			log_warn("%s: command message %s: %s: terminated (not redelivered)", agent_node_id(sa->a),
				 natsMsg_GetReply(it[i].m), r[i].error ? r[i].error : "unreadable");
			settle(rt, it[i].m, "+TERM");
			atomic_fetch_add(&rt->terms, 1);
			break;
		case AGENT_RETRY:
			settle(rt, it[i].m, "-NAK {\"delay\":1000000000}");
			atomic_fetch_add(&rt->naks, 1);
			break;
		case AGENT_ACK:
			if (failed) {
				agent_note_error(sa->a, now);
				settle(rt, it[i].m, "-NAK {\"delay\":1000000000}");
				atomic_fetch_add(&rt->naks, 1);
				break;
			}
			settle(rt, it[i].m, "+ACK");
			atomic_fetch_add(&rt->msg_acks, 1);
			log_info("%s: acked command %s: %s%s", agent_node_id(sa->a), r[i].command_id,
				 r[i].ok ? "ok" : "error: ", r[i].ok ? "" : r[i].error);
			break;
		}
		agent_reply_release(&r[i]);
		natsMsg_Destroy(it[i].m);
	}
	free(r);
}

/* A round of queued messages: statuses steer the pull requests, commands are
 * handled together. */
static void handle_queued(struct worker *w, struct qitem *it, size_t n, int64_t now)
{
	struct simrt *rt = w->rt;
	qsort(it, n, sizeof(*it), cmp_qitem);
	size_t nc = 0;
	for (size_t i = 0; i < n; i++) {
		struct sagent *sa = &rt->agents[it[i].idx];
		const char *status = NULL;
		if (natsMsg_GetDataLength(it[i].m) == 0 && natsMsgHeader_Get(it[i].m, "Status", &status) == NATS_OK &&
		    status) {
			if (it[i].gen == sa->gen)
				handle_status(w, sa, it[i].m, status, now);
			else if (atoi(status) == 408 && !sa->bound)
				/* a late answer of an older request: the consumer exists
				 * (the next request then waits the full expiry) */
				sa->bound = 1;
			natsMsg_Destroy(it[i].m);
			continue;
		}
		/* A command (of the current request, or of an older one still
		 * delivering: handled all the same). */
		if (sa->outstanding) {
			if (!sa->bound)
				log_info("%s: bound to consumer %s", agent_node_id(sa->a), agent_consumer(sa->a));
			sa->bound = 1;
			if (++sa->delivered >= PULL_BATCH) {
				sa->outstanding = 0; /* used up: the next one now */
				sa->next_pull = now;
			}
		}
		it[nc++] = it[i];
	}
	if (nc)
		handle_commands(w, it, nc, now);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct simrt *rt = w->rt;
	struct qitem *batch = NULL;
	size_t bcap = 0;
	for (;;) {
		int64_t now = mono_ms();
		/* what is due among its agents, and when the next thing is */
		int connected = natsConnection_Status(rt->nc) == NATS_CONN_STATUS_CONNECTED;
		unsigned ep = atomic_load(&rt->epoch);
		int reissue = ep != w->epoch;
		w->epoch = ep;
		int64_t wake = now + 500;
		for (size_t i = w->first; i < w->first + w->n && !atomic_load(&rt->failed); i++) {
			struct sagent *sa = &rt->agents[i];
			if (now >= sa->next_hb) {
				if (connected) {
					char *hb = agent_heartbeat(sa->a, now, 0, 0);
					if (hb) {
						natsStatus s = natsConnection_PublishString(rt->nc, agent_subject_hb(sa->a), hb);
						if (s == NATS_OK)
							atomic_fetch_add(&rt->heartbeats, 1);
						free(hb);
					}
				}
				sa->next_hb += rt->sc->heartbeat_ms;
				if (sa->next_hb <= now) /* fell behind: no burst */
					sa->next_hb = now + rt->sc->heartbeat_ms;
			}
			if (now >= sa->next_tick) {
				agent_tick(sa->a, now);
				sa->next_tick = now + 250;
			}
			if (reissue) {
				sa->outstanding = 0;
				sa->next_pull = now;
			}
			if (connected && ((!sa->outstanding && now >= sa->next_pull) ||
					  (sa->outstanding && now >= sa->pull_deadline))) {
				if (sa->outstanding && sa->bound)
					log_debug("%s: pull request unanswered; asking again", agent_node_id(sa->a));
				issue_pull(w, sa, now);
			}
			int64_t due = sa->next_hb < sa->next_tick ? sa->next_hb : sa->next_tick;
			int64_t p = sa->outstanding ? sa->pull_deadline : sa->next_pull;
			if (p < due)
				due = p;
			if (due < wake)
				wake = due;
		}
		if (!connected && wake < now + 100)
			wake = now + 100;
		/* Coarse: at most one wake-up per 5 ms, handling every agent that
		 * became due since, so 2,000 agents beating each second do not cost
		 * 2,000 wake-ups (a heartbeat is at most ~5 ms late). */
		if (wake < now + 5)
			wake = now + 5;
		pthread_mutex_lock(&w->mu);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t delta = wake - now;
		ts.tv_sec += delta / 1000;
		ts.tv_nsec += (delta % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		while (w->qn == 0 && !atomic_load(&rt->stopping))
			if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0)
				break;
		int stop = atomic_load(&rt->stopping);
		size_t n = w->qn < CHUNK ? w->qn : CHUNK;
		if (n > bcap) {
			struct qitem *nb = realloc(batch, CHUNK * sizeof(*nb));
			if (nb) {
				batch = nb;
				bcap = CHUNK;
			} else {
				n = 0;
			}
		}
		if (n) { /* (memcpy of NULL is undefined even for 0 bytes) */
			memcpy(batch, w->q, n * sizeof(*batch));
			memmove(w->q, w->q + n, (w->qn - n) * sizeof(*w->q));
			w->qn -= n;
		}
		pthread_mutex_unlock(&w->mu);
		if (stop || atomic_load(&rt->failed)) {
			for (size_t i = 0; i < n; i++)
				natsMsg_Destroy(batch[i].m);
			if (stop)
				break;
			continue;
		}
		if (n)
			handle_queued(w, batch, n, mono_ms());
	}
	free(batch);
	return NULL;
}

/* mkdir -p. */
static int make_dir(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		errno = ENOTDIR;
	}
	return -1;
}

static void free_rt(struct simrt *rt)
{
	if (rt->sub)
		natsSubscription_Destroy(rt->sub);
	for (size_t i = 0; i < rt->n; i++) {
		if (rt->agents[i].a)
			agent_close(rt->agents[i].a);
		free(rt->agents[i].pull_subj);
	}
	for (int i = 0; i < rt->nw; i++) {
		struct worker *w = &rt->workers[i];
		jsCtx_Destroy(w->js);
		for (size_t j = 0; j < w->qn; j++)
			natsMsg_Destroy(w->q[j].m);
		free(w->q);
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->cv);
	}
	if (rt->nc) {
		/* nats.c calls on_closed on its own thread after the close: wait
		 * for it (5 s at most), or it would read rt after it is freed. */
		atomic_store(&rt->stopping, 1);
		natsConnection_Close(rt->nc);
		for (int i = 0; i < 5000 && !atomic_load(&rt->closed); i++)
			usleep(1000);
	}
	natsConnection_Destroy(rt->nc);
	natsOptions_Destroy(rt->nopts);
	free(rt->workers);
	free(rt->agents);
	free(rt->by_id);
	free(rt->inbox);
	free(rt->urls_buf);
	free(rt);
}

int simrt_start(struct simrt **out, const struct simrt_scenario *sc, const struct simrt_options *o, char *err,
		size_t errlen)
{
	*out = NULL;
	struct simrt *rt = calloc(1, sizeof(*rt));
	if (!rt)
		return serr(err, errlen, "out of memory");
	rt->sc = sc;
	rt->expires_ms = o->pull_expires_ms > 0 ? o->pull_expires_ms : 30000;
	rt->nw = o->threads > 0 ? o->threads : 1;
	if ((size_t)rt->nw > sc->n_agents)
		rt->nw = (int)sc->n_agents;
	rt->agents = calloc(sc->n_agents, sizeof(*rt->agents));
	rt->workers = calloc((size_t)rt->nw, sizeof(*rt->workers));
	if (!rt->agents || !rt->workers) {
		free_rt(rt);
		return serr(err, errlen, "out of memory");
	}
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		unsigned long long x = (unsigned long long)mono_ms() ^ ((unsigned long long)getpid() << 32);
		memcpy(rnd, &x, sizeof(rnd));
	}
	char uniq[17];
	for (int i = 0; i < 8; i++)
		snprintf(uniq + 2 * i, 3, "%02x", rnd[i]);
	for (int i = 0; i < rt->nw; i++) {
		struct worker *w = &rt->workers[i];
		w->rt = rt;
		w->rnd = (unsigned)rnd[i % 8] * 2654435761u + (unsigned)i;
		pthread_mutex_init(&w->mu, NULL);
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&w->cv, &ca);
		pthread_condattr_destroy(&ca);
		w->first = sc->n_agents * (size_t)i / (size_t)rt->nw;
		w->n = sc->n_agents * (size_t)(i + 1) / (size_t)rt->nw - w->first;
	}

	/* The agents: each its own state dir, sim driver and identity. */
	if (make_dir(o->state_dir) < 0) {
		int e = errno;
		free_rt(rt);
		return serr(err, errlen, "--state-dir %s: cannot create it: %s", o->state_dir, strerror(e));
	}
	int64_t now = mono_ms();
	for (size_t i = 0; i < sc->n_agents; i++) {
		struct sagent *sa = &rt->agents[i];
		sa->w = &rt->workers[0];
		for (int k = 0; k < rt->nw; k++)
			if (i >= rt->workers[k].first && i < rt->workers[k].first + rt->workers[k].n)
				sa->w = &rt->workers[k];
		char id[96], dir[4096 + 100], inst[17];
		const struct simrt_group *g = simrt_scenario_node(sc, i, id, sizeof(id));
		snprintf(dir, sizeof(dir), "%s/%s", o->state_dir, id);
		if (make_dir(dir) < 0) {
			int e = errno;
			free_rt(rt);
			return serr(err, errlen, "state dir %s: cannot create it: %s", dir, strerror(e));
		}
		snprintf(inst, sizeof(inst), "%s", uniq);
		snprintf(inst + 8, sizeof(inst) - 8, "%08x", (unsigned)i & 0xffffffffu); /* unique per agent and per start */
		struct agent_config cfg = {
			.lattice = sc->lattice,
			.node_id = id,
			.region = g->region,
			.labels = g->labels,
			.n_labels = g->n_labels,
			.cpu_capacity = g->cpu_capacity,
			.memory_mb = g->memory_mb,
			.agent_version = o->agent_version,
			.agent_instance = inst,
			.snapshot_interval_ms = sc->snapshot_ms,
			.usage_from_requests = 1,
		};
		struct agent_io io = {.ctx = sa, .wall_ms = wall_ms, .publish_snapshot = publish_snapshot};
		struct driver *drv = driver_sim_new();
		char aerr[512];
		if (!drv || agent_open(&sa->a, &cfg, &io, drv, dir, now, aerr, sizeof(aerr)) < 0) {
			sa->a = NULL;
			free_rt(rt);
			return serr(err, errlen, "agent %s: %s", id, drv ? aerr : "out of memory");
		}
		rt->n = i + 1;
		size_t sl = strlen(agent_cmd_stream(sa->a)) + strlen(agent_consumer(sa->a)) + 40;
		if (!(sa->pull_subj = malloc(sl))) {
			free_rt(rt);
			return serr(err, errlen, "out of memory");
		}
		snprintf(sa->pull_subj, sl, "$JS.API.CONSUMER.MSG.NEXT.%s.%s", agent_cmd_stream(sa->a),
			 agent_consumer(sa->a));
	}
	/* The index by node id that routes command messages. */
	struct idpair { const char *id; size_t idx; } *pairs = calloc(rt->n, sizeof(*pairs));
	rt->by_id = calloc(rt->n, sizeof(*rt->by_id));
	if (!pairs || !rt->by_id) {
		free(pairs);
		free_rt(rt);
		return serr(err, errlen, "out of memory");
	}
	for (size_t i = 0; i < rt->n; i++)
		pairs[i] = (struct idpair){agent_node_id(rt->agents[i].a), i};
	qsort(pairs, rt->n, sizeof(*pairs), cmp_str); /* the id is the first member */
	for (size_t i = 0; i < rt->n; i++)
		rt->by_id[i] = pairs[i].idx;
	free(pairs);
	/* Heartbeats spread evenly over one interval (plus jitter), so 2,000
	 * agents do not beat in the same millisecond; pulls likewise over 1 s. */
	now = mono_ms();
	unsigned jr = rnd[0] | (unsigned)rnd[1] << 8;
	for (size_t i = 0; i < rt->n; i++) {
		struct sagent *sa = &rt->agents[i];
		sa->next_hb = now + (int64_t)((uint64_t)rt->sc->heartbeat_ms * i / rt->n) +
			      (int64_t)(rnd_next(&jr) % 5);
		sa->next_tick = now + (int64_t)(250 * i / rt->n);
		sa->next_pull = now + (int64_t)(1000 * i / rt->n);
	}

	/* NATS: one connection for everything, reconnecting forever. */
	size_t il = strlen(uniq) + 16;
	rt->inbox = malloc(il);
	rt->urls_buf = strdup(o->nats);
	if (!rt->inbox || !rt->urls_buf) {
		free_rt(rt);
		return serr(err, errlen, "out of memory");
	}
	snprintf(rt->inbox, il, "_INBOX.%s.", uniq);
	rt->inbox_len = strlen(rt->inbox);
	const char *urls[64];
	int n_urls = 0;
	for (char *save = NULL, *u = strtok_r(rt->urls_buf, ",", &save); u && n_urls < 64;
	     u = strtok_r(NULL, ",", &save))
		if (*u)
			urls[n_urls++] = u;
	natsStatus s = n_urls ? natsOptions_Create(&rt->nopts) : NATS_INVALID_ARG;
	if (s == NATS_OK)
		s = natsOptions_SetServers(rt->nopts, urls, n_urls);
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(rt->nopts, o->creds, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(rt->nopts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(rt->nopts, 500);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(rt->nopts, true, on_connected, rt);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(rt->nopts, on_disconnected, rt);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(rt->nopts, on_reconnected, rt);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(rt->nopts, on_error, rt);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(rt->nopts, on_closed, rt);
	if (s == NATS_OK)
		s = natsOptions_SetName(rt->nopts, "lattice-sim");
	/* Heartbeats while disconnected are not kept for later (see the worker). */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectBufSize(rt->nopts, 8 * 1024 * 1024);
	if (s != NATS_OK) {
		free_rt(rt);
		return serr(err, errlen, "--nats '%s': %s", o->nats, n_urls ? natsStatus_GetText(s) : "no URL");
	}
	s = natsConnection_Connect(&rt->nc, rt->nopts);
	if (s == NATS_OK) {
		char url[256] = "";
		natsConnection_GetConnectedUrl(rt->nc, url, sizeof(url));
		log_info("NATS: connected to %s", url);
	} else if (s == NATS_NOT_YET_CONNECTED) {
		log_warn("NATS: %s not reachable yet; retrying in the background", o->nats);
	} else {
		rt->nc = NULL;
		free_rt(rt);
		return serr(err, errlen, "NATS %s: %s", o->nats, natsStatus_GetText(s));
	}
	for (int i = 0; i < rt->nw; i++) {
		struct worker *w = &rt->workers[i];
		jsOptions jo;
		jsOptions_Init(&jo);
		jo.Wait = 5000;
		jo.PublishAsync.AckHandler = on_ack_published;
		jo.PublishAsync.AckHandlerClosure = w;
		jo.PublishAsync.MaxPending = CHUNK;
		if ((s = natsConnection_JetStream(&w->js, rt->nc, &jo)) != NATS_OK) {
			free_rt(rt);
			return serr(err, errlen, "JetStream: %s", natsStatus_GetText(s));
		}
	}
	char wild[64];
	snprintf(wild, sizeof(wild), "%s>", rt->inbox);
	s = natsConnection_Subscribe(&rt->sub, rt->nc, wild, on_inbox, rt);
	/* One subscription carries every agent's commands: no pending limit of
	 * 65,536 messages that a backlog could hit (drops mean redeliveries). */
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(rt->sub, -1, -1);
	if (s != NATS_OK) {
		free_rt(rt);
		return serr(err, errlen, "subscribe %s: %s", wild, natsStatus_GetText(s));
	}
	for (int i = 0; i < rt->nw; i++) {
		if (pthread_create(&rt->workers[i].th, NULL, worker_main, &rt->workers[i]) != 0) {
			atomic_store(&rt->stopping, 1);
			for (int k = 0; k < i; k++) {
				pthread_mutex_lock(&rt->workers[k].mu);
				pthread_cond_signal(&rt->workers[k].cv);
				pthread_mutex_unlock(&rt->workers[k].mu);
				pthread_join(rt->workers[k].th, NULL);
			}
			free_rt(rt);
			return serr(err, errlen, "cannot start a worker thread");
		}
		rt->workers[i].started = 1;
	}
	*out = rt;
	return 0;
}

void simrt_get_stats(struct simrt *rt, struct simrt_stats *st)
{
	*st = (struct simrt_stats){0};
	st->agents = rt->n;
	for (size_t i = 0; i < rt->n; i++)
		st->bound += atomic_load(&rt->agents[i].bound) != 0;
	st->applied = atomic_load(&rt->applied);
	st->acks = atomic_load(&rt->acks);
	st->msg_acks = atomic_load(&rt->msg_acks);
	st->naks = atomic_load(&rt->naks);
	st->terms = atomic_load(&rt->terms);
	st->heartbeats = atomic_load(&rt->heartbeats);
	st->pulls = atomic_load(&rt->pulls);
	st->errors = atomic_load(&rt->errors);
}

int simrt_failed(struct simrt *rt)
{
	return atomic_load(&rt->failed);
}

void simrt_stop(struct simrt *rt)
{
	if (!rt)
		return;
	atomic_store(&rt->stopping, 1);
	/* no new deliveries: the workers then drain nothing more */
	if (rt->sub)
		natsSubscription_Unsubscribe(rt->sub);
	while (atomic_load(&rt->in_cb) > 0) /* a callback in flight may still queue */
		usleep(1000);
	for (int i = 0; i < rt->nw; i++) {
		struct worker *w = &rt->workers[i];
		if (!w->started)
			continue;
		pthread_mutex_lock(&w->mu);
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->th, NULL);
	}
	free_rt(rt);
}
