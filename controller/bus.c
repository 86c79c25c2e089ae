#include "bus.h"

#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "tswait.h"

#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
/* Heartbeats waiting for the loop; beyond this they are dropped (counted): a
 * loop that far behind is better off without them than out of memory. */
#define BUS_EVENTS_MAX 100000
/* Heartbeats nats.c holds for on_heartbeat to decode; beyond this it drops
 * them (counted in on_heartbeat). */
#define BUS_HB_PENDING_MAX 65536
/* A set-up that failed (NATS away, a stream with contradicting settings) is
 * tried again after this long. */
#define BUS_RETRY_MS 10000
/* The first retry of a set-up that failed for a passing reason (JetStream not
 * ready yet after a restart, a timeout): then doubling up to BUS_RETRY_MS. */
#define BUS_RETRY_MIN_MS 250
/* How long one JetStream API call may take. */
#define BUS_JS_WAIT_MS 5000

enum job_kind { JOB_SETUP, JOB_CONSUMER_ADD, JOB_CONSUMER_DEL, JOB_UNLEAD, JOB_PUBLISH, JOB_CORE };

struct bus_job {
	enum job_kind kind;
	uint64_t epoch;
	char **nodes; /* JOB_SETUP: every node id; else one */
	size_t nnodes;
	struct bus_cmd *cmds; /* JOB_PUBLISH, JOB_CORE (no id) */
	size_t ncmds;
	struct bus_job *next;
};

enum ev_kind { EV_HB, EV_PUBLISHED, EV_ACK, EV_SNAP };

struct bus_event {
	enum ev_kind kind;
	struct proto_hb *hb;   /* EV_HB */
	struct proto_ack *ack; /* EV_ACK */
	struct proto_snap *snap; /* EV_SNAP */
	void *msg;             /* EV_ACK, EV_SNAP: a struct bus_msg (bus_msg_done) */
	char *id, *err;        /* EV_PUBLISHED (err NULL: ok) */
	int64_t at_ms;
	struct bus_event *next;
};

static const char *const subject_names[BUS_SUBJECTS] = {"hb", "ack", "snap"};

const char *bus_subject_name(enum bus_subject s)
{
	return (unsigned)s < BUS_SUBJECTS ? subject_names[s] : "unknown";
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void cmds_free(struct bus_cmd *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].id);
		free(c[i].subject);
		free(c[i].body);
	}
	free(c);
}

static void job_free(struct bus_job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->nnodes; i++)
		free(j->nodes[i]);
	free(j->nodes);
	cmds_free(j->cmds, j->ncmds);
	free(j);
}

static void event_free(struct bus_event *ev)
{
	if (ev->hb) {
		proto_hb_free(ev->hb);
		free(ev->hb);
	}
	if (ev->ack) {
		proto_ack_free(ev->ack);
		free(ev->ack);
	}
	if (ev->snap) {
		proto_snap_free(ev->snap);
		free(ev->snap);
	}
	bus_msg_done(ev->msg, false); /* not handed over: JetStream redelivers it */
	free(ev->id);
	free(ev->err);
	free(ev);
}

/* Queues ev for the loop (taken). Heartbeats beyond BUS_EVENTS_MAX are
 * dropped and counted (overloaded); publish outcomes and acks never are (each
 * is one the loop awaits, and their number is bounded by what is in flight).
 * Returns false when ev was dropped (and freed). */
static bool post_event(struct bus *b, struct bus_event *ev)
{
	pthread_mutex_lock(&b->lock);
	bool full = ev->kind == EV_HB && b->nev >= BUS_EVENTS_MAX;
	bool keep = ev->kind != EV_HB || (b->leading && !full);
	if (keep) {
		ev->next = NULL;
		if (b->ev_tail)
			b->ev_tail->next = ev;
		else
			b->ev_head = ev;
		b->ev_tail = ev;
		b->nev++;
	}
	pthread_mutex_unlock(&b->lock);
	if (!keep) {
		if (full) {
			char subject[128], why[128];
			proto_subject(subject, sizeof(subject), b->cfg->lattice, "hb", ev->hb->profile.id);
			snprintf(why, sizeof(why), "the leader's loop is behind: %d heartbeats wait for it", BUS_EVENTS_MAX);
			bus_dropped(b, BUS_SUBJ_HB, PROTO_OVERLOADED, subject, why);
		}
		event_free(ev);
		return false;
	}
	uv_async_send(&b->wake);
	return true;
}

/* Loop thread: queue a job for the worker. Out of memory: the job is lost and
 * the next set-up (on reconnect, retry or leadership) repairs it. */
