/* lattice-agent — the reference edge agent (docs/protocol.md, sim/README.md).
 *
 * One thread: heartbeats on core NATS, commands fetched from the durable pull
 * consumer agent_<node_id> (bound, never created), each handled by the agent
 * core (sim/agent.c), its ack published to JetStream and only then the command
 * message acked. nats.c's own threads do the socket I/O and reconnect forever. */
#include <errno.h>
#include <getopt.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "journal.h"
#include "driver.h"
#include "log.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

#define MAX_LABELS 64

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

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

/* ---- options --------------------------------------------------------------- */

struct opts {
	char *nats;
	char *creds;
	char *lattice;
	char *node_id;
	char *region;
	struct agent_label labels[MAX_LABELS];
	size_t n_labels;
	long long cpu_capacity; /* -1: the host's */
	long long memory_mb;    /* -1: the host's */
	char *state_dir;
	char *driver;
	char *exec_tmpl;
	long long heartbeat_ms;
	long long snapshot_ms;
	char *agent_version;
	char *log_level;
};

enum { O_NATS = 1, O_CREDS, O_LATTICE, O_NODE, O_REGION, O_LABEL, O_CPU, O_MEM, O_STATE, O_DRIVER, O_EXEC,
       O_HB, O_SNAP, O_VERSION, O_LOG, O_HELP };

/* One table feeds getopt_long and --help. */
static const struct opt_doc {
	const char *name;
	int id;
	const char *arg;
	const char *dflt;
	const char *help;
} opt_docs[] = {
	{"nats", O_NATS, "URL[,URL...]", "nats://127.0.0.1:4222", "NATS server(s); several = one cluster; reconnects forever"},
	{"nats-creds", O_CREDS, "FILE", "none", "NATS credentials file (JWT + nkey seed)"},
	{"lattice", O_LATTICE, "L", "default", "lattice name (a subject token)"},
	{"node-id", O_NODE, "ID", "required", "this node's id: 1-64 of A-Z a-z 0-9 _ -"},
	{"region", O_REGION, "R", "default", "region reported in heartbeats"},
	{"label", O_LABEL, "K=V", "none", "a label (repeatable, at most 64)"},
	{"cpu-capacity", O_CPU, "MILLICORES", "online CPUs x 1000", "CPU capacity reported"},
	{"memory-mb", O_MEM, "MB", "MemTotal of /proc/meminfo", "memory capacity reported"},
	{"state-dir", O_STATE, "DIR", "required", "durable state (journal of applied commands); created"},
	{"driver", O_DRIVER, "sim|exec", "sim", "how actors run: in-process counters, or child processes"},
	{"exec", O_EXEC, "TEMPLATE", "none", "exec driver: command run by /bin/sh -c, {module} {actor_id} {instance} substituted"},
	{"heartbeat-interval-ms", O_HB, "MS", "1000", "heartbeat period"},
	{"snapshot-interval-ms", O_SNAP, "MS", "5000", "sim driver: snapshot period of changed actors; 0 = only on actor_migrate"},
	{"agent-version", O_VERSION, "TEXT", "lattice-agent " PACKAGE_VERSION, "agent_version reported"},
	{"log-level", O_LOG, "LEVEL", "info", "debug, info, warn or error"},
	{"help", O_HELP, NULL, NULL, "this text"},
};
#define N_OPTS (sizeof(opt_docs) / sizeof(opt_docs[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: lattice-agent --node-id ID --state-dir DIR [options]\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", opt_docs[i].name, opt_docs[i].arg ? " " : "",
			 opt_docs[i].arg ? opt_docs[i].arg : "");
		fprintf(f, "  %-36s %s", left, opt_docs[i].help);
		if (opt_docs[i].dflt)
			fprintf(f, " (default: %s)", opt_docs[i].dflt);
		fprintf(f, "\n");
	}
}

static int bad(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, "lattice-agent: ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, "\n");
	return 2;
}

