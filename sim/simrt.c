/* simrt — lattice-sim's runtime: see simrt.h. */
#include "simrt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include "journal.h"
#include "log.h"
#include "tswait.h"

static int serr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int serr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
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
	atomic_int queued;  /* its command messages waiting in the worker's queue */
	int missing_logged;
	int64_t pull_deadline, next_pull, next_hb, next_tick;
	int touched;        /* scratch of a round */
	/* Faults (simrt_fault), touched only by the owning worker. */
	int down;           /* DOWN_* */
	int cut;            /* no NATS in or out */
	int64_t ack_delay_ms;
	int life, disk;     /* processes and state dirs so far (history lines) */
};

enum { DOWN_NO, DOWN_FROZEN, DOWN_CRASHED };

struct ctl {
	size_t idx;
	enum simrt_fault f;
	int64_t arg;
};

/* An ack held back by SIMRT_SLOW_ACKS: published when due, then the command
 * message acked. */
struct delayed {
	size_t idx;
	int64_t due;
	natsMsg *m;
	char *ack, *ack_msg_id, *command_id;
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
	struct ctl *ctl; /* queued faults, under mu */
	size_t ctln, ctlcap;
	struct delayed *dl; /* its own only */
	size_t dln, dlcap;
	int paused;      /* under mu: it saw rt->pause and waits */
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
	atomic_int pause;  /* simrt_view: the workers wait */
	char **ids;        /* node id of each agent: routing must not touch an agent core */
	struct hist *hist;
	char *state_dir, *agent_version;
	char uniq[17];
	unsigned inst_base;
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
	if (sa->cut)
		return -1; /* SIMRT_CUT: no NATS */
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
	return simrt_agent_find(rt, id);
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
	if (natsMsg_GetDataLength(m) > 0)
		atomic_fetch_add(&rt->agents[idx].queued, 1);
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

static int open_agent(struct simrt *rt, size_t i, int64_t now, char *err, size_t errlen);

static void delayed_free(struct delayed *d)
{
	natsMsg_Destroy(d->m);
	free(d->ack);
	free(d->ack_msg_id);
	free(d->command_id);
}

/* A history line about agent sa (docs/chaos.md "Agents"). */
static void hist_agent(struct simrt *rt, struct sagent *sa, const char *f)
{
	if (rt->hist)
		hist_writen(rt->hist, json_pack("{s:s, s:s, s:s, s:i, s:i}", "type", "agent", "f", f, "node",
						rt->ids[sa - rt->agents], "life", sa->life, "disk", sa->disk));
}

/* "applied": what the command was, from its message (the reply has only its id). */
static void hist_applied(struct simrt *rt, struct sagent *sa, natsMsg *m, const struct agent_reply *r)
{
	if (!rt->hist)
		return;
	json_t *cmd = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL);
	json_t *line = json_pack("{s:s, s:s, s:s, s:i, s:i, s:s, s:s}", "type", "agent", "f", "applied", "node",
				 rt->ids[sa - rt->agents], "life", sa->life, "disk", sa->disk, "command",
				 r->command_id ? r->command_id : "", "status", r->ok ? "ok" : "error");
	if (line && cmd) {
		json_t *p = json_object_get(cmd, "payload"), *v;
		if (json_is_string(v = json_object_get(cmd, "command_type")))
			json_object_set(line, "kind", v);
		if (json_is_string(v = json_object_get(p, "actor_id")))
			json_object_set(line, "actor", v);
		if (json_is_integer(v = json_object_get(p, "instance")))
			json_object_set(line, "instance", v);
		if (json_is_integer(v = json_object_get(p, "version")))
			json_object_set(line, "version", v);
	}
	json_decref(cmd);
	hist_writen(rt->hist, line);
}

/* SIMRT_SLOW_ACKS: keeps the message and the ack for later (flush_delayed).
 * Takes *m and r's strings on success. */