static void push_job(struct bus *b, enum job_kind kind, const char *const *nodes, size_t n)
{
	struct bus_job *j = calloc(1, sizeof(*j));
	if (j == NULL || (n && (j->nodes = calloc(n, sizeof(char *))) == NULL)) {
		log_error("nats: out of memory queueing a job");
		free(j);
		return;
	}
	j->kind = kind;
	for (size_t i = 0; i < n; i++) {
		if ((j->nodes[i] = strdup(nodes[i])) == NULL) {
			log_error("nats: out of memory queueing a job");
			job_free(j);
			return;
		}
		j->nnodes = i + 1;
	}
	pthread_mutex_lock(&b->lock);
	j->epoch = b->lead_epoch;
	if (b->jobs_tail)
		b->jobs_tail->next = j;
	else
		b->jobs_head = j;
	b->jobs_tail = j;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* ---- NATS callbacks (nats.c threads) ----------------------------------------------------- */

void bus_dropped(struct bus *b, enum bus_subject subj, enum proto_drop why, const char *subject, const char *msg)
{
	atomic_fetch_add(&b->stats.dropped[subj][why], 1);
	/* One line a second at most: a flood of bad messages must not become a
	 * flood of log lines. */
	int64_t now = mono_ms(), last = atomic_load(&b->drop_logged_ms);
	uint64_t quiet = atomic_fetch_add(&b->drops_unlogged, 1);
	if (now - last < 1000 || !atomic_compare_exchange_strong(&b->drop_logged_ms, &last, now))
		return;
	atomic_fetch_sub(&b->drops_unlogged, quiet + 1);
	if (quiet > 0)
		log_warn("nats: %s message on %.200s dropped (%s): %s (and %llu more dropped in the last second)",
			 bus_subject_name(subj), subject, proto_drop_name(why), msg, (unsigned long long)quiet);
	else
		log_warn("nats: %s message on %.200s dropped (%s): %s", bus_subject_name(subj), subject,
			 proto_drop_name(why), msg);
}

static void on_heartbeat(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	(void)nc;
	struct bus *b = closure;
	const char *subject = natsMsg_GetSubject(msg);
	/* Heartbeats nats.c dropped because this callback fell behind (more than
	 * the subscription's pending limits): counted here, as the next message
	 * is delivered (a drop leaves the pending queue full, so one comes). */
	int64_t lost = 0;
	if (natsSubscription_GetDropped(sub, &lost) == NATS_OK) {
		int64_t seen = atomic_exchange(&b->hb_lost_seen, lost);
		if (lost > seen) {
			char why[160];
			snprintf(why, sizeof(why), "%lld heartbeats more than the leader decodes (%d or 64 MiB wait already)",
				 (long long)(lost - seen), BUS_HB_PENDING_MAX);
			/* bus_dropped counts one of them */
			atomic_fetch_add(&b->stats.dropped[BUS_SUBJ_HB][PROTO_OVERLOADED], (uint64_t)(lost - seen - 1));
			bus_dropped(b, BUS_SUBJ_HB, PROTO_OVERLOADED, subject, why);
		}
	}
	char err[256];
	struct proto_hb *hb = calloc(1, sizeof(*hb));
	enum proto_drop rc = hb == NULL ? PROTO_MALFORMED
					: proto_hb_decode(b->cfg->lattice, subject, natsMsg_GetData(msg),
							  (size_t)natsMsg_GetDataLength(msg), hb, err, sizeof(err));
	if (hb == NULL)
		snprintf(err, sizeof(err), "out of memory");
	if (rc != PROTO_OK) {
		bus_dropped(b, BUS_SUBJ_HB, rc, subject, err);
		free(hb);
		natsMsg_Destroy(msg);
		return;
	}
	natsMsg_Destroy(msg);
	struct bus_event *ev = calloc(1, sizeof(*ev));
	if (ev == NULL) {
		proto_hb_free(hb);
		free(hb);
		return;
	}
	ev->kind = EV_HB;
	ev->hb = hb;
	ev->at_ms = mono_ms();
	if (!post_event(b, ev))
		return;
	atomic_fetch_add(&b->stats.heartbeats, 1);
}

static void on_connected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct bus *b = closure;
	atomic_store(&b->stats.connected, 1);
	log_info("nats: connected");
	pthread_mutex_lock(&b->lock);
	b->retry_at_ms = 1; /* the leader's set-up, now */
	b->retry_delay_ms = 0;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	(void)nc;
	struct bus *b = closure;
	if (atomic_exchange(&b->stats.connected, 0))
		log_warn("nats: disconnected; reconnecting in the background");
	/* Nothing is published or fetched until the set-up after the reconnect:
	 * a publication now would wait in nats.c's buffer and time out. */
	atomic_store(&b->stats.streams_ok, 0);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	struct bus *b = closure;
	atomic_fetch_add(&b->stats.reconnects, 1);
	on_connected(nc, closure);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	(void)sub;
	struct bus *b = closure;
	/* A slow consumer is the heartbeat subscription (the only one with a
	 * callback) losing messages: on_heartbeat counts and logs them, one line
	 * a second at most; nats.c would say it here again and again. */
	if (err == NATS_SLOW_CONSUMER)
		return;
	const char *text = NULL;
	if (err == NATS_CONNECTION_AUTH_FAILED && natsConnection_GetLastError(nc, &text) == err)
		log_warn("nats: the server refused latticed's credentials (%s); retrying: check --nats-creds (%s)", text,
			 b->cfg->nats_creds[0] ? b->cfg->nats_creds : "none given");
	else
		log_warn("nats: %s", natsStatus_GetText(err));
}

static int split_urls(char *buf, const char **urls, int max);

/* One plain connection attempt (no retry), to learn why the bus's connection
 * was closed: nats.c before 3.12 closes a connection whose first attempt
 * reached a server that then refused it (bad credentials, TLS) as "no server
 * available", forgetting the server's answer. why gets that answer. */
static natsStatus probe(const struct bus *b, char *why, size_t whylen)
{
	char *buf = strdup(b->cfg->nats);
	const char *urls[32];
	int n = buf ? split_urls(buf, urls, 32) : -1;
	natsOptions *o = NULL;
	natsConnection *nc = NULL;
	natsStatus s = n > 0 ? natsOptions_Create(&o) : NATS_NO_MEMORY;
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, urls, n);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(o, false);
	if (s == NATS_OK && b->cfg->nats_creds[0])
		s = natsOptions_SetUserCredentialsFromFiles(o, b->cfg->nats_creds, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, o);
	const char *last = s == NATS_OK ? NULL : nats_GetLastError(NULL);
	const char *at = last ? strstr(last, "): ") : NULL; /* "(conn.c:1905): Authorization Violation" */
	snprintf(why, whylen, "%s", at ? at + 3 : last ? last : natsStatus_GetText(s));
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	free(buf);
	return s;
}

/* nats.c closes the connection for good when a server refuses the same
 * credentials twice in a row (so at once when they are wrong at start), or a
 * first attempt fails after the TCP connection was made (nats.c < 3.12), or on
 * a server error it does not retry. Nothing connects after that: the log says
 * why and what to do. */