static int parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Returns 0, or 2 after printing why (exit status of a usage error). */
static int parse_opts(int argc, char **argv, struct opts *o, int *help)
{
	struct option lo[N_OPTS + 1];
	for (size_t i = 0; i < N_OPTS; i++)
		lo[i] = (struct option){opt_docs[i].name, opt_docs[i].arg ? required_argument : no_argument, NULL,
					 opt_docs[i].id};
	lo[N_OPTS] = (struct option){0, 0, 0, 0};
	*o = (struct opts){.nats = "nats://127.0.0.1:4222", .lattice = "default", .region = "default",
			   .cpu_capacity = -1, .memory_mb = -1, .driver = "sim", .heartbeat_ms = 1000,
			   .snapshot_ms = 5000, .agent_version = "lattice-agent " PACKAGE_VERSION,
			   .log_level = "info"};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_NATS: o->nats = optarg; break;
		case O_CREDS: o->creds = optarg; break;
		case O_LATTICE: o->lattice = optarg; break;
		case O_NODE: o->node_id = optarg; break;
		case O_REGION: o->region = optarg; break;
		case O_STATE: o->state_dir = optarg; break;
		case O_DRIVER: o->driver = optarg; break;
		case O_EXEC: o->exec_tmpl = optarg; break;
		case O_VERSION: o->agent_version = optarg; break;
		case O_LOG: o->log_level = optarg; break;
		case O_HELP: *help = 1; return 0;
		case O_LABEL: {
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg || eq - optarg > 63 || strlen(eq + 1) > 256)
				return bad("--label '%s': use KEY=VALUE (key 1-63, value at most 256 characters)%s",
					   optarg, "");
			if (o->n_labels == MAX_LABELS)
				return bad("--label '%s': at most 64 labels%s", optarg, "");
			*eq = '\0';
			o->labels[o->n_labels++] = (struct agent_label){optarg, eq + 1};
			break;
		}
		case O_CPU:
			if (parse_int(optarg, 0, 1LL << 40, &o->cpu_capacity) < 0)
				return bad("--cpu-capacity '%s': want millicores, an integer >= 0%s", optarg, "");
			break;
		case O_MEM:
			if (parse_int(optarg, 0, 1LL << 40, &o->memory_mb) < 0)
				return bad("--memory-mb '%s': want MiB, an integer >= 0%s", optarg, "");
			break;
		case O_HB:
			if (parse_int(optarg, 10, 3600000, &o->heartbeat_ms) < 0)
				return bad("--heartbeat-interval-ms '%s': want 10 to 3600000%s", optarg, "");
			break;
		case O_SNAP:
			if (parse_int(optarg, 0, 86400000, &o->snapshot_ms) < 0)
				return bad("--snapshot-interval-ms '%s': want 0 (off) to 86400000%s", optarg, "");
			break;
		default:
			return bad("unknown option or missing value: '%s'%s (see --help)", argv[optind - 1], "");
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'%s (see --help)", argv[optind], "");
	if (!o->node_id)
		return bad("--node-id is required%s%s", "", "");
	if (!agent_valid_token(o->node_id))
		return bad("node id '%s' cannot be a NATS subject token: use 1-64 of A-Z a-z 0-9 _ -%s", o->node_id, "");
	if (!agent_valid_token(o->lattice))
		return bad("--lattice '%s' cannot be a NATS subject token: use 1-64 of A-Z a-z 0-9 _ -%s", o->lattice,
			   "");
	if (!*o->region || strlen(o->region) > 128)
		return bad("--region '%s': want 1-128 characters%s", o->region, "");
	if (!o->state_dir || !*o->state_dir)
		return bad("--state-dir is required%s%s", "", "");
	if (strcmp(o->driver, "sim") != 0 && strcmp(o->driver, "exec") != 0)
		return bad("--driver '%s': want sim or exec%s", o->driver, "");
	if (strcmp(o->driver, "exec") == 0 && (!o->exec_tmpl || !*o->exec_tmpl))
		return bad("--driver exec needs --exec 'TEMPLATE' (e.g. 'wasmtime run {module}')%s%s", "", "");
	if (!*o->agent_version || strlen(o->agent_version) > 128)
		return bad("--agent-version '%s': want 1-128 characters%s", o->agent_version, "");
	enum log_level lvl;
	if (log_level_parse(o->log_level, &lvl) < 0)
		return bad("--log-level '%s': want debug, info, warn or error%s", o->log_level, "");
	if (o->creds) {
		/* nats.c reads it only when it connects, and one it cannot read looks
		 * like a NATS that never answers: say so now. */
		FILE *f = fopen(o->creds, "r");
		struct stat st;
		int e = f == NULL ? errno : fstat(fileno(f), &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
		if (f != NULL)
			fclose(f);
		if (e != 0)
			return bad("--nats-creds: cannot read '%s': %s", o->creds, strerror(e));
	}
	log_set_level(lvl);
	return 0;
}

