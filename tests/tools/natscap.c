/* natscap — captures NATS messages to files for tests/lib/protocol.sh, and
 * publishes test messages.
 *
 *   natscap URL SUBJECT DIR
 *       Subscribes (core NATS) to SUBJECT (wildcards allowed, e.g.
 *       'lattice.default.>') and writes each message's body to
 *       DIR/<n>.<subject>.json and its headers, if any, to DIR/<n>.<subject>.hdr
 *       ("Name: value" lines), n counting from 000001. Each file appears whole
 *       (written aside, then renamed), the .hdr before its .json. Prints "ready"
 *       once the server has the subscription. On SIGTERM or SIGINT it flushes the
 *       connection (a round trip to the server) and writes what arrived before
 *       the answer, so every message the server routed to it before the signal
 *       is on disk; exits 0, or 1 if a message was lost (a slow consumer) or a
 *       file could not be written. It reconnects, forever, if the server goes
 *       away; what is published meanwhile is not captured.
 *   natscap --pub URL SUBJECT FILE [MSGID]
 *       Publishes FILE's bytes on SUBJECT (core NATS), with a Nats-Msg-Id
 *       header when MSGID is given, and flushes.
 *   natscap --jspub URL SUBJECT FILE [MSGID]
 *       The same through JetStream: waits for the stream's ack (a stream must
 *       cover SUBJECT). Prints "duplicate" when the stream dropped it as one.
 *   natscap --stream URL NAME SUBJECT
 *       Creates (or finds identical) a file stream NAME on SUBJECT with a
 *       2-minute duplicate window, as LATTICE_<L>_CMD/ACK/SNAP are.
 *
 * Uses nats.c only, none of lattice's code: what it checks must not lean on
 * what it checks.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static int usage(void)
{
	fprintf(stderr, "usage: natscap URL SUBJECT DIR\n"
			"       natscap --pub|--jspub URL SUBJECT FILE [MSGID]\n"
			"       natscap --stream URL NAME SUBJECT\n");
	return 2;
}

static void nats_fail(const char *what, natsStatus s)
{
	fprintf(stderr, "natscap: %s: %s (%s)\n", what, natsStatus_GetText(s), nats_GetLastError(NULL));
}

static void async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	(void)nc;
	(void)sub;
	(void)closure;
	fprintf(stderr, "natscap: asynchronous error: %s\n", natsStatus_GetText(err));
}

static natsStatus connect(natsConnection **nc, const char *url)
{
	natsOptions *opts = NULL;
	natsStatus s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, url);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1); /* a test may restart the server */
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, 100);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(opts, async_error, NULL);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc, opts);
	natsOptions_Destroy(opts);
	return s;
}

/* Reads a whole file; *len its size. NULL (and a message) on failure. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "natscap: %s: %s\n", path, strerror(errno));
		return NULL;
	}
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	while (buf != NULL) {
		n += fread(buf + n, 1, cap - n, f);
		if (n < cap)
			break;
		char *bigger = realloc(buf, cap * 2);
		if (bigger == NULL) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = bigger;
		cap *= 2;
	}
	if (buf == NULL || ferror(f)) {
		fprintf(stderr, "natscap: %s: cannot read\n", path);
		free(buf);
		buf = NULL;
	}
	fclose(f);
	*len = n;
	return buf;
}

/* ---- capture --------------------------------------------------------------- */

/* Writes len bytes to path through path.tmp, so a reader never sees half a file. */
static bool write_whole(const char *path, const char *data, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "wb");
	if (f == NULL) {
		fprintf(stderr, "natscap: %s: %s\n", tmp, strerror(errno));
		return false;
	}
	bool ok = fwrite(data, 1, len, f) == len;
	ok = (fclose(f) == 0) && ok;
	if (ok && rename(tmp, path) != 0)
		ok = false;
	if (!ok)
		fprintf(stderr, "natscap: cannot write %s: %s\n", path, strerror(errno));
	return ok;
}

/* "Name: value\n" for every value of every header into a malloc'd string
 * (*out NULL: none). False on allocation failure. */
