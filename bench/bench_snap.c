/* bench_snap — Raft snapshots of a large model: what they cost the loop thread.
 *
 * Builds a model of 10,000 nodes and 100,000 actors the way a replica does (each
 * object an entry, decoded and applied; placements planned by sched_place), then
 * measures, three times each:
 *   - taking a snapshot as fsm_snapshot does: the loop thread forks (bgsave_start)
 *     and a child serialises; the pause is the fork, the rest runs beside it;
 *   - serialising on the calling thread (the fallback when fork fails);
 *   - restoring the snapshot (model_restore_text, as fsm_restore does at start-up
 *     and when installing one from the leader) and what it leaves resident.
 * Not a test: prints figures. Usage: bench_snap [nodes [actors [file]]] (file: where
 * the snapshot is written too, to look at or to feed to fuzz_snapshot). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <raft.h>

#include "bgsave.h"
#include "snapz.h"
#include "entry.h"
#include "model.h"
#include "sched.h"

static const char *const bench_regions[] = {"ap-east-1", "eu-central-1", "eu-west-1", "sa-east-1",
					    "us-east-1", "us-west-1", "us-west-2", "ap-southeast-1"};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* VmRSS or VmHWM of this process in MiB. */
static long status_mib(const char *key)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	size_t n = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':')
			kb = atol(line + n + 1);
	if (f)
		fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

static int apply_text(struct model *m, const char *text, uint64_t index)
{
	struct entry e;
	struct apply_result res;
	char err[256];
	if (entry_decode(text, strlen(text), &e, err, sizeof(err)) != 0) {
		fprintf(stderr, "bench_snap: entry does not decode: %s\n", err);
		return -1;
	}
	model_apply(m, &e, index, NULL, &res);
	entry_release(&e);
	if (res.code != APPLY_OK) {
		fprintf(stderr, "bench_snap: entry refused: %s\n", res.message);
		return -1;
	}
	return 0;
}