/* ---- the host --------------------------------------------------------------- */

static long long meminfo_kb(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return -1;
	char line[256];
	long long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = strtoll(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

struct cpu_sample {
	unsigned long long busy, total;
	int ok;
};

static struct cpu_sample cpu_sample(void)
{
	struct cpu_sample s = {0};
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return s;
	unsigned long long v[8] = {0};
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
		   &v[7]) >= 4) {
		for (int i = 0; i < 8; i++)
			s.total += v[i];
		s.busy = s.total - v[3] - v[4]; /* idle and iowait are not use */
		s.ok = 1;
	}
	fclose(f);
	return s;
}

/* ---- NATS ------------------------------------------------------------------- */

struct conn {
	natsConnection *nc;
	jsCtx *js;
	natsSubscription *sub;
	struct agent *agent;
	int64_t next_bind;
	int bind_logged;
	atomic_int ack_pub_failed; /* ack publishes of the current batch that failed (nats.c's thread) */
};

#define FETCH_BATCH 64

/* nats.c's thread: the outcome of one ack publish. A failure fails the batch. */
static void on_ack_published(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure)
{
	(void)js;
	struct conn *c = closure;
	if (pa && pa->Duplicate) {
		const char *id = NULL;
		natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
		log_info("ack %s: the ack stream already had it (one copy kept)", id ? id : "?");
	}
	if (pae) {
		const char *id = NULL;
		natsMsgHeader_Get(msg, "Nats-Msg-Id", &id);
		log_warn("publish of ack %s failed: %s%s%s", id ? id : "?", natsStatus_GetText(pae->Err),
			 pae->ErrText ? ": " : "", pae->ErrText ? pae->ErrText : "");
		atomic_fetch_add(&c->ack_pub_failed, 1);
	}
	natsMsg_Destroy(msg);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
	if (!stop_requested) /* our own close at shutdown is no news */
		log_warn("NATS: disconnected; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("NATS: reconnected to %s", url);
}

static void on_connected(natsConnection *nc, void *closure)
{
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof(url));
	log_info("NATS: connected to %s", url);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	const struct opts *o = closure;
	const char *text = NULL;
	if (err == NATS_CONNECTION_AUTH_FAILED && natsConnection_GetLastError(nc, &text) == err)
		log_warn("NATS: the server refused the agent's credentials (%s); retrying: check --nats-creds (%s)",
			 text, o->creds ? o->creds : "none given");
	else
		log_warn("NATS: asynchronous error: %s", natsStatus_GetText(err));
}

/* One plain connection attempt (no retry), to learn why the connection was
 * closed: nats.c before 3.12 closes a connection whose first attempt reached a
 * server that then refused it (bad credentials, TLS) as "no server available",
 * forgetting the server's answer. why gets that answer. */
static natsStatus probe(const struct opts *o, char *why, size_t whylen)
{
	char *buf = strdup(o->nats);
	const char *urls[64];
	int n = 0;
	for (char *save = NULL, *u = buf ? strtok_r(buf, ",", &save) : NULL; u && n < 64; u = strtok_r(NULL, ",", &save))
		if (*u)
			urls[n++] = u;
	natsOptions *no = NULL;
	natsConnection *nc = NULL;
	natsStatus s = n > 0 ? natsOptions_Create(&no) : NATS_NO_MEMORY;
	if (s == NATS_OK)
		s = natsOptions_SetServers(no, urls, n);
	if (s == NATS_OK)
		s = natsOptions_SetAllowReconnect(no, false);
	if (s == NATS_OK && o->creds)
		s = natsOptions_SetUserCredentialsFromFiles(no, o->creds, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, no);
	const char *last = s == NATS_OK ? NULL : nats_GetLastError(NULL);
	const char *at = last ? strstr(last, "): ") : NULL; /* "(conn.c:1905): Authorization Violation" */
	snprintf(why, whylen, "%s", at ? at + 3 : last ? last : natsStatus_GetText(s));
	natsConnection_Destroy(nc);
	natsOptions_Destroy(no);
	free(buf);
	return s;
}