static void on_closed(natsConnection *nc, void *closure)
{
	struct bus *b = closure;
	atomic_store(&b->stats.connected, 0);
	pthread_mutex_lock(&b->lock);
	bool stopping = b->stopping;
	pthread_mutex_unlock(&b->lock);
	if (stopping)
		return; /* our own close (bus_close) */
	const char *text = NULL;
	char why[256];
	natsStatus s = natsConnection_GetLastError(nc, &text);
	snprintf(why, sizeof(why), "%s", text ? text : "");
	if (s != NATS_CONNECTION_AUTH_FAILED) {
		natsStatus ps = probe(b, why, sizeof(why));
		if (ps == NATS_CONNECTION_AUTH_FAILED)
			s = ps;
		else if (ps == NATS_OK)
			snprintf(why, sizeof(why), "%s; a new connection works", natsStatus_GetText(s));
	}
	if (s == NATS_CONNECTION_AUTH_FAILED)
		log_error("nats: %s refused latticed's credentials (%s); no longer trying to connect: check "
			  "--nats-creds (%s) against the account on the server, then restart latticed",
			  b->cfg->nats, why, b->cfg->nats_creds[0] ? b->cfg->nats_creds : "none given");
	else
		log_error("nats: the connection to %s is closed for good (%s); no longer trying to connect: "
			  "restart latticed", b->cfg->nats, why);
}

/* JetStream's answer to one asynchronous publish (nats.c thread). */
static void on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	(void)pa;
	struct bus *b = closure;
	const char *id = NULL;
	natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
	struct bus_event *ev = calloc(1, sizeof(*ev));
	if (ev != NULL && id != NULL && (ev->id = strdup(id)) != NULL) {
		ev->kind = EV_PUBLISHED;
		if (pae != NULL) {
			char e[256];
			snprintf(e, sizeof(e), "%s%s%s", natsStatus_GetText(pae->Err), pae->ErrText ? ": " : "",
				 pae->ErrText ? pae->ErrText : "");
			ev->err = strdup(e);
			if (ev->err == NULL)
				ev->err = strdup("error");
			atomic_fetch_add(&b->stats.publish_errors, 1);
		} else {
			atomic_fetch_add(&b->stats.published, 1);
		}
		post_event(b, ev);
	} else if (ev != NULL) {
		free(ev->id);
		free(ev);
	}
	natsMsg_Destroy(msg);
}

/* Worker: sends a batch of commands; their outcomes come through on_puback. A
 * command that could not even be sent gets its outcome here. */
static void publish(struct bus *b, struct bus_job *j)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = BUS_JS_WAIT_MS; /* no answer by then: an error outcome */
	for (size_t i = 0; i < j->ncmds; i++) {
		struct bus_cmd *c = &j->cmds[i];
		natsMsg *m = NULL;
		natsStatus s = natsMsg_Create(&m, c->subject, NULL, c->body, (int)c->len);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "Nats-Msg-Id", c->id);
		if (s == NATS_OK)
			s = js_PublishMsgAsync(b->pjs, &m, &po);
		natsMsg_Destroy(m); /* NULL when the library took it */
		if (s != NATS_OK) {
			struct bus_event *ev = calloc(1, sizeof(*ev));
			if (ev == NULL)
				continue; /* the outbox retries what never got an outcome */
			ev->kind = EV_PUBLISHED;
			ev->id = c->id;
			c->id = NULL;
			ev->err = strdup(natsStatus_GetText(s));
			atomic_fetch_add(&b->stats.publish_errors, 1);
			post_event(b, ev);
		}
	}
}

/* ---- worker thread ------------------------------------------------------------------------ */

struct want_stream {
	const char *kind;  /* cmd, ack, snap */
	int64_t max_age_ns;
};
static const struct want_stream want_streams[3] = {
	{"cmd", INT64_C(7) * 24 * 3600 * NS_PER_S},
	{"ack", INT64_C(7) * 24 * 3600 * NS_PER_S},
	{"snap", INT64_C(24) * 3600 * NS_PER_S},
};
#define DUP_WINDOW_NS (INT64_C(120) * NS_PER_S)

static const char *retention_name(jsRetentionPolicy r)
{
	return r == js_LimitsPolicy ? "limits" : r == js_InterestPolicy ? "interest" : "workqueue";
}

/* Checks an existing stream against what the protocol needs; 0, or -1 with the
 * contradiction in why. */
static int stream_check(const jsStreamConfig *c, const char *subject, char *why, size_t len)
{
	if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], subject) != 0)
		snprintf(why, len, "subjects are %s%s, lattice needs [%s]", c->SubjectsLen ? c->Subjects[0] : "[]",
			 c->SubjectsLen > 1 ? " and more" : "", subject);
	else if (c->Storage != js_FileStorage)
		snprintf(why, len, "storage is memory, lattice needs file");
	else if (c->Retention != js_LimitsPolicy)
		snprintf(why, len, "retention is %s, lattice needs limits", retention_name(c->Retention));
	else if (c->Duplicates < DUP_WINDOW_NS)
		snprintf(why, len, "the duplicate window is %lld s, lattice needs at least 120 s",
			 (long long)(c->Duplicates / NS_PER_S));
	else
		return 0;
	return -1;
}