static int hold_ack(struct worker *w, size_t idx, natsMsg **m, struct agent_reply *r, int64_t now)
{
	if (w->dln == w->dlcap) {
		size_t nc = w->dlcap ? w->dlcap * 2 : 64;
		struct delayed *nd = realloc(w->dl, nc * sizeof(*nd));
		if (!nd)
			return -1;
		w->dl = nd;
		w->dlcap = nc;
	}
	w->dl[w->dln++] = (struct delayed){idx, now + w->rt->agents[idx].ack_delay_ms, *m, r->ack, r->ack_msg_id,
					   r->command_id};
	*m = NULL;
	r->ack = r->ack_msg_id = r->command_id = NULL;
	return 0;
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
	for (size_t i = 0; i < n; i++)
		if (r[i].applied)
			hist_applied(rt, &rt->agents[it[i].idx], it[i].m, &r[i]);
	atomic_store(&w->ack_failed, 0);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	int sent = 0;
	for (size_t i = 0; i < n; i++) {
		if (r[i].verdict != AGENT_ACK || rt->agents[it[i].idx].ack_delay_ms > 0)
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
			if (sa->ack_delay_ms > 0 && hold_ack(w, it[i].idx, &it[i].m, &r[i], now) == 0)
				break;
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
		if (natsMsg_GetDataLength(it[i].m) > 0)
			atomic_fetch_sub(&sa->queued, 1);
		if (sa->down || sa->cut) { /* lost on the way: left unacked, redelivered after ack_wait */
			natsMsg_Destroy(it[i].m);
			continue;
		}
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

/* Held acks that are due, of agents that are up and connected: published
 * together and awaited, then their command messages acked (NAKed when a
 * publish failed). *wake is lowered to the next one due. */
static void flush_delayed(struct worker *w, int64_t now, int64_t *wake)
{
	struct simrt *rt = w->rt;
	int sent = 0;
	atomic_store(&w->ack_failed, 0);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000;
	for (size_t i = 0; i < w->dln; i++) {
		struct delayed *d = &w->dl[i];
		struct sagent *sa = &rt->agents[d->idx];
		if (sa->down || sa->cut)
			continue;
		if (d->due > now) {
			if (d->due < *wake)
				*wake = d->due;
			continue;
		}
		natsMsg *am = NULL;
		natsStatus s = natsMsg_Create(&am, agent_subject_ack(sa->a), NULL, d->ack, (int)strlen(d->ack));
		if (s == NATS_OK)
			s = natsMsgHeader_Set(am, "Nats-Msg-Id", d->ack_msg_id);
		if (s == NATS_OK)
			s = js_PublishMsgAsync(w->js, &am, &po);
		natsMsg_Destroy(am);
		if (s != NATS_OK)
			atomic_fetch_add(&w->ack_failed, 1);
		d->due = -1; /* sent: settled below */
		sent++;
	}
	if (!sent)
		return;
	jsPubOptions wo;
	jsPubOptions_Init(&wo);
	wo.MaxWait = 6000;
	if (js_PublishAsyncComplete(w->js, &wo) != NATS_OK)
		atomic_fetch_add(&w->ack_failed, 1);
	int failed = atomic_load(&w->ack_failed) > 0;
	size_t k = 0;
	for (size_t i = 0; i < w->dln; i++) {
		struct delayed *d = &w->dl[i];
		if (d->due != -1) {
			w->dl[k++] = *d;
			continue;
		}
		if (failed) {
			settle(rt, d->m, "-NAK {\"delay\":1000000000}");
			atomic_fetch_add(&rt->naks, 1);
		} else {
			settle(rt, d->m, "+ACK");
			atomic_fetch_add(&rt->msg_acks, 1);
			atomic_fetch_add(&rt->acks, 1);
			log_info("%s: acked command %s (held back)", rt->ids[d->idx], d->command_id);
		}
		delayed_free(d);
	}
	w->dln = k;
	if (failed)
		atomic_fetch_add(&rt->errors, 1);
}

/* Removes every file of a state dir (a new disk); the dir stays. */
static void wipe_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}

/* Faults queued by simrt_fault, in order. */
static void run_ctl(struct worker *w, int64_t now)
{
	struct simrt *rt = w->rt;
	pthread_mutex_lock(&w->mu);
	struct ctl *c = w->ctl;
	size_t n = w->ctln;
	w->ctl = NULL;
	w->ctln = w->ctlcap = 0;
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < n; i++) {
		struct sagent *sa = &rt->agents[c[i].idx];
		switch (c[i].f) {
		case SIMRT_FREEZE:
			if (sa->down == DOWN_NO) {
				sa->down = DOWN_FROZEN;
				hist_agent(rt, sa, "dead");
			}
			break;
		case SIMRT_THAW:
			if (sa->down == DOWN_FROZEN) {
				sa->down = DOWN_NO;
				sa->outstanding = 0;
				sa->next_pull = sa->next_hb = sa->next_tick = now;
				hist_agent(rt, sa, "alive");
			}
			break;
		case SIMRT_CRASH:
			if (sa->down == DOWN_CRASHED)
				break;
			{ /* its held acks die with it */
				size_t k = 0;
				for (size_t j = 0; j < w->dln; j++)
					if (w->dl[j].idx == c[i].idx)
						delayed_free(&w->dl[j]);
					else
						w->dl[k++] = w->dl[j];
				w->dln = k;
			}
			agent_close(sa->a);
			sa->a = NULL;
			sa->down = DOWN_CRASHED;
			sa->bound = 0;
			sa->outstanding = 0;
			hist_agent(rt, sa, "crash");
			break;
		case SIMRT_RESTART:
		case SIMRT_RESTART_EMPTY: {
			if (sa->down != DOWN_CRASHED)
				break;
			if (c[i].f == SIMRT_RESTART_EMPTY) {
				char dir[4096 + 100];
				snprintf(dir, sizeof(dir), "%s/%s", rt->state_dir, rt->ids[c[i].idx]);
				wipe_dir(dir);
				sa->disk++;
			}
			sa->life++;
			char err[600];
			if (open_agent(rt, c[i].idx, now, err, sizeof(err)) < 0) {
				log_error("restart of %s failed: %s", rt->ids[c[i].idx], err);
				atomic_fetch_add(&rt->errors, 1);
				break;
			}
			sa->down = DOWN_NO;
			sa->outstanding = 0;
			sa->ack_delay_ms = 0;
			sa->next_pull = sa->next_hb = sa->next_tick = now;
			hist_agent(rt, sa, "restart");
			break;
		}
		case SIMRT_CUT:
			sa->cut = 1;
			break;
		case SIMRT_UNCUT:
			if (sa->cut) {
				sa->cut = 0;
				sa->outstanding = 0;
				sa->next_pull = sa->next_hb = now;
			}
			break;
		case SIMRT_SLOW_ACKS:
			sa->ack_delay_ms = c[i].arg > 0 ? c[i].arg : 0;
			break;
		}
	}
	free(c);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct simrt *rt = w->rt;
	struct qitem *batch = NULL;
	size_t bcap = 0;
	for (;;) {
		if (atomic_load(&rt->pause) && !atomic_load(&rt->stopping)) { /* simrt_view reads the agents */
			pthread_mutex_lock(&w->mu);
			w->paused = 1;
			while (atomic_load(&rt->pause) && !atomic_load(&rt->stopping))
				pthread_cond_wait(&w->cv, &w->mu);
			w->paused = 0;
			pthread_mutex_unlock(&w->mu);
		}
		int64_t now = mono_ms();
		run_ctl(w, now);
		/* what is due among its agents, and when the next thing is */
		int connected = natsConnection_Status(rt->nc) == NATS_CONN_STATUS_CONNECTED;
		unsigned ep = atomic_load(&rt->epoch);
		int reissue = ep != w->epoch;
		w->epoch = ep;
		int64_t wake = now + 500;
		if (w->dln)
			flush_delayed(w, now, &wake);
		for (size_t i = w->first; i < w->first + w->n && !atomic_load(&rt->failed); i++) {
			struct sagent *sa = &rt->agents[i];
			if (sa->down)
				continue;
			if (now >= sa->next_hb) {
				if (connected && !sa->cut) {
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
			/* No new request while this agent's messages still wait in the
			 * queue: a worker that falls behind must not pile up requests
			 * (each up to PULL_BATCH messages) and grow the queue without bound. */
			if (connected && !sa->cut && atomic_load(&sa->queued) == 0 &&
			    ((!sa->outstanding && now >= sa->next_pull) || (sa->outstanding && now >= sa->pull_deadline))) {
				if (sa->outstanding && sa->bound)
					log_debug("%s: pull request unanswered; asking again", agent_node_id(sa->a));
				issue_pull(w, sa, now);
			}
			int64_t due = sa->next_hb < sa->next_tick ? sa->next_hb : sa->next_tick;
			int64_t p = sa->outstanding ? sa->pull_deadline : sa->next_pull;
			if (p < due && !sa->cut)
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
		struct timespec ts = tswait_after(CLOCK_MONOTONIC, wake - now);
		while (w->qn == 0 && w->ctln == 0 && !atomic_load(&rt->stopping) && !atomic_load(&rt->pause))
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

/* Opens agent i's core from its state dir (replaying its journal), with an
 * instance id unique to this process and life. */
static int open_agent(struct simrt *rt, size_t i, int64_t now, char *err, size_t errlen)
{
	struct sagent *sa = &rt->agents[i];
	const struct simrt_scenario *sc = rt->sc;
	char id[96], dir[4096 + 100], inst[17];
	const struct simrt_group *g = simrt_scenario_node(sc, i, id, sizeof(id));
	snprintf(dir, sizeof(dir), "%s/%s", rt->state_dir, id);
	if (journal_make_dir(dir) < 0)
		return serr(err, errlen, "state dir %s: cannot create it: %s", dir, strerror(errno));
	/* unique per agent and per start: a new instance tells the controller the process changed */
	snprintf(inst, sizeof(inst), "%08x%08x", rt->inst_base + (unsigned)(sa->life - 1) * 2654435761u,
		 (unsigned)i & 0xffffffffu);
	struct agent_config cfg = {
		.lattice = sc->lattice,
		.node_id = id,
		.region = g->region,
		.labels = g->labels,
		.n_labels = g->n_labels,
		.cpu_capacity = g->cpu_capacity,
		.memory_mb = g->memory_mb,
		.agent_version = rt->agent_version,
		.agent_instance = inst,
		.snapshot_interval_ms = sc->snapshot_ms,
		.usage_from_requests = 1,
	};
	struct agent_io io = {.ctx = sa, .wall_ms = wall_ms, .publish_snapshot = publish_snapshot};
	struct driver *drv = driver_sim_new();
	char aerr[512];
	if (!drv || agent_open(&sa->a, &cfg, &io, drv, dir, now, aerr, sizeof(aerr)) < 0) {
		sa->a = NULL;
		return serr(err, errlen, "agent %s: %s", id, drv ? aerr : "out of memory");
	}
	return 0;
}

static void free_rt(struct simrt *rt)
{
	if (rt->sub)
		natsSubscription_Destroy(rt->sub);
	for (size_t i = 0; i < rt->n; i++) {
		if (rt->agents[i].a)
			agent_close(rt->agents[i].a);
		free(rt->agents[i].pull_subj);
		if (rt->ids)
			free(rt->ids[i]);
	}
	for (int i = 0; i < rt->nw; i++) {
		struct worker *w = &rt->workers[i];
		jsCtx_Destroy(w->js);
		for (size_t j = 0; j < w->qn; j++)
			natsMsg_Destroy(w->q[j].m);
		free(w->q);
		for (size_t j = 0; j < w->dln; j++)
			delayed_free(&w->dl[j]);
		free(w->dl);
		free(w->ctl);
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
	free(rt->ids);
	free(rt->state_dir);
	free(rt->agent_version);
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
	if (journal_make_dir(o->state_dir) < 0) {
		int e = errno;
		free_rt(rt);
		return serr(err, errlen, "--state-dir %s: cannot create it: %s", o->state_dir, strerror(e));
	}
	int64_t now = mono_ms();
	memcpy(rt->uniq, uniq, sizeof(rt->uniq));
	rt->inst_base = (unsigned)rnd[0] << 24 | (unsigned)rnd[1] << 16 | (unsigned)rnd[2] << 8 | rnd[3];
	rt->hist = o->hist;
	rt->ids = calloc(sc->n_agents, sizeof(*rt->ids));
	rt->state_dir = strdup(o->state_dir);
	rt->agent_version = strdup(o->agent_version);
	if (!rt->ids || !rt->state_dir || !rt->agent_version) {
		free_rt(rt);
		return serr(err, errlen, "out of memory");
	}
	for (size_t i = 0; i < sc->n_agents; i++) {
		struct sagent *sa = &rt->agents[i];
		sa->w = &rt->workers[0];
		for (int k = 0; k < rt->nw; k++)
			if (i >= rt->workers[k].first && i < rt->workers[k].first + rt->workers[k].n)
				sa->w = &rt->workers[k];
		char id[96];
		simrt_scenario_node(sc, i, id, sizeof(id));
		if (!(rt->ids[i] = strdup(id))) {
			free_rt(rt);
			return serr(err, errlen, "out of memory");
		}
		rt->n = i + 1;
		sa->life = sa->disk = 1;
		if (open_agent(rt, i, now, err, errlen) < 0) {
			free_rt(rt);
			return -1;
		}
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
		pairs[i] = (struct idpair){rt->ids[i], i};
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

size_t simrt_agents(const struct simrt *rt)
{
	return rt->n;
}

const char *simrt_agent_id(const struct simrt *rt, size_t idx)
{
	return idx < rt->n ? rt->ids[idx] : NULL;
}

long simrt_agent_find(const struct simrt *rt, const char *node_id)
{
	size_t lo = 0, hi = rt->n;
	while (lo < hi) { /* rt->by_id is sorted by node id */
		size_t mid = (lo + hi) / 2;
		int c = strcmp(rt->ids[rt->by_id[mid]], node_id);
		if (c == 0)
			return (long)rt->by_id[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

int simrt_fault(struct simrt *rt, size_t idx, enum simrt_fault f, int64_t arg)
{
	if (idx >= rt->n)
		return -1;
	struct worker *w = rt->agents[idx].w;
	pthread_mutex_lock(&w->mu);
	if (w->ctln == w->ctlcap) {
		size_t nc = w->ctlcap ? w->ctlcap * 2 : 64;
		struct ctl *n = realloc(w->ctl, nc * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&w->mu);
			return -1;
		}
		w->ctl = n;
		w->ctlcap = nc;
	}
	w->ctl[w->ctln++] = (struct ctl){idx, f, arg};
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static void view_instance(void *ctx, const struct driver_status *st)
{
	if (st->state == DRIVER_RUNNING || st->state == DRIVER_STARTING)
		json_array_append_new(ctx, json_pack("[s, I]", st->actor_id, (json_int_t)st->instance));
}

void simrt_pause(struct simrt *rt)
{
	atomic_store(&rt->pause, 1);
	for (int i = 0; i < rt->nw; i++) { /* wait until every worker stands still */
		struct worker *w = &rt->workers[i];
		for (;;) {
			pthread_mutex_lock(&w->mu);
			int p = w->paused || !w->started;
			pthread_cond_signal(&w->cv);
			pthread_mutex_unlock(&w->mu);
			if (p)
				break;
			usleep(1000);
		}
	}
}

void simrt_resume(struct simrt *rt)
{
	atomic_store(&rt->pause, 0);
	for (int i = 0; i < rt->nw; i++) {
		pthread_mutex_lock(&rt->workers[i].mu);
		pthread_cond_broadcast(&rt->workers[i].cv);
		pthread_mutex_unlock(&rt->workers[i].mu);
	}
}

json_t *simrt_view(struct simrt *rt)
{
	int was = atomic_load(&rt->pause);
	if (!was)
		simrt_pause(rt);
	/* run_ctl may still hold faults queued after the pause: they are not
	 * applied yet, which is what the view shows. */
	json_t *out = json_object();
	for (size_t i = 0; out && i < rt->n; i++) {
		struct sagent *sa = &rt->agents[i];
		json_t *running = json_array();
		if (sa->a)
			agent_list(sa->a, view_instance, running);
		json_object_set_new(out, rt->ids[i],
				    json_pack("{s:b, s:b, s:i, s:i, s:I, s:o}", "alive", sa->down == DOWN_NO, "cut",
					      sa->cut, "life", sa->life, "disk", sa->disk, "policy_version",
					      (json_int_t)(sa->a ? agent_policy_version(sa->a) : 0), "running", running));
	}
	if (!was)
		simrt_resume(rt);
	return out;
}