/* nats.c closes the connection for good when a server refuses the same
 * credentials twice in a row (so at once when they are wrong at start), or a
 * first attempt fails after the TCP connection was made (nats.c < 3.12), or on
 * a server error it does not retry. No heartbeat goes out after that: the log
 * says why and what to do. */
static void on_closed(natsConnection *nc, void *closure)
{
	const struct opts *o = closure;
	if (stop_requested)
		return; /* our own close at shutdown */
	const char *text = NULL;
	char why[256];
	natsStatus s = natsConnection_GetLastError(nc, &text);
	snprintf(why, sizeof(why), "%s", text ? text : "");
	if (s != NATS_CONNECTION_AUTH_FAILED) {
		natsStatus ps = probe(o, why, sizeof(why));
		if (ps == NATS_CONNECTION_AUTH_FAILED)
			s = ps;
		else if (ps == NATS_OK)
			snprintf(why, sizeof(why), "%s; a new connection works", natsStatus_GetText(s));
	}
	if (s == NATS_CONNECTION_AUTH_FAILED)
		log_error("NATS: %s refused the agent's credentials (%s); no longer trying to connect: check "
			  "--nats-creds (%s) against the account on the server, then restart the agent",
			  o->nats, why, o->creds ? o->creds : "none given");
	else
		log_error("NATS: the connection to %s is closed for good (%s); no longer trying to connect: "
			  "restart the agent", o->nats, why);
}

static int js_publish(jsCtx *js, const char *subject, const char *msg_id, const char *data, size_t len)
{
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msg_id;
	po.MaxWait = 5000;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_Publish(&pa, js, subject, data, (int)len, &po, &jerr);
	if (s != NATS_OK) {
		log_warn("publish on %s (%s) failed: %s (JetStream error %d)", subject, msg_id, natsStatus_GetText(s),
			 (int)jerr);
		return -1;
	}
	jsPubAck_Destroy(pa);
	return 0;
}

static int publish_snapshot(void *ctx, const char *subject, const char *msg_id, const char *json, size_t len)
{
	struct conn *c = ctx;
	return js_publish(c->js, subject, msg_id, json, len);
}

/* Binds to agent_<node_id>, which the controller creates: look it up first so
 * nothing is ever created here, then subscribe bound to it. */
static void try_bind(struct conn *c)
{
	struct agent *a = c->agent;
	jsConsumerInfo *ci = NULL;
	jsErrCode jerr = 0;
	natsStatus s = js_GetConsumerInfo(&ci, c->js, agent_cmd_stream(a), agent_consumer(a), NULL, &jerr);
	if (s != NATS_OK) {
		if (!c->bind_logged) {
			if (s == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr)
				log_info("consumer %s on stream %s does not exist yet (the controller creates it); "
					 "heartbeating and retrying every 250 ms",
					 agent_consumer(a), agent_cmd_stream(a));
			else
				log_warn("consumer %s on stream %s: cannot look it up: %s (JetStream error %d); "
					 "retrying every 250 ms",
					 agent_consumer(a), agent_cmd_stream(a), natsStatus_GetText(s), (int)jerr);
			c->bind_logged = 1;
		}
		return;
	}
	jsConsumerInfo_Destroy(ci);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = agent_cmd_stream(a);
	so.Consumer = agent_consumer(a);
	s = js_PullSubscribe(&c->sub, c->js, agent_subject_cmd(a), agent_consumer(a), NULL, &so, &jerr);
	if (s != NATS_OK) {
		c->sub = NULL;
		if (!c->bind_logged)
			log_warn("consumer %s: cannot bind: %s (JetStream error %d); retrying every 250 ms",
				 agent_consumer(a), natsStatus_GetText(s), (int)jerr);
		c->bind_logged = 1;
		return;
	}
	c->bind_logged = 0;
	log_info("bound to consumer %s on stream %s", agent_consumer(a), agent_cmd_stream(a));
}