static int ensure_stream(struct bus *b, int i)
{
	jsCtx *js = b->js;
	char subject[128];
	proto_subject(subject, sizeof(subject), b->cfg->lattice, want_streams[i].kind, ">");
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetStreamInfo(&si, js, b->streams[i], NULL, &jerr);
	if (s == NATS_OK) {
		char why[256];
		int rc = stream_check(si->Config, subject, why, sizeof(why));
		int64_t replicas = si->Config->Replicas > 0 ? si->Config->Replicas : 1;
		jsStreamInfo_Destroy(si);
		/* Not a contradiction: the stream works, with less (or more) redundancy
		 * than asked. Changing it is the operator's call. */
		if (rc == 0 && replicas != b->cfg->nats_replicas && !b->replicas_warned[i]) {
			log_warn("nats: stream %s has %lld replica(s), --nats-replicas asks %lld; lattice does not change "
				 "an existing stream (nats stream edit %s --replicas %lld)",
				 b->streams[i], (long long)replicas, (long long)b->cfg->nats_replicas, b->streams[i],
				 (long long)b->cfg->nats_replicas);
			b->replicas_warned[i] = true;
		}
		if (rc != 0) {
			atomic_fetch_add(&b->stats.errors_stream_config, 1);
			log_error("nats: stream %s: %s; lattice does not change an existing stream: fix or delete it "
				  "(retrying every %d s)",
				  b->streams[i], why, BUS_RETRY_MS / 1000);
			return -2;
		}
		return 0;
	}
	if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
		atomic_fetch_add(&b->stats.errors_jetstream, 1);
		log_warn("nats: stream %s: %s (%d)", b->streams[i], natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	jsStreamConfig sc;
	jsStreamConfig_Init(&sc);
	const char *subjects[1] = {subject};
	sc.Name = b->streams[i];
	sc.Subjects = subjects;
	sc.SubjectsLen = 1;
	sc.Storage = js_FileStorage;
	sc.Retention = js_LimitsPolicy;
	sc.Duplicates = DUP_WINDOW_NS;
	sc.MaxAge = want_streams[i].max_age_ns;
	sc.Replicas = b->cfg->nats_replicas;
	s = js_AddStream(&si, js, &sc, NULL, &jerr);
	if (s != NATS_OK) {
		atomic_fetch_add(&b->stats.errors_jetstream, 1);
		log_warn("nats: creating stream %s: %s (%d)", b->streams[i], natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	jsStreamInfo_Destroy(si);
	log_info("nats: created stream %s (%s, %lld replica(s))", b->streams[i], subject,
		 (long long)b->cfg->nats_replicas);
	return 0;
}

/* A durable pull consumer: left alone when it exists. */
static int ensure_consumer(struct bus *b, const char *stream, const char *durable, const char *filter,
			   int64_t ack_wait_ns)
{
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetConsumerInfo(&ci, b->js, stream, durable, NULL, &jerr);
	if (s == NATS_OK) {
		jsConsumerInfo_Destroy(ci);
		return 0;
	}
	if (s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
		atomic_fetch_add(&b->stats.errors_jetstream, 1);
		log_warn("nats: consumer %s on %s: %s (%d)", durable, stream, natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	jsConsumerConfig cc;
	jsConsumerConfig_Init(&cc);
	cc.Durable = durable;
	cc.AckPolicy = js_AckExplicit;
	cc.DeliverPolicy = js_DeliverAll;
	cc.AckWait = ack_wait_ns;
	cc.MaxDeliver = -1;
	cc.FilterSubject = filter;
	s = js_AddConsumer(&ci, b->js, stream, &cc, NULL, &jerr);
	if (s != NATS_OK) {
		atomic_fetch_add(&b->stats.errors_jetstream, 1);
		log_warn("nats: creating consumer %s on %s: %s (%d)", durable, stream, natsStatus_GetText(s),
			 (int)jerr);
		return -1;
	}
	jsConsumerInfo_Destroy(ci);
	log_debug("nats: created consumer %s on %s", durable, stream);
	return 0;
}

static int node_consumer(struct bus *b, const char *node, bool add)
{
	char durable[96], filter[128];
	snprintf(durable, sizeof(durable), "agent_%s", node);
	proto_subject(filter, sizeof(filter), b->cfg->lattice, "cmd", node);
	if (add)
		return ensure_consumer(b, b->streams[0], durable, filter, 30 * NS_PER_S);
	jsErrCode jerr = 0;
	natsStatus s = js_DeleteConsumer(b->js, b->streams[0], durable, NULL, &jerr);
	if (s != NATS_OK && s != NATS_NOT_FOUND && jerr != JSConsumerNotFoundErr) {
		log_warn("nats: deleting consumer %s: %s (%d)", durable, natsStatus_GetText(s), (int)jerr);
		return -1;
	}
	return 0;
}

/* The worker's copy of the node ids the leader knows (for a set-up again). */
struct node_set {
	char **ids;
	size_t n, cap;
};

static void set_clear(struct node_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ids[i]);
	free(s->ids);
	memset(s, 0, sizeof(*s));
}

static void set_put(struct node_set *s, const char *id, bool add)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0) {
			if (!add) {
				free(s->ids[i]);
				s->ids[i] = s->ids[--s->n];
			}
			return;
		}
	if (!add)
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		char **ids = realloc(s->ids, cap * sizeof(*ids));
		if (ids == NULL)
			return; /* its consumer is made at the next set-up that has memory */
		s->ids = ids;
		s->cap = cap;
	}
	if ((s->ids[s->n] = strdup(id)) != NULL)
		s->n++;
}

static bool still_leading(struct bus *b, uint64_t epoch)
{
	pthread_mutex_lock(&b->lock);
	bool ok = b->leading && b->lead_epoch == epoch && !b->stopping;
	pthread_mutex_unlock(&b->lock);
	return ok;
}

/* Streams, the controller's consumers, every node's consumer. 0 or -1 (retry). */
static int setup(struct bus *b, const struct node_set *nodes, uint64_t epoch)
{
	if (!atomic_load(&b->stats.connected))
		return -1;
	for (int i = 0; i < 3; i++) {
		int rc = ensure_stream(b, i);
		if (rc != 0)
			return rc;
	}
	char filter[128];
	proto_subject(filter, sizeof(filter), b->cfg->lattice, "ack", ">");
	if (ensure_consumer(b, b->streams[1], "controller_ack", filter, 10 * NS_PER_S) != 0)
		return -1;
	proto_subject(filter, sizeof(filter), b->cfg->lattice, "snap", ">");
	if (ensure_consumer(b, b->streams[2], "controller_snap", filter, 10 * NS_PER_S) != 0)
		return -1;
	for (size_t i = 0; i < nodes->n; i++) {
		if (!still_leading(b, epoch))
			return 0;
		if (node_consumer(b, nodes->ids[i], true) != 0)
			return -1;
	}
	if (!atomic_exchange(&b->stats.streams_ok, 1))
		log_info("nats: streams %s, %s, %s and %zu agent consumers ready", b->streams[0], b->streams[1],
			 b->streams[2], nodes->n);
	return 0;
}

static void hb_subscribe(struct bus *b, bool on)
{
	if (on && b->hb_sub == NULL) {
		char subject[128];
		proto_subject(subject, sizeof(subject), b->cfg->lattice, "hb", "*");
		natsSubscription *sub = NULL;
		atomic_store(&b->hb_lost_seen, 0); /* a new subscription counts from 0 */
		natsStatus s = natsConnection_Subscribe(&sub, b->nc, subject, on_heartbeat, b);
		if (s != NATS_OK) {
			log_warn("nats: subscribing to %s: %s", subject, natsStatus_GetText(s));
			return;
		}
		/* Heartbeats are cheap to lose, costly to hoard (what goes is counted
		 * in on_heartbeat). */
		natsSubscription_SetPendingLimits(sub, BUS_HB_PENDING_MAX, 64 * 1024 * 1024);
		b->hb_sub = sub;
	} else if (!on && b->hb_sub != NULL) {
		natsSubscription_Unsubscribe(b->hb_sub);
		natsSubscription_Destroy(b->hb_sub);
		b->hb_sub = NULL;
	}
}

static void *worker_main(void *arg)
{
	struct bus *b = arg;
	struct node_set nodes = {0};
	bool need_setup = false;
	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->stopping && b->jobs_head == NULL &&
		       !(b->leading && b->retry_at_ms != 0 && b->retry_at_ms <= mono_ms())) {
			if (b->leading && b->retry_at_ms != 0) {
				struct timespec ts = tswait_after(CLOCK_REALTIME, b->retry_at_ms - mono_ms());
				pthread_cond_timedwait(&b->cond, &b->lock, &ts);
			} else {
				pthread_cond_wait(&b->cond, &b->lock);
			}
		}
		if (b->stopping)
			break;
		struct bus_job *j = b->jobs_head;
		if (j) {
			b->jobs_head = j->next;
			if (b->jobs_head == NULL)
				b->jobs_tail = NULL;
		}
		bool leading = b->leading;
		uint64_t epoch = b->lead_epoch;
		if (j == NULL)
			b->retry_at_ms = 0;
		pthread_mutex_unlock(&b->lock);

		if (j != NULL) {
			switch (j->kind) {
			case JOB_SETUP:
				set_clear(&nodes);
				for (size_t i = 0; i < j->nnodes; i++)
					set_put(&nodes, j->nodes[i], true);
				need_setup = true;
				break;
			case JOB_CONSUMER_ADD:
			case JOB_CONSUMER_DEL: {
				bool add = j->kind == JOB_CONSUMER_ADD;
				set_put(&nodes, j->nodes[0], add);
				if (leading && atomic_load(&b->stats.streams_ok) && node_consumer(b, j->nodes[0], add) != 0)
					need_setup = true;
				break;
			}
			case JOB_PUBLISH:
				publish(b, j);
				break;
			case JOB_CORE:
				for (size_t i = 0; i < j->ncmds; i++)
					natsConnection_Publish(b->nc, j->cmds[i].subject, j->cmds[i].body, (int)j->cmds[i].len);
				break;
			case JOB_UNLEAD:
				hb_subscribe(b, false);
				atomic_store(&b->stats.streams_ok, 0);
				set_clear(&nodes);
				need_setup = false;
				break;
			}
			job_free(j);
		} else {
			need_setup = leading; /* connected again, or a retry */
		}
		if (need_setup && leading && still_leading(b, epoch)) {
			hb_subscribe(b, true);
			atomic_store(&b->stats.streams_ok, 0);
			int rc = setup(b, &nodes, epoch);
			need_setup = false;
			pthread_mutex_lock(&b->lock);
			if (rc == 0) {
				b->retry_delay_ms = 0;
			} else if (b->retry_at_ms == 0) {
				/* -2: a stream contradicts lattice's settings, an operator's
				 * fix; anything else may pass in a moment. */
				int64_t d = b->retry_delay_ms ? b->retry_delay_ms * 2 : BUS_RETRY_MIN_MS;
				if (rc == -2 || d > BUS_RETRY_MS)
					d = BUS_RETRY_MS;
				b->retry_delay_ms = d;
				b->retry_at_ms = mono_ms() + d;
				if (rc != -2)
					log_info("nats: set-up failed; retrying in %lld ms", (long long)d);
			}
			pthread_mutex_unlock(&b->lock);
		}
		pthread_mutex_lock(&b->lock);
	}
	pthread_mutex_unlock(&b->lock);
	hb_subscribe(b, false);
	set_clear(&nodes);
	return NULL;
}

