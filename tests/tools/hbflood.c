/* hbflood — floods the heartbeat subject for tests/integration/edge_limits.sh.
 *
 *   hbflood URL LATTICE NODE COUNT [INSTANCE]
 *       Publishes COUNT heartbeats of node NODE on lattice.LATTICE.hb.NODE (core
 *       NATS), as fast as the connection takes them, with agent_instance
 *       INSTANCE (default "flood") and seq 1..COUNT, then flushes (a round trip:
 *       the server has routed every one of them). Prints "sent COUNT".
 *       Exit status: 0, 1 (failed), 2 (usage).
 *
 * Each heartbeat is valid (docs/protocol.md), so whatever the leader drops it
 * drops for their number, not their content. Uses nats.c only.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nats/nats.h>

static int fail(const char *what, natsStatus s)
{
	fprintf(stderr, "hbflood: %s: %s (%s)\n", what, natsStatus_GetText(s), nats_GetLastError(NULL));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: hbflood URL LATTICE NODE COUNT [INSTANCE]\n");
		return 2;
	}
	const char *url = argv[1], *lattice = argv[2], *node = argv[3];
	const char *instance = argc == 6 ? argv[5] : "flood";
	char *end = NULL;
	long long count = strtoll(argv[4], &end, 10);
	if (end == argv[4] || *end != '\0' || count < 1) {
		fprintf(stderr, "hbflood: COUNT must be an integer >= 1\n");
		return 2;
	}
	char subject[256];
	snprintf(subject, sizeof(subject), "lattice.%s.hb.%s", lattice, node);
	natsOptions *opts = NULL;
	natsConnection *nc = NULL;
	natsStatus s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, url);
	/* A large write buffer: fewer, bigger writes, so the flood is fast. */
	if (s == NATS_OK)
		s = natsOptions_SetIOBufSize(opts, 1024 * 1024);
	if (s == NATS_OK)
		s = natsConnection_Connect(&nc, opts);
	natsOptions_Destroy(opts);
	if (s != NATS_OK)
		return fail("connecting", s);
	char body[1024];
	int rc = 0;
	for (long long seq = 1; seq <= count; seq++) {
		int n = snprintf(body, sizeof(body),
				 "{\"node_id\":\"%s\",\"region\":\"flood\",\"labels\":{},\"cpu_capacity\":1000,"
				 "\"memory_mb\":1024,\"cpu_measured\":0,\"memory_measured_mb\":0,\"actors\":[],"
				 "\"error_count\":0,\"policy_version\":0,\"agent_version\":\"hbflood\","
				 "\"agent_instance\":\"%s\",\"seq\":%lld,\"sent_at\":\"2026-12-02T10:00:00.000Z\"}",
				 node, instance, seq);
		s = natsConnection_Publish(nc, subject, body, n);
		if (s != NATS_OK) {
			rc = fail("publishing", s);
			break;
		}
	}
	if (rc == 0 && (s = natsConnection_FlushTimeout(nc, 60000)) != NATS_OK)
		rc = fail("flushing", s);
	if (rc == 0)
		printf("sent %lld\n", count);
	natsConnection_Destroy(nc);
	nats_CloseAndWait(5000); /* its threads gone before exit (else they may run into the teardown) */
	return rc;
}
