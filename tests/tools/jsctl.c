/* jsctl — plays the controller's side of docs/protocol.md for tests.
 *
 *   jsctl [-s] [-x SUBSTR] [-c CREDS] URL COMMAND ...
 *                                 (-c: connect as the user of the .creds file CREDS)
 *   ensure L                      streams LATTICE_L_{CMD,ACK,SNAP} and consumers
 *                                 controller_ack, controller_snap, as protocol.md's tables
 *   consumer L NODE [ACKWAIT_MS]  creates agent_NODE (ack wait 30 s unless given)
 *   delconsumer L NODE            deletes agent_NODE
 *   publish L NODE FILE [MSGID]   publishes FILE (a command) on lattice.L.cmd.NODE with
 *                                 Nats-Msg-Id MSGID (default: its command_id); prints
 *                                 "seq N" or "seq N duplicate"
 *   acks L N TIMEOUT_MS           fetches N acks from controller_ack, prints each as one
 *                                 JSON line and acks it; exit 1 if fewer came in time
 *   snaps L N TIMEOUT_MS          the same from controller_snap
 *   sub SUBJECT N TIMEOUT_MS      core subscription: prints N messages, one per line
 *                                 (-s: "SUBJECT DATA"; -x: skip subjects containing SUBSTR,
 *                                 repeatable);
 *                                 prints "ready" on stderr once subscribed
 *   pending L NODE...             prints each agent_NODE's "num_pending num_ack_pending"
 *   stream NAME                   prints "replicas R leader SERVER peers N" (N: the
 *                                 other servers holding it; "-" and 0 without a cluster)
 * Exit status: 0, 1 (failed or timed out), 2 (usage). */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static int usage(void)
{
	fprintf(stderr, "usage: jsctl [-s] [-x SUBSTR] [-c CREDS] URL ensure L | consumer L NODE [ACKWAIT_MS] | delconsumer L NODE |\n"
			"       publish L NODE FILE [MSGID] | acks L N TIMEOUT_MS | snaps L N TIMEOUT_MS |\n"
			"       sub SUBJECT N TIMEOUT_MS | pending L NODE... | stream NAME\n");
	return 2;
}

static int fail(const char *what, natsStatus s, jsErrCode e)
{
	fprintf(stderr, "jsctl: %s: %s (JetStream error %d)\n", what, natsStatus_GetText(s), (int)e);
	return 1;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define NS_PER_MS 1000000LL
#define MIN_NS (60LL * 1000 * NS_PER_MS)
#define DAY_NS (24LL * 60 * MIN_NS)

static int ensure(jsCtx *js, const char *L)
{
	static const char *kinds[] = {"CMD", "ACK", "SNAP"}, *subj[] = {"cmd", "ack", "snap"};
	static const long long age[] = {7 * DAY_NS, 7 * DAY_NS, DAY_NS};
	for (int i = 0; i < 3; i++) {
		char name[128], s[128];
		snprintf(name, sizeof(name), "LATTICE_%s_%s", L, kinds[i]);
		snprintf(s, sizeof(s), "lattice.%s.%s.>", L, subj[i]);
		const char *subjects[] = {s};
		jsStreamConfig sc;
		jsStreamConfig_Init(&sc);
		sc.Name = name;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Retention = js_LimitsPolicy;
		sc.Duplicates = 2 * MIN_NS;
		sc.MaxAge = age[i];
		jsStreamInfo *si = NULL;
		jsErrCode e = 0;
		natsStatus st = js_AddStream(&si, js, &sc, NULL, &e);
		if (st != NATS_OK)
			return fail(name, st, e);
		jsStreamInfo_Destroy(si);
	}
	static const char *cons[] = {"controller_ack", "controller_snap"}, *cs[] = {"ACK", "SNAP"}, *cf[] = {"ack", "snap"};
	for (int i = 0; i < 2; i++) {
		char stream[128], filter[128];
		snprintf(stream, sizeof(stream), "LATTICE_%s_%s", L, cs[i]);
		snprintf(filter, sizeof(filter), "lattice.%s.%s.>", L, cf[i]);
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = cons[i];
		cc.FilterSubject = filter;
		cc.AckPolicy = js_AckExplicit;
		cc.DeliverPolicy = js_DeliverAll;
		jsConsumerInfo *ci = NULL;
		jsErrCode e = 0;
		natsStatus st = js_AddConsumer(&ci, js, stream, &cc, NULL, &e);
		if (st != NATS_OK)
			return fail(cons[i], st, e);
		jsConsumerInfo_Destroy(ci);
	}
	return 0;
}

static int consumer(jsCtx *js, const char *L, const char *node, long long ackwait_ms)
{
	char stream[128], name[128], filter[256];
	snprintf(stream, sizeof(stream), "LATTICE_%s_CMD", L);
	snprintf(name, sizeof(name), "agent_%s", node);
	snprintf(filter, sizeof(filter), "lattice.%s.cmd.%s", L, node);
	jsConsumerConfig cc;
	jsConsumerConfig_Init(&cc);
	cc.Durable = name;
	cc.FilterSubject = filter;
	cc.AckPolicy = js_AckExplicit;
	cc.DeliverPolicy = js_DeliverAll;
	cc.AckWait = ackwait_ms * NS_PER_MS;
	cc.MaxDeliver = -1;
	jsConsumerInfo *ci = NULL;
	jsErrCode e = 0;
	natsStatus st = js_AddConsumer(&ci, js, stream, &cc, NULL, &e);
	if (st != NATS_OK)
		return fail(name, st, e);
	jsConsumerInfo_Destroy(ci);
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	size_t r;
	while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				b = NULL;
			}
			b = nb;
		}
	}
	fclose(f);
	*len = n;
	return b;
}