/* One fetched batch: apply every command with its journal records unsynced,
 * one fsync, the acks published asynchronously and awaited together, then the
 * command messages acked. An ack is never published before the fsync that made
 * its command durable; a command message is acked only once its ack is stored
 * (otherwise it is NAKed and its redelivery acks again from the journal). */
static void handle_batch(struct conn *c, natsMsgList *list)
{
	struct agent *a = c->agent;
	int64_t now = mono_ms();
	struct agent_reply r[FETCH_BATCH];
	int n = list->Count < FETCH_BATCH ? list->Count : FETCH_BATCH, acks = 0;
	for (int i = 0; i < n; i++) {
		natsMsg *m = list->Msgs[i];
		agent_handle_deferred(a, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), now, &r[i]);
		acks += r[i].verdict == AGENT_ACK;
	}
	char err[256];
	if (acks && agent_sync(a, err, sizeof(err)) < 0) {
		/* fsyncgate: a failed fsync may have dropped the pages, and retrying
		 * proves nothing. Exit unacked: a restart replays the journal. */
		log_error("journal: %s: exiting without acking; restart the agent (its journal is the truth, and "
			  "the unacked commands are redelivered)",
			  err);
		exit(1);
	}
	atomic_store(&c->ack_pub_failed, 0);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 5000; /* no pub-ack by then: a failure through on_ack_published */
	int sent = 0;
	for (int i = 0; i < n; i++) {
		if (r[i].verdict != AGENT_ACK)
			continue;
		natsMsg *am = NULL;
		natsStatus s = natsMsg_Create(&am, agent_subject_ack(a), NULL, r[i].ack, (int)strlen(r[i].ack));
		if (s == NATS_OK)
			s = natsMsgHeader_Set(am, "Nats-Msg-Id", r[i].ack_msg_id);
		if (s == NATS_OK)
			s = js_PublishMsgAsync(c->js, &am, &po);
		natsMsg_Destroy(am); /* NULL when the library took it */
		if (s != NATS_OK) {
			log_warn("publish of ack %s failed: %s", r[i].ack_msg_id, natsStatus_GetText(s));
			atomic_fetch_add(&c->ack_pub_failed, 1);
		}
		sent++;
	}
	if (sent) {
		jsPubOptions wo;
		jsPubOptions_Init(&wo);
		wo.MaxWait = 6000; /* past every publish's own MaxWait */
		natsStatus s = js_PublishAsyncComplete(c->js, &wo);
		if (s != NATS_OK) {
			log_warn("acks of %d commands: %s", sent, natsStatus_GetText(s));
			atomic_fetch_add(&c->ack_pub_failed, 1);
		}
	}
	int failed = atomic_load(&c->ack_pub_failed) > 0;
	if (failed)
		agent_note_error(a, now);
	for (int i = 0; i < n; i++) {
		natsMsg *m = list->Msgs[i];
		switch (r[i].verdict) {
		case AGENT_TERM:
			log_warn("command message %s: %s: terminated (not redelivered)", natsMsg_GetSubject(m),
				 r[i].error ? r[i].error : "unreadable");
			natsMsg_Term(m, NULL);
			break;
		case AGENT_RETRY:
			natsMsg_NakWithDelay(m, 1000, NULL);
			break;
		case AGENT_ACK:
			if (failed) {
				/* recorded: the redelivery acks again, from the journal */
				natsMsg_NakWithDelay(m, 1000, NULL);
				break;
			}
			/* Not AckSync: a lost ack only means a redelivery, acked again. */
			natsMsg_Ack(m, NULL);
			log_info("acked command %s: %s%s", r[i].command_id, r[i].ok ? "ok" : "error: ",
				 r[i].ok ? "" : r[i].error);
			break;
		}
		agent_reply_release(&r[i]);
	}
}