static bool headers_text(natsMsg *m, char **out, size_t *len)
{
	const char **keys = NULL;
	int nkeys = 0;
	*out = NULL;
	*len = 0;
	if (natsMsgHeader_Keys(m, &keys, &nkeys) != NATS_OK || nkeys == 0) {
		free((void *)keys);
		return true;
	}
	size_t cap = 256, n = 0;
	char *buf = malloc(cap);
	bool ok = buf != NULL;
	for (int i = 0; ok && i < nkeys; i++) {
		const char **vals = NULL;
		int nvals = 0;
		if (natsMsgHeader_Values(m, keys[i], &vals, &nvals) != NATS_OK)
			nvals = 0;
		for (int j = 0; ok && j < nvals; j++) {
			size_t need = strlen(keys[i]) + strlen(vals[j]) + 4;
			while (ok && n + need >= cap) {
				char *bigger = realloc(buf, cap * 2);
				ok = bigger != NULL;
				if (ok) {
					buf = bigger;
					cap *= 2;
				}
			}
			if (ok)
				n += (size_t)snprintf(buf + n, cap - n, "%s: %s\n", keys[i], vals[j]);
		}
		free((void *)vals);
	}
	free((void *)keys);
	if (!ok) {
		free(buf);
		return false;
	}
	*out = buf;
	*len = n;
	return true;
}

static bool save(const char *dir, unsigned long n, natsMsg *m)
{
	/* A subject holding '/' cannot be a file name; '%' keeps it visibly wrong
	 * (no protocol token has it). */
	char subj[4096];
	snprintf(subj, sizeof(subj), "%s", natsMsg_GetSubject(m));
	for (char *p = subj; *p; p++)
		if (*p == '/')
			*p = '%';
	char path[4200];
	char *hdr;
	size_t hlen;
	if (!headers_text(m, &hdr, &hlen)) {
		fprintf(stderr, "natscap: out of memory\n");
		return false;
	}
	bool ok = true;
	if (hdr != NULL) {
		snprintf(path, sizeof(path), "%s/%06lu.%s.hdr", dir, n, subj);
		ok = write_whole(path, hdr, hlen);
		free(hdr);
	}
	snprintf(path, sizeof(path), "%s/%06lu.%s.json", dir, n, subj);
	const char *data = natsMsg_GetData(m);
	return ok && write_whole(path, data ? data : "", (size_t)natsMsg_GetDataLength(m));
}