/* ---- fetcher threads: agents' acks and snapshots ---------------------------------------- */

/* Decodes an agent's ack or snapshot and posts it to the loop with its
 * message, which is acked once the entry it causes is committed. */
/* A JetStream message handed to the loop (cbs.ack, cbs.snapshot): it came on
 * a plain subscription (fetch_some), so it is acked by publishing +ACK to its
 * reply subject on the connection it came from (bus_msg_done). */
struct bus_msg {
	natsMsg *m;
	natsConnection *nc;
};

static void take(struct bus *b, natsMsg *nm, enum bus_subject subj)
{
	struct bus_msg *m = malloc(sizeof(*m));
	if (m == NULL) {
		natsMsg_Destroy(nm); /* out of memory: JetStream redelivers it */
		return;
	}
	*m = (struct bus_msg){nm, b->nc};
	const char *subject = natsMsg_GetSubject(nm);
	const void *body = natsMsg_GetData(nm);
	size_t len = (size_t)natsMsg_GetDataLength(nm);
	struct bus_event *ev = calloc(1, sizeof(*ev));
	if (ev != NULL && subj == BUS_SUBJ_ACK) {
		ev->kind = EV_ACK;
		ev->ack = calloc(1, sizeof(*ev->ack));
	} else if (ev != NULL) {
		ev->kind = EV_SNAP;
		ev->snap = calloc(1, sizeof(*ev->snap));
	}
	if (ev == NULL || (ev->ack == NULL && ev->snap == NULL)) {
		free(ev);
		bus_msg_done(m, false); /* out of memory: JetStream redelivers it */
		return;
	}
	char err[256];
	enum proto_drop rc =
		ev->ack ? proto_ack_decode(b->cfg->lattice, subject, body, len, ev->ack, err, sizeof(err))
			: proto_snap_decode(b->cfg->lattice, subject, body, len, ev->snap, err, sizeof(err));
	if (rc != PROTO_OK) {
		/* Acked all the same: a bad message redelivered forever helps nobody. */
		bus_dropped(b, subj, rc, subject, err);
		free(ev->ack);
		free(ev->snap);
		free(ev);
		bus_msg_done(m, true);
		return;
	}
	if (ev->ack)
		atomic_fetch_add(&b->stats.acks, 1);
	ev->msg = m;
	post_event(b, ev);
}