static void fetch_some(struct conn *c, int timeout_ms)
{
	natsMsgList list = {0};
	jsErrCode jerr = 0;
	int64_t t0 = mono_ms();
	natsStatus s = natsSubscription_Fetch(&list, c->sub, FETCH_BATCH, timeout_ms, &jerr);
	if (s == NATS_OK) {
		handle_batch(c, &list);
		natsMsgList_Destroy(&list);
		return;
	}
	if (s == NATS_TIMEOUT) {
		/* nats.c before 3.6.1 can time out at once (its #631): no busy loop */
		int64_t left = t0 + timeout_ms - mono_ms();
		if (left > 0)
			usleep((useconds_t)left * 1000);
		return;
	}
	/* Disconnected, or the consumer went away: check which, then back off. */
	jsConsumerInfo *ci = NULL;
	natsStatus cs = js_GetConsumerInfo(&ci, c->js, agent_cmd_stream(c->agent), agent_consumer(c->agent), NULL, &jerr);
	if (cs == NATS_OK) {
		jsConsumerInfo_Destroy(ci);
	} else if (cs == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr) {
		log_warn("consumer %s is gone: binding again once it exists", agent_consumer(c->agent));
		natsSubscription_Destroy(c->sub);
		c->sub = NULL;
		c->next_bind = mono_ms() + 1000;
	}
	log_debug("fetch: %s", natsStatus_GetText(s));
	usleep(100 * 1000);
}