static int publish(jsCtx *js, const char *L, const char *node, const char *file, const char *msgid)
{
	size_t len;
	char *data = slurp(file, &len);
	if (!data) {
		perror(file);
		return 1;
	}
	json_t *j = json_loadb(data, len, 0, NULL);
	char idbuf[512] = "";
	if (!msgid && j && json_is_string(json_object_get(j, "command_id"))) {
		snprintf(idbuf, sizeof(idbuf), "%s", json_string_value(json_object_get(j, "command_id")));
		msgid = idbuf;
	}
	json_decref(j);
	char subj[256];
	snprintf(subj, sizeof(subj), "lattice.%s.cmd.%s", L, node);
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = msgid;
	jsPubAck *pa = NULL;
	jsErrCode e = 0;
	natsStatus st = js_Publish(&pa, js, subj, data, (int)len, &po, &e);
	free(data);
	if (st != NATS_OK)
		return fail(subj, st, e);
	printf("seq %llu%s\n", (unsigned long long)pa->Sequence, pa->Duplicate ? " duplicate" : "");
	jsPubAck_Destroy(pa);
	return 0;
}

static int drain(jsCtx *js, const char *L, const char *kind, int n, int timeout_ms)
{
	char stream[128], subj[128], name[64];
	snprintf(stream, sizeof(stream), "LATTICE_%s_%s", L, strcmp(kind, "ack") == 0 ? "ACK" : "SNAP");
	snprintf(subj, sizeof(subj), "lattice.%s.%s.>", L, kind);
	snprintf(name, sizeof(name), "controller_%s", kind);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Consumer = name;
	natsSubscription *sub = NULL;
	jsErrCode e = 0;
	natsStatus st = js_PullSubscribe(&sub, js, subj, name, NULL, &so, &e);
	if (st != NATS_OK)
		return fail(name, st, e);
	int got = 0;
	long long deadline = now_ms() + timeout_ms;
	while (got < n) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		natsMsgList list = {0};
		st = natsSubscription_Fetch(&list, sub, n - got, (int)(left > 500 ? 500 : left), &e);
		if (st == NATS_TIMEOUT)
			continue; /* also nats.c's early timeouts (#631): the deadline decides */
		if (st != NATS_OK)
			break;
		for (int i = 0; i < list.Count; i++) {
			printf("%.*s\n", natsMsg_GetDataLength(list.Msgs[i]), natsMsg_GetData(list.Msgs[i]));
			natsMsg_AckSync(list.Msgs[i], NULL, NULL);
			got++;
		}
		fflush(stdout);
		natsMsgList_Destroy(&list);
	}
	natsSubscription_Destroy(sub);
	if (got < n) {
		fprintf(stderr, "jsctl: %d of %d %ss in %d ms\n", got, n, kind, timeout_ms);
		return 1;
	}
	return 0;
}

#define MAX_SKIP 8

static int skipped(const char *subject, const char **skip, int n_skip)
{
	for (int i = 0; i < n_skip; i++)
		if (strstr(subject, skip[i]))
			return 1;
	return 0;
}