static bool stop_asked(void)
{
	sigset_t pending;
	if (sigpending(&pending) != 0)
		return false;
	return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

static int capture(const char *url, const char *subject, const char *dir)
{
	/* Blocked in every thread (nats.c's threads inherit the mask): the signal
	 * stays pending and the loop below sees it between messages. */
	sigset_t stops;
	sigemptyset(&stops);
	sigaddset(&stops, SIGTERM);
	sigaddset(&stops, SIGINT);
	pthread_sigmask(SIG_BLOCK, &stops, NULL);

	natsConnection *nc = NULL;
	natsSubscription *sub = NULL;
	natsStatus s = connect(&nc, url);
	if (s != NATS_OK) {
		nats_fail(url, s);
		return 1;
	}
	s = natsConnection_SubscribeSync(&sub, nc, subject);
	if (s == NATS_OK) /* never drop a message for being slow: a test must see all */
		s = natsSubscription_SetPendingLimits(sub, -1, -1);
	if (s == NATS_OK)
		s = natsConnection_Flush(nc); /* the server has the subscription */
	if (s != NATS_OK) {
		nats_fail(subject, s);
		natsSubscription_Destroy(sub);
		natsConnection_Destroy(nc);
		return 1;
	}
	printf("ready\n");
	fflush(stdout);

	unsigned long n = 0;
	bool ok = true, stopping = false;
	for (;;) {
		natsMsg *m = NULL;
		s = natsSubscription_NextMsg(&m, sub, stopping ? 0 : 100);
		if (s == NATS_OK) {
			ok = save(dir, ++n, m) && ok;
			natsMsg_Destroy(m);
			continue;
		}
		if (s != NATS_TIMEOUT) {
			nats_fail("next message", s);
			ok = false;
			break;
		}
		if (stopping)
			break; /* everything that came before the flush's answer is written */
		if (stop_asked()) {
			stopping = true;
			s = natsConnection_Flush(nc);
			if (s != NATS_OK) {
				nats_fail("flush before exit", s);
				ok = false;
			}
		}
	}
	int64_t dropped = 0;
	if (natsSubscription_GetDropped(sub, &dropped) == NATS_OK && dropped > 0) {
		fprintf(stderr, "natscap: %" PRId64 " message(s) dropped: the capture is incomplete\n", dropped);
		ok = false;
	}
	natsSubscription_Destroy(sub);
	natsConnection_Destroy(nc);
	return ok ? 0 : 1;
}

/* ---- publish ---------------------------------------------------------------- */

static int publish(bool js_pub, const char *url, const char *subject, const char *file, const char *msgid)
{
	size_t len;
	char *data = slurp(file, &len);
	if (data == NULL)
		return 1;
	natsConnection *nc = NULL;
	natsMsg *m = NULL;
	jsCtx *js = NULL;
	jsPubAck *pa = NULL;
	jsErrCode jerr = 0;
	natsStatus s = connect(&nc, url);
	if (s == NATS_OK)
		s = natsMsg_Create(&m, subject, NULL, data, (int)len);
	if (s == NATS_OK && msgid != NULL)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", msgid);
	if (s == NATS_OK && js_pub) {
		s = natsConnection_JetStream(&js, nc, NULL);
		if (s == NATS_OK)
			s = js_PublishMsg(&pa, js, m, NULL, &jerr);
		if (s == NATS_OK && pa->Duplicate)
			printf("duplicate\n");
	} else if (s == NATS_OK) {
		s = natsConnection_PublishMsg(nc, m);
		if (s == NATS_OK)
			s = natsConnection_Flush(nc);
	}
	if (s != NATS_OK)
		nats_fail(subject, s);
	if (jerr != 0)
		fprintf(stderr, "natscap: JetStream error %d\n", (int)jerr);
	jsPubAck_Destroy(pa);
	jsCtx_Destroy(js);
	natsMsg_Destroy(m);
	natsConnection_Destroy(nc);
	free(data);
	return s == NATS_OK ? 0 : 1;
}

static int stream(const char *url, const char *name, const char *subject)
{
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;
	jsStreamConfig sc;
	const char *subjects[] = {subject};
	natsStatus s = connect(&nc, url);
	if (s == NATS_OK)
		s = natsConnection_JetStream(&js, nc, NULL);
	if (s == NATS_OK)
		s = jsStreamConfig_Init(&sc);
	if (s == NATS_OK) {
		sc.Name = name;
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Storage = js_FileStorage;
		sc.Duplicates = (int64_t)120 * 1000000000; /* ns */
		s = js_AddStream(&si, js, &sc, NULL, &jerr);
	}
	if (s != NATS_OK)
		nats_fail(name, s);
	if (jerr != 0)
		fprintf(stderr, "natscap: JetStream error %d\n", (int)jerr);
	jsStreamInfo_Destroy(si);
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	return s == NATS_OK ? 0 : 1;
}

int main(int argc, char **argv)
{
	int rc;
	if (argc == 4 && argv[1][0] != '-')
		rc = capture(argv[1], argv[2], argv[3]);
	else if ((argc == 5 || argc == 6) && (!strcmp(argv[1], "--pub") || !strcmp(argv[1], "--jspub")))
		rc = publish(argv[1][2] == 'j', argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
	else if (argc == 5 && !strcmp(argv[1], "--stream"))
		rc = stream(argv[2], argv[3], argv[4]);
	else
		return usage();
	/* Waits for nats.c's threads, so LeakSanitizer sees a quiet process. */
	nats_CloseAndWait(5000);
	return rc;
}