/* The fetchers speak JetStream's pull protocol themselves (as lattice-sim
 * does): a request on $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> with a
 * reply inbox of their own, the messages read from a plain synchronous
 * subscription on it. nats.c 3.4.1's natsSubscription_Fetch writes past its
 * array of batch messages when more than half a batch of late messages (of an
 * earlier request that expired on our side first) waits in the subscription:
 * under a flood of acks that corrupted the heap and crashed the leader
 * (lattice-sim's policy-churn scenario; docs/chaos.md). A late message here
 * is just the next one read. */
struct puller {
	natsSubscription *sub;
	char inbox[80];
	char next[300]; /* $JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer> */
};

#define PULL_BATCH 256

/* Subscribes p to an inbox of its own, for durable `name` on stream `stream`. */
static int pull_bind(struct bus *b, struct puller *p, const char *stream, const char *name)
{
	if (p->sub)
		return 0;
	natsInbox *inbox = NULL;
	natsStatus s = natsInbox_Create(&inbox);
	if (s == NATS_OK) {
		snprintf(p->inbox, sizeof(p->inbox), "%s", inbox);
		natsInbox_Destroy(inbox);
		snprintf(p->next, sizeof(p->next), "$JS.API.CONSUMER.MSG.NEXT.%s.%s", stream, name);
		s = natsConnection_SubscribeSync(&p->sub, b->nc, p->inbox);
	}
	/* a backlog of acks must not hit the default pending limit (drops) */
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(p->sub, -1, -1);
	if (s != NATS_OK) {
		log_warn("nats: subscribing for %s: %s", name, natsStatus_GetText(s));
		natsSubscription_Destroy(p->sub);
		p->sub = NULL;
		return -1;
	}
	return 0;
}

static void pull_unbind(struct puller *p)
{
	natsSubscription_Destroy(p->sub); /* the durable stays */
	p->sub = NULL;
}

/* One pull request for up to PULL_BATCH messages, waiting up to timeout_ms;
 * each message to take(). NATS_OK when some came, NATS_TIMEOUT when none. */
static natsStatus fetch_some(struct bus *b, struct puller *p, int timeout_ms, enum bus_subject subj)
{
	char body[96];
	int n = snprintf(body, sizeof(body), "{\"batch\":%d,\"expires\":%lld}", PULL_BATCH,
			 (long long)timeout_ms * 1000000LL);
	natsStatus s = natsConnection_PublishRequest(b->nc, p->next, p->inbox, body, n);
	if (s != NATS_OK)
		return s;
	int64_t deadline = mono_ms() + timeout_ms + 100; /* the server's expiry comes first */
	int got = 0;
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return got ? NATS_OK : NATS_TIMEOUT;
		natsMsg *m = NULL;
		s = natsSubscription_NextMsg(&m, p->sub, left);
		if (s == NATS_TIMEOUT)
			return got ? NATS_OK : NATS_TIMEOUT;
		if (s != NATS_OK)
			return s;
		const char *status = NULL;
		if (natsMsg_GetDataLength(m) == 0 && natsMsgHeader_Get(m, "Status", &status) == NATS_OK && status) {
			int code = atoi(status);
			natsMsg_Destroy(m);
			if (code == 100) /* an idle heartbeat (none asked for) */
				continue;
			/* 404/408: the request (or an earlier one) ended; anything else
			 * (409 consumer deleted, leadership change; 503) is logged */
			if (code != 404 && code != 408)
				log_debug("nats: pull request on %s: status %d", p->next, code);
			return got ? NATS_OK : code == 404 || code == 408 ? NATS_TIMEOUT : NATS_ERR;
		}
		take(b, m, subj);
		if (++got >= PULL_BATCH)
			return NATS_OK;
	}
}

/* One thread per consumer (controller_ack, controller_snap), each with its own
 * fetch of up to 200 ms: a short poll of one between fetches of the other
 * would leave requests open on the server that no one waits for. */
struct fetcher {
	struct bus *b;
	enum bus_subject subj;
};