static int build(struct model *m, int nnodes, int nactors)
{
	char text[1024];
	uint64_t index = 0;
	int64_t at = 1796000000000LL;
	for (int i = 0; i < nnodes; i++) {
		snprintf(text, sizeof(text),
			 "{\"v\":1,\"op\":\"node_put\",\"at\":%lld,\"who\":\"api\",\"node\":{\"id\":\"node-%05d\","
			 "\"region\":\"%s\",\"labels\":{\"tier\":\"%s\",\"zone\":\"%c\"},\"cpu_capacity\":%d,"
			 "\"memory_mb\":%d}}",
			 (long long)at++, i, bench_regions[i % 8], i % 4 ? "edge" : "core", 'a' + i % 4,
			 100000 + 1000 * (i % 13), 262144 + 1024 * (i % 29));
		if (apply_text(m, text, ++index) != 0)
			return -1;
	}
	for (int i = 0; i < nactors; i++) {
		/* As bench_api creates them: a generated id, the smallest request. */
		char id[32];
		snprintf(id, sizeof(id), "act-%016llx", (unsigned long long)i * 0x9E3779B97F4A7C15ULL);
		struct sched_request req = {.actor_id = id, .cpu_required = 1, .memory_required_mb = 1,
					    .preferred_region = "", .strategy = STRATEGY_RESOURCES, .count = 1};
		struct sched_choice out[1];
		char cursor[SPEC_ID_MAX + 1];
		if (sched_place(m, &req, out, cursor) != SCHED_OK) {
			fprintf(stderr, "bench_snap: no room for actor %d\n", i);
			return -1;
		}
		snprintf(text, sizeof(text),
			 "{\"v\":1,\"op\":\"actor_create\",\"at\":%lld,\"who\":\"api\",\"actor\":{\"id\":\"%s\","
			 "\"name\":\"%s\",\"module\":\"registry.local/bench:1\",\"cpu_required\":1,"
			 "\"memory_required_mb\":1,\"preferred_region\":\"\",\"constraints\":{},\"priority\":0,"
			 "\"max_latency_ms\":0,\"replicas\":1,\"strategy\":\"resources\",\"contracts\":[]},"
			 "\"placements\":[\"%s\"]}",
			 (long long)at++, id, id, out[0].node->spec.id);
		if (apply_text(m, text, ++index) != 0)
			return -1;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

#define RUNS 3

int main(int argc, char **argv)
{
	int nnodes = argc > 1 ? atoi(argv[1]) : 10000;
	int nactors = argc > 2 ? atoi(argv[2]) : 100000;
	if (nnodes <= 0 || nactors < 0) {
		fprintf(stderr, "usage: bench_snap [nodes [actors [file]]]\n");
		return 2;
	}
	struct model m;
	model_init(&m);
	double t0 = now_ms();
	if (build(&m, nnodes, nactors) != 0)
		return 1;
	printf("model: %d nodes, %d actors applied in %.0f ms; RSS %ld MiB\n", nnodes, nactors, now_ms() - t0,
	       status_mib("VmRSS"));

	double fork_ms[RUNS], child_ms[RUNS], dump_ms[RUNS], restore_ms[RUNS];
	size_t len = 0, packed_len = 0;
	char *text = NULL;
	for (int r = 0; r < RUNS; r++) {
		struct bgsave bg;
		char err[160];
		t0 = now_ms();
		if (bgsave_start(&bg, &m, 42) != 0) {
			fprintf(stderr, "bench_snap: fork failed\n");
			return 1;
		}
		fork_ms[r] = now_ms() - t0;
		if (bgsave_collect(&bg, err, sizeof(err)) != 0) {
			fprintf(stderr, "bench_snap: %s\n", err);
			return 1;
		}
		child_ms[r] = now_ms() - t0;
		packed_len = bg.len; /* what raft writes: one zstd frame (snapz.h) */
		bgsave_release(&bg, bg.base);

		raft_free(text);
		t0 = now_ms();
		text = model_snapshot_dump(&m, 42, &len);
		dump_ms[r] = now_ms() - t0;
		if (text == NULL)
			return 1;
	}
	if (argc > 3) {
		FILE *f = fopen(argv[3], "wb");
		if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
			fprintf(stderr, "bench_snap: cannot write %s\n", argv[3]);
			return 1;
		}
	}
	/* Packing (the child does it after serialising) and unpacking (restore
	 * does it first), timed apart. */
	t0 = now_ms();
	size_t plen = 0;
	char *packed = snapz_pack(text, len, &plen);
	double pack_ms = now_ms() - t0;
	char *unpacked = NULL, zerr[256];
	size_t ulen = 0;
	t0 = now_ms();
	if (packed == NULL || snapz_unpack(packed, plen, &unpacked, &ulen, zerr, sizeof(zerr)) != SNAPZ_OK || ulen != len) {
		fprintf(stderr, "bench_snap: snapz round trip failed\n");
		return 1;
	}
	double unpack_ms = now_ms() - t0;
	free(unpacked);
	raft_free(packed);
	long rss_before = status_mib("VmRSS");
	long rss_after = 0;
	for (int r = 0; r < RUNS; r++) {
		struct model back;
		char err[512];
		uint64_t index;
		model_init(&back);
		t0 = now_ms();
		int rc = model_restore_text(&back, text, len, &index, err, sizeof(err));
		restore_ms[r] = now_ms() - t0;
		if (rc != MODEL_SNAP_OK) {
			fprintf(stderr, "bench_snap: restore: %s\n", err);
			return 1;
		}
		model_release(&back);
		rss_after = status_mib("VmRSS");
	}
	qsort(fork_ms, RUNS, sizeof(double), cmp_double);
	qsort(child_ms, RUNS, sizeof(double), cmp_double);
	qsort(dump_ms, RUNS, sizeof(double), cmp_double);
	qsort(restore_ms, RUNS, sizeof(double), cmp_double);
	printf("snapshot: %zu bytes (%.1f MiB) of text, written as a zstd frame of %zu bytes (%.1f MiB, %.1fx); "
	       "packing %.0f ms, unpacking %.0f ms\n",
	       len, (double)len / 1048576.0, packed_len, (double)packed_len / 1048576.0,
	       packed_len ? (double)len / (double)packed_len : 0.0, pack_ms, unpack_ms);
	printf("take (fsm_snapshot): the loop pauses %.1f ms (fork; min %.1f, max %.1f); the child serialises "
	       "in %.0f ms beside it\n",
	       fork_ms[RUNS / 2], fork_ms[0], fork_ms[RUNS - 1], child_ms[RUNS / 2]);
	printf("serialise on the loop thread (fork failed): %.0f ms (min %.0f, max %.0f)\n", dump_ms[RUNS / 2], dump_ms[0],
	       dump_ms[RUNS - 1]);
	printf("restore (fsm_restore, no projection rebuild): %.0f ms (min %.0f, max %.0f); RSS %ld MiB before, "
	       "%ld MiB after (peak %ld MiB)\n",
	       restore_ms[RUNS / 2], restore_ms[0], restore_ms[RUNS - 1], rss_before, rss_after, status_mib("VmHWM"));
	printf("RESULT nodes=%d actors=%d bytes=%zu packed_bytes=%zu fork_ms=%.1f child_ms=%.0f dump_ms=%.0f restore_ms=%.0f "
	       "rss_restore_mib=%ld\n",
	       nnodes, nactors, len, packed_len, fork_ms[RUNS / 2], child_ms[RUNS / 2], dump_ms[RUNS / 2], restore_ms[RUNS / 2],
	       rss_after - rss_before);
	raft_free(text);
	model_release(&m);
	return 0;
}