int main(int argc, char **argv)
{
	struct opts o;
	int help = 0;
	int rc = parse_opts(argc, argv, &o, &help);
	if (rc)
		return rc;
	if (help) {
		usage(stdout);
		return 0;
	}
	if (journal_make_dir(o.state_dir) < 0) {
		fprintf(stderr, "lattice-agent: --state-dir %s: cannot create it: %s\n", o.state_dir, strerror(errno));
		return 1;
	}
	if (o.cpu_capacity < 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		o.cpu_capacity = n > 0 ? n * 1000 : 0;
	}
	if (o.memory_mb < 0) {
		long long kb = meminfo_kb("MemTotal");
		o.memory_mb = kb > 0 ? kb / 1024 : 0;
	}
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		unsigned long long x = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)getpid() << 32);
		memcpy(rnd, &x, sizeof(rnd));
	}
	char instance[17];
	for (int i = 0; i < 8; i++)
		snprintf(instance + 2 * i, 3, "%02x", rnd[i]);

	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	int sim = strcmp(o.driver, "sim") == 0;
	struct driver *drv = sim ? driver_sim_new() : driver_exec_new(o.exec_tmpl);
	if (!drv) {
		fprintf(stderr, "lattice-agent: out of memory\n");
		return 1;
	}
	struct conn c = {0};
	struct agent_config cfg = {
		.lattice = o.lattice,
		.node_id = o.node_id,
		.region = o.region,
		.labels = o.labels,
		.n_labels = o.n_labels,
		.cpu_capacity = o.cpu_capacity,
		.memory_mb = o.memory_mb,
		.agent_version = o.agent_version,
		.agent_instance = instance,
		.snapshot_interval_ms = sim ? o.snapshot_ms : 0,
		.usage_from_requests = sim,
	};
	struct agent_io io = {.ctx = &c, .wall_ms = wall_ms, .publish_snapshot = publish_snapshot};
	char err[512];
	int64_t now = mono_ms();
	if (agent_open(&c.agent, &cfg, &io, drv, o.state_dir, now, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-agent: %s\n", err);
		return 1;
	}

	/* NATS: every URL of the cluster, reconnect forever, connect in the background. */
	char *urls_buf = strdup(o.nats);
	const char *urls[64];
	int n_urls = 0;
	for (char *save = NULL, *u = strtok_r(urls_buf, ",", &save); u && n_urls < 64; u = strtok_r(NULL, ",", &save))
		if (*u)
			urls[n_urls++] = u;
	natsOptions *nopts = NULL;
	natsStatus s = natsOptions_Create(&nopts);
	if (s == NATS_OK)
		s = natsOptions_SetServers(nopts, urls, n_urls);
	if (s == NATS_OK && o.creds)
		s = natsOptions_SetUserCredentialsFromFiles(nopts, o.creds, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(nopts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(nopts, 500);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(nopts, true, on_connected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(nopts, on_disconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(nopts, on_reconnected, NULL);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(nopts, on_error, &o);
	if (s == NATS_OK)
		s = natsOptions_SetClosedCB(nopts, on_closed, &o);
	if (s == NATS_OK)
		s = natsOptions_SetName(nopts, agent_node_id(c.agent));
	if (s != NATS_OK || n_urls == 0) {
		fprintf(stderr, "lattice-agent: --nats '%s': %s\n", o.nats,
			n_urls ? natsStatus_GetText(s) : "no URL");
		agent_close(c.agent);
		free(urls_buf);
		return 2;
	}
	s = natsConnection_Connect(&c.nc, nopts);
	if (s == NATS_OK) {
		char url[256] = "";
		natsConnection_GetConnectedUrl(c.nc, url, sizeof(url));
		log_info("NATS: connected to %s", url);
	} else if (s == NATS_NOT_YET_CONNECTED) {
		log_warn("NATS: %s not reachable yet; retrying in the background", o.nats);
	} else {
		fprintf(stderr, "lattice-agent: NATS %s: %s\n", o.nats, natsStatus_GetText(s));
		agent_close(c.agent);
		natsOptions_Destroy(nopts);
		free(urls_buf);
		return 1;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	jo.PublishAsync.AckHandler = on_ack_published;
	jo.PublishAsync.AckHandlerClosure = &c;
	jo.PublishAsync.MaxPending = 4 * FETCH_BATCH;
	s = natsConnection_JetStream(&c.js, c.nc, &jo);
	if (s != NATS_OK) {
		fprintf(stderr, "lattice-agent: JetStream: %s\n", natsStatus_GetText(s));
		return 1;
	}
	log_info("lattice-agent %s: node %s, lattice %s, driver %s, instance %s, capacity %lld millicores %lld MiB",
		 PACKAGE_VERSION, o.node_id, o.lattice, drv->name, instance, o.cpu_capacity, o.memory_mb);

	int64_t next_hb = mono_ms();
	struct cpu_sample last_cpu = cpu_sample();
	long long cpu_used = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	while (!stop_requested) {
		now = mono_ms();
		int connected = natsConnection_Status(c.nc) == NATS_CONN_STATUS_CONNECTED;
		if (now >= next_hb && !connected) {
			/* Not queued for the reconnect: a burst of old heartbeats helps nobody. */
			next_hb = now + o.heartbeat_ms;
		} else if (now >= next_hb) {
			struct cpu_sample cs = cpu_sample();
			if (cs.ok && last_cpu.ok && cs.total > last_cpu.total)
				cpu_used = (long long)((double)(cs.busy - last_cpu.busy) / (double)(cs.total - last_cpu.total) *
						       (double)(ncpu > 0 ? ncpu : 1) * 1000.0);
			last_cpu = cs;
			long long total = meminfo_kb("MemTotal"), avail = meminfo_kb("MemAvailable");
			long long mem_used = total > 0 && avail >= 0 ? (total - avail) / 1024 : 0;
			char *hb = agent_heartbeat(c.agent, now, cpu_used, mem_used);
			if (hb) {
				s = natsConnection_PublishString(c.nc, agent_subject_hb(c.agent), hb);
				if (s != NATS_OK)
					log_debug("heartbeat not sent: %s", natsStatus_GetText(s));
				free(hb);
			}
			next_hb += o.heartbeat_ms;
			if (next_hb <= now) /* fell behind (a long publish): no burst */
				next_hb = now + o.heartbeat_ms;
		}
		agent_tick(c.agent, now);
		if (!c.sub && now >= c.next_bind) {
			c.next_bind = now + 250;
			if (connected)
				try_bind(&c);
		}
		now = mono_ms();
		int64_t wait = next_hb - now;
		/* agent_tick at least every 500 ms; each Fetch is a request nats-server
		 * answers, so 100 idle agents polling every 100 ms cost it a tenth of
		 * a core. */
		if (wait > 500)
			wait = 500;
		if (!c.sub && wait > 100)
			wait = 100; /* not bound: the next try is due soon */
		if (wait < 1)
			wait = 1;
		if (c.sub && connected)
			fetch_some(&c, (int)wait);
		else
			usleep((useconds_t)wait * 1000);
	}
	log_info("stopping (signal)");
	if (c.sub)
		natsSubscription_Destroy(c.sub);
	agent_close(c.agent);
	jsCtx_Destroy(c.js);
	natsConnection_Destroy(c.nc);
	natsOptions_Destroy(nopts);
	nats_CloseAndWait(5000); /* its threads gone before exit (else they may run into the teardown) */
	free(urls_buf);
	return 0;
}