static void *fetcher_main(void *arg)
{
	struct fetcher *f = arg;
	struct bus *b = f->b;
	bool acks = f->subj == BUS_SUBJ_ACK;
	struct puller pl = {0}, *p = &pl;
	for (;;) {
		pthread_mutex_lock(&b->lock);
		bool stop = b->stopping, leading = b->leading;
		pthread_mutex_unlock(&b->lock);
		if (stop)
			break;
		/* The subscription stays while this replica leads, across reconnects
		 * and set-ups (its durable does): one dropped while its fetch request
		 * is open on the server loses what the server delivers to it until the
		 * consumer's ack wait (10 s) redelivers it. */
		if (!leading || !atomic_load(&b->stats.streams_ok)) {
			if (!leading && p->sub)
				pull_unbind(p);
			struct timespec ts = {0, 20 * 1000000};
			nanosleep(&ts, NULL);
			continue;
		}
		if (pull_bind(b, p, acks ? b->streams[1] : b->streams[2], acks ? "controller_ack" : "controller_snap") !=
		    0) {
			struct timespec ts = {1, 0};
			nanosleep(&ts, NULL);
			continue;
		}
		int64_t t0 = mono_ms();
		natsStatus s = fetch_some(b, p, 200, f->subj);
		/* nats.c before 3.6.1 may answer a fetch with a timeout at once (#631):
		 * never spin on it. */
		if (s != NATS_OK && mono_ms() - t0 < 20) {
			struct timespec ts = {0, 50 * 1000000};
			nanosleep(&ts, NULL);
		}
	}
	if (p->sub)
		pull_unbind(p);
	free(f);
	return NULL;
}

void bus_msg_done(void *msg, bool ok)
{
	struct bus_msg *bm = msg;
	if (bm == NULL)
		return;
	const char *reply = natsMsg_GetReply(bm->m);
	if (ok && reply && *reply)
		natsConnection_PublishString(bm->nc, reply, "+ACK");
	natsMsg_Destroy(bm->m);
	free(bm);
}

/* ---- loop side ---------------------------------------------------------------------------- */

static void on_wake(uv_async_t *h)
{
	struct bus *b = h->data;
	pthread_mutex_lock(&b->lock);
	struct bus_event *ev = b->ev_head;
	b->ev_head = b->ev_tail = NULL;
	b->nev = 0;
	pthread_mutex_unlock(&b->lock);
	while (ev) {
		struct bus_event *next = ev->next;
		switch (ev->kind) {
		case EV_HB:
			b->cbs.heartbeat(b->cbs.arg, ev->hb, ev->at_ms);
			ev->hb = NULL;
			break;
		case EV_PUBLISHED:
			b->cbs.published(b->cbs.arg, ev->id, ev->err == NULL, ev->err);
			break;
		case EV_ACK:
			b->cbs.ack(b->cbs.arg, ev->ack, ev->msg);
			ev->ack = NULL;
			ev->msg = NULL;
			break;
		case EV_SNAP:
			b->cbs.snapshot(b->cbs.arg, ev->snap, ev->msg);
			ev->snap = NULL;
			ev->msg = NULL;
			break;
		}
		event_free(ev);
		ev = next;
	}
}

/* Splits "URL,URL" into the servers array (strings point into buf). */
static int split_urls(char *buf, const char **urls, int max)
{
	int n = 0;
	for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
		if (n == max)
			return -1;
		urls[n++] = t;
	}
	return n;
}

int bus_init(struct bus *b, const struct config *cfg, uv_loop_t *loop, const struct bus_cbs *cbs, char *err,
	     size_t errlen)
{
	memset(b, 0, sizeof(*b));
	b->cfg = cfg;
	b->cbs = *cbs;
	for (int i = 0; i < 3; i++) {
		char kind[8];
		snprintf(kind, sizeof(kind), "%s", want_streams[i].kind);
		for (char *p = kind; *p; p++)
			*p = (char)(*p - 'a' + 'A');
		snprintf(b->streams[i], sizeof(b->streams[i]), "LATTICE_%s_%s", cfg->lattice, kind);
	}
	if (cfg->nats == NULL || cfg->nats[0] == '\0')
		return 0;
	b->enabled = true;
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	if (uv_async_init(loop, &b->wake, on_wake) != 0) {
		snprintf(err, errlen, "nats: uv_async_init failed");
		return -1;
	}
	b->wake.data = b;
	b->wake_init = true;

	char *buf = strdup(cfg->nats);
	const char *urls[32];
	int n = buf ? split_urls(buf, urls, 32) : -1;
	natsOptions *opts = NULL;
	natsStatus s = n <= 0 ? NATS_INVALID_ARG : natsOptions_Create(&opts);
	if (n <= 0) {
		snprintf(err, errlen, "--nats: '%s' is not a list of 1 to 32 URLs", cfg->nats);
		free(buf);
		return -1;
	}
	char name[64];
	snprintf(name, sizeof(name), "latticed-%lld", (long long)cfg->id);
	if (s == NATS_OK)
		s = natsOptions_SetServers(opts, urls, n);
	if (s == NATS_OK)
		s = natsOptions_SetName(opts, name);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 500);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, 2000);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(opts, true, on_connected, b);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(opts, on_disconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(opts, on_error, b);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(opts, on_closed, b);
	if (s == NATS_OK && cfg->nats_creds && cfg->nats_creds[0])
		s = natsOptions_SetUserCredentialsFromFiles(opts, cfg->nats_creds, NULL);
	free(buf);
	if (s != NATS_OK) {
		snprintf(err, errlen, "--nats/--nats-creds: %s (%s)", natsStatus_GetText(s),
			 nats_GetLastError(NULL) ? nats_GetLastError(NULL) : "");
		natsOptions_Destroy(opts);
		return -1;
	}
	b->opts = opts;
	natsConnection *nc = NULL;
	s = natsConnection_Connect(&nc, opts);
	if (s == NATS_OK) {
		atomic_store(&b->stats.connected, 1);
		log_info("nats: connected to %s", cfg->nats);
	} else if (s == NATS_NOT_YET_CONNECTED) {
		log_warn("nats: %s not reachable yet; retrying in the background", cfg->nats);
	} else {
		snprintf(err, errlen, "nats: connecting to %s: %s", cfg->nats, natsStatus_GetText(s));
		return -1;
	}
	b->nc = nc;
	jsCtx *js = NULL;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = BUS_JS_WAIT_MS;
	if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
		snprintf(err, errlen, "nats: JetStream context: %s", natsStatus_GetText(s));
		return -1;
	}
	b->js = js;
	jsOptions_Init(&jo);
	jo.Wait = BUS_JS_WAIT_MS;
	jo.PublishAsync.AckHandler = on_puback;
	jo.PublishAsync.AckHandlerClosure = b;
	jo.PublishAsync.MaxPending = 4096;
	if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK) {
		snprintf(err, errlen, "nats: JetStream context: %s", natsStatus_GetText(s));
		return -1;
	}
	b->pjs = js;
	if (pthread_create(&b->worker, NULL, worker_main, b) != 0) {
		snprintf(err, errlen, "nats: cannot start the worker thread");
		return -1;
	}
	b->worker_started = true;
	for (int i = 0; i < 2; i++) {
		struct fetcher *f = calloc(1, sizeof(*f));
		if (f == NULL) {
			snprintf(err, errlen, "nats: out of memory");
			return -1;
		}
		f->b = b;
		f->subj = i == 0 ? BUS_SUBJ_ACK : BUS_SUBJ_SNAP;
		if (pthread_create(&b->fetchers[i], NULL, fetcher_main, f) != 0) {
			free(f);
			snprintf(err, errlen, "nats: cannot start a fetcher thread");
			return -1;
		}
		b->nfetchers++;
	}
	return 0;
}