static int sub(natsConnection *nc, const char *subject, int n, int timeout_ms, int with_subject, const char **skip,
	       int n_skip)
{
	natsSubscription *s = NULL;
	natsStatus st = natsConnection_SubscribeSync(&s, nc, subject);
	if (st == NATS_OK)
		st = natsConnection_Flush(nc);
	if (st != NATS_OK)
		return fail(subject, st, 0);
	fprintf(stderr, "ready\n");
	int got = 0;
	long long deadline = now_ms() + timeout_ms;
	while (got < n) {
		long long left = deadline - now_ms();
		if (left <= 0)
			break;
		natsMsg *m = NULL;
		st = natsSubscription_NextMsg(&m, s, left);
		if (st != NATS_OK)
			break;
		if (!skipped(natsMsg_GetSubject(m), skip, n_skip)) {
			if (with_subject)
				printf("%s ", natsMsg_GetSubject(m));
			printf("%.*s\n", natsMsg_GetDataLength(m), natsMsg_GetData(m));
			fflush(stdout);
			got++;
		}
		natsMsg_Destroy(m);
	}
	natsSubscription_Destroy(s);
	if (got < n) {
		fprintf(stderr, "jsctl: %d of %d messages on %s in %d ms\n", got, n, subject, timeout_ms);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int with_subject = 0;
	const char *skip[MAX_SKIP];
	int n_skip = 0;
	const char *creds = NULL;
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-s") == 0)
			with_subject = 1;
		else if (strcmp(argv[i], "-x") == 0 && i + 1 < argc && n_skip < MAX_SKIP)
			skip[n_skip++] = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			creds = argv[++i];
		else
			return usage();
	}
	if (argc - i < 2)
		return usage();
	const char *url = argv[i], *cmd = argv[i + 1];
	char **a = argv + i + 2;
	int na = argc - i - 2;
	natsConnection *nc = NULL;
	natsOptions *opts = NULL;
	natsStatus st = natsOptions_Create(&opts);
	if (st == NATS_OK)
		st = natsOptions_SetURL(opts, url);
	if (st == NATS_OK && creds)
		st = natsOptions_SetUserCredentialsFromFiles(opts, creds, NULL);
	if (st == NATS_OK)
		st = natsConnection_Connect(&nc, opts);
	natsOptions_Destroy(opts);
	if (st != NATS_OK) {
		const char *last = nats_GetLastError(NULL);
		fprintf(stderr, "jsctl: %s: %s%s%s\n", url, natsStatus_GetText(st), last ? ": " : "", last ? last : "");
		return 1;
	}
	jsCtx *js = NULL;
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	st = natsConnection_JetStream(&js, nc, &jo);
	if (st != NATS_OK)
		return fail("JetStream", st, 0);
	int rc;
	if (strcmp(cmd, "ensure") == 0 && na == 1)
		rc = ensure(js, a[0]);
	else if (strcmp(cmd, "consumer") == 0 && (na == 2 || na == 3))
		rc = consumer(js, a[0], a[1], na == 3 ? atoll(a[2]) : 30000);
	else if (strcmp(cmd, "delconsumer") == 0 && na == 2) {
		char stream[128], name[128];
		snprintf(stream, sizeof(stream), "LATTICE_%s_CMD", a[0]);
		snprintf(name, sizeof(name), "agent_%s", a[1]);
		jsErrCode e = 0;
		st = js_DeleteConsumer(js, stream, name, NULL, &e);
		rc = st == NATS_OK ? 0 : fail(name, st, e);
	} else if (strcmp(cmd, "publish") == 0 && (na == 3 || na == 4))
		rc = publish(js, a[0], a[1], a[2], na == 4 ? a[3] : NULL);
	else if ((strcmp(cmd, "acks") == 0 || strcmp(cmd, "snaps") == 0) && na == 3)
		rc = drain(js, a[0], strcmp(cmd, "acks") == 0 ? "ack" : "snap", atoi(a[1]), atoi(a[2]));
	else if (strcmp(cmd, "sub") == 0 && na == 3)
		rc = sub(nc, a[0], atoi(a[1]), atoi(a[2]), with_subject, skip, n_skip);
	else if (strcmp(cmd, "pending") == 0 && na >= 2) {
		/* One line per node, over one connection (a test asks for hundreds). */
		char stream[128], name[128];
		snprintf(stream, sizeof(stream), "LATTICE_%s_CMD", a[0]);
		rc = 0;
		for (int k = 1; k < na; k++) {
			snprintf(name, sizeof(name), "agent_%s", a[k]);
			jsConsumerInfo *ci = NULL;
			jsErrCode e = 0;
			st = js_GetConsumerInfo(&ci, js, stream, name, NULL, &e);
			if (st == NATS_OK) {
				printf("%llu %lld\n", (unsigned long long)ci->NumPending, (long long)ci->NumAckPending);
				jsConsumerInfo_Destroy(ci);
			} else {
				rc = fail(name, st, e);
			}
		}
	} else if (strcmp(cmd, "stream") == 0 && na == 1) {
		jsStreamInfo *si = NULL;
		jsErrCode e = 0;
		st = js_GetStreamInfo(&si, js, a[0], NULL, &e);
		if (st == NATS_OK) {
			printf("replicas %lld leader %s peers %d\n", (long long)si->Config->Replicas,
			       si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "-",
			       si->Cluster ? si->Cluster->ReplicasLen : 0);
			jsStreamInfo_Destroy(si);
			rc = 0;
		} else {
			rc = fail(a[0], st, e);
		}
	} else
		rc = usage();
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_CloseAndWait(5000); /* its threads gone before exit (else they may run into the teardown) */
	return rc;
}