void bus_lead(struct bus *b, bool leading, const char *const *nodes, size_t nnodes)
{
	if (!b->enabled)
		return;
	pthread_mutex_lock(&b->lock);
	bool change = b->leading != leading;
	b->leading = leading;
	if (change)
		b->lead_epoch++;
	pthread_mutex_unlock(&b->lock);
	if (!change)
		return;
	if (leading) {
		push_job(b, JOB_SETUP, nodes, nnodes);
	} else {
		push_job(b, JOB_UNLEAD, NULL, 0);
		/* Heartbeats queued for the loop are of no use to a follower. */
		pthread_mutex_lock(&b->lock);
		struct bus_event *ev = b->ev_head;
		b->ev_head = b->ev_tail = NULL;
		b->nev = 0;
		pthread_mutex_unlock(&b->lock);
		while (ev) {
			struct bus_event *next = ev->next;
			event_free(ev); /* an ack's message is not acked: JetStream redelivers it */
			ev = next;
		}
	}
}

static void push_cmds(struct bus *b, enum job_kind kind, struct bus_cmd *cmds, size_t n);

void bus_publish_core(struct bus *b, char **subjects, char **bodies, size_t n)
{
	struct bus_cmd *cmds = b->enabled ? calloc(n ? n : 1, sizeof(*cmds)) : NULL;
	for (size_t i = 0; i < n; i++) {
		if (cmds) {
			cmds[i].subject = subjects[i];
			cmds[i].body = bodies[i];
			cmds[i].len = strlen(bodies[i]);
		} else {
			free(subjects[i]);
			free(bodies[i]);
		}
	}
	free(subjects);
	free(bodies);
	if (cmds)
		push_cmds(b, JOB_CORE, cmds, n);
}

void bus_publish(struct bus *b, struct bus_cmd *cmds, size_t n)
{
	if (!b->enabled) {
		cmds_free(cmds, n);
		return;
	}
	push_cmds(b, JOB_PUBLISH, cmds, n);
}

static void push_cmds(struct bus *b, enum job_kind kind, struct bus_cmd *cmds, size_t n)
{
	struct bus_job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		cmds_free(cmds, n);
		return;
	}
	j->kind = kind;
	j->cmds = cmds;
	j->ncmds = n;
	pthread_mutex_lock(&b->lock);
	j->epoch = b->lead_epoch;
	if (b->jobs_tail)
		b->jobs_tail->next = j;
	else
		b->jobs_head = j;
	b->jobs_tail = j;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

void bus_node(struct bus *b, const char *node_id, bool added)
{
	if (!b->enabled)
		return;
	push_job(b, added ? JOB_CONSUMER_ADD : JOB_CONSUMER_DEL, &node_id, 1);
}

void bus_close(struct bus *b)
{
	if (!b->enabled)
		return;
	pthread_mutex_lock(&b->lock);
	b->stopping = true;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (b->worker_started)
		pthread_join(b->worker, NULL);
	for (int i = 0; i < b->nfetchers; i++)
		pthread_join(b->fetchers[i], NULL);
	if (b->pjs)
		js_PublishAsyncComplete(b->pjs, &(jsPubOptions){.MaxWait = 1000});
	if (b->nc)
		natsConnection_Close(b->nc); /* no callback runs after this returns */
	while (b->jobs_head) {
		struct bus_job *j = b->jobs_head;
		b->jobs_head = j->next;
		job_free(j);
	}
	struct bus_event *ev = b->ev_head;
	while (ev) {
		struct bus_event *next = ev->next;
		event_free(ev);
		ev = next;
	}
	b->ev_head = b->ev_tail = NULL;
	if (b->js)
		jsCtx_Destroy(b->js);
	if (b->pjs)
		jsCtx_Destroy(b->pjs);
	if (b->nc)
		natsConnection_Destroy(b->nc);
	if (b->opts)
		natsOptions_Destroy(b->opts);
	b->js = b->nc = b->opts = b->pjs = NULL;
	if (b->wake_init)
		uv_close((uv_handle_t *)&b->wake, NULL);
	b->enabled = false;
}
