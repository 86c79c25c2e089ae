/* bench_sched — placement decisions per second on a large synthetic fleet.
 *
 * Builds 10,000 nodes in 8 regions, then places 100,000 actors one after another,
 * accounting each placement as the model would, so the fleet fills up while the
 * scheduler works; once with the resources strategy, once with round robin.
 * Not a test: prints figures. Usage: bench_sched [nodes [actors]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "model.h"
#include "policy.h"
#include "sched.h"

static const char *const bench_regions[] = {"ap-east-1", "ap-southeast-1", "eu-central-1",
					    "eu-west-1", "sa-east-1", "us-east-1",
					    "us-west-1", "us-west-2"};
#define BENCH_NREGIONS 8

static unsigned long long bench_rng = 88172645463325252ULL;

static unsigned bench_rnd(unsigned n)
{
	/* xorshift64: fixed seed, so every run places the same actors. */
	bench_rng ^= bench_rng << 13;
	bench_rng ^= bench_rng >> 7;
	bench_rng ^= bench_rng << 17;
	return (unsigned)(bench_rng % n);
}

static int bench_kv(struct kvlist *l, const char *key, const char *value)
{
	/* Keys are added in sorted order by the caller. */
	struct kv *items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!items)
		return -1;
	l->items = items;
	items[l->n].key = strdup(key);
	items[l->n].value = strdup(value);
	if (!items[l->n].key || !items[l->n].value) {
		free(items[l->n].key);
		free(items[l->n].value);
		return -1;
	}
	l->n++;
	return 0;
}

static int bench_strlist(struct strlist *l, const char *s)
{
	char **items = realloc(l->items, (l->n + 1) * sizeof(*items));
	if (!items)
		return -1;
	l->items = items;
	if (!(items[l->n] = strdup(s)))
		return -1;
	l->n++;
	return 0;
}

static const char *const bench_zones[] = {"a", "b", "c", "d"};

static int bench_build(struct model *m, int nnodes)
{
	/* Policies: one denies blobstore in a region, one caps memory on "tier=core". */
	struct model_policy *p = calloc(1, sizeof(*p)), *q = calloc(1, sizeof(*q));
	if (!p || !q || !(p->spec.policy_id = strdup("deny-blob-sa")) ||
	    !(q->spec.policy_id = strdup("cap-core")) ||
	    bench_strlist(&p->spec.denied_contracts, "wasmcloud:blobstore") ||
	    bench_strlist(&p->spec.sel_regions, "sa-east-1") ||
	    bench_kv(&q->spec.sel_labels, "tier", "core") ||
	    hmap_put(&m->policies, p->spec.policy_id, p) || hmap_put(&m->policies, q->spec.policy_id, q)) {
		fprintf(stderr, "out of memory\n");
		return -1;
	}
	q->spec.max_actor_memory_mb = 1024;

	for (int i = 0; i < nnodes; i++) {
		char id[32];
		struct model_node *n = calloc(1, sizeof(*n));
		/* Ids registered in a scrambled order (7919 is prime, coprime to nnodes). */
		snprintf(id, sizeof(id), "edge-%05d", (int)((i * 7919LL) % nnodes));
		if (!n || !(n->spec.id = strdup(id)) ||
		    !(n->spec.region = strdup(bench_regions[bench_rnd(BENCH_NREGIONS)])) ||
		    bench_kv(&n->spec.labels, "tier", bench_rnd(4) ? "edge" : "core") ||
		    bench_kv(&n->spec.labels, "zone", bench_zones[bench_rnd(4)])) {
			fprintf(stderr, "out of memory\n");
			return -1;
		}
		/* 1% have not reported a capacity yet. */
		if (bench_rnd(100)) {
			n->spec.cpu_capacity = 4000 + 1000 * bench_rnd(13);
			n->spec.memory_mb = 4096 + 1024 * bench_rnd(29);
			n->spec.cpu_used = bench_rnd((unsigned)n->spec.cpu_capacity / 4);
			n->spec.memory_used_mb = bench_rnd((unsigned)n->spec.memory_mb / 4);
		}
		n->spec.actor_count = bench_rnd(5);
		n->cpu_used = n->spec.cpu_used;
		n->memory_used_mb = n->spec.memory_used_mb;
		n->actor_count = n->spec.actor_count;
		n->cpu_measured = n->memory_measured_mb = -1;
		unsigned s = bench_rnd(1000);
		n->status = s < 5 ? NODE_UNHEALTHY : s < 10 ? NODE_DEGRADED : NODE_HEALTHY;
		n->cordoned = bench_rnd(1000) < 5;
		if (hmap_put(&m->nodes, n->spec.id, n) != 0 || policy_refresh_node(m, n) != 0 ||
		    sched_index_update(&m->sched, n) != 0) {
			fprintf(stderr, "out of memory\n");
			return -1;
		}
	}
	return 0;
}

struct bench_actor {
	int64_t cpu, mem, count;
	const char *pref;
	int cons;     /* index into bench_cons, -1 none */
	int contract; /* index into bench_contracts */
};

static struct kvlist bench_cons[4];
static struct strlist bench_contracts[3];

static double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_run(const char *name, enum actor_strategy strategy, int nnodes,
		     const struct bench_actor *acts, int nacts)
{
	struct model m;
	struct sched_choice out[4];
	long long replicas = 0, insufficient = 0, fallback = 0, rotated = 0;

	model_init(&m);
	bench_rng = 88172645463325252ULL;
	if (bench_build(&m, nnodes) != 0)
		return -1;

	double t0 = bench_now();
	for (int i = 0; i < nacts; i++) {
		const struct bench_actor *a = &acts[i];
		struct sched_request req = {
			.cpu_required = a->cpu,
			.memory_required_mb = a->mem,
			.preferred_region = a->pref,
			.constraints = a->cons >= 0 ? &bench_cons[a->cons] : NULL,
			.contracts = &bench_contracts[a->contract],
			.strategy = strategy,
			.count = a->count,
		};
		char cursor[SPEC_ID_MAX + 1];
		int rc = sched_place(&m, &req, out, cursor);
		if (rc == SCHED_INSUFFICIENT) {
			insufficient++;
			continue;
		}
		if (rc != SCHED_OK) {
			fprintf(stderr, "sched_place: out of memory\n");
			return -1;
		}
		/* Commit as apply would: account every replica, move the cursor. */
		for (int64_t k = 0; k < a->count; k++) {
			model_node_account(&m, out[k].node, a->cpu, a->mem, +1);
			fallback += out[k].other_region;
			rotated += out[k].round_robin;
		}
		replicas += a->count;
		if (out[0].round_robin || strategy == STRATEGY_ROUND_ROBIN)
			memcpy(m.rr_cursor, cursor, sizeof(cursor));
	}
	double dt = bench_now() - t0;

	printf("%s: %d decisions on %d nodes in %.2f s = %.0f decisions/s "
	       "(%lld replicas placed, %lld outside the preferred region, %lld by rotation, "
	       "%lld insufficient)\n",
	       name, nacts, nnodes, dt, nacts / dt, replicas, fallback, rotated, insufficient);
	model_release(&m);
	return 0;
}

int main(int argc, char **argv)
{
	int nnodes = argc > 1 ? atoi(argv[1]) : 10000;
	int nacts = argc > 2 ? atoi(argv[2]) : 100000;
	if (nnodes <= 0 || nacts <= 0) {
		fprintf(stderr, "usage: bench_sched [nodes [actors]]\n");
		return 2;
	}
	struct bench_actor *acts = calloc((size_t)nacts, sizeof(*acts));
	if (!acts || bench_kv(&bench_cons[0], "zone", "a") || bench_kv(&bench_cons[1], "tier", "edge") ||
	    bench_kv(&bench_cons[2], "tier", "core") || bench_kv(&bench_cons[2], "zone", "b") ||
	    bench_kv(&bench_cons[3], "zone", "c") ||
	    bench_strlist(&bench_contracts[1], "wasmcloud:httpserver") ||
	    bench_strlist(&bench_contracts[2], "wasmcloud:blobstore") ||
	    bench_strlist(&bench_contracts[2], "wasmcloud:httpserver")) {
		fprintf(stderr, "out of memory\n");
		return 1;
	}

	/* The actors, drawn once so both strategies place the same ones. */
	bench_rng = 0x9E3779B97F4A7C15ULL;
	for (int i = 0; i < nacts; i++) {
		struct bench_actor *a = &acts[i];
		a->cpu = 50 + 50 * bench_rnd(10);
		a->mem = 32 << bench_rnd(5);
		a->count = bench_rnd(10) ? 1 : 2 + bench_rnd(2);
		unsigned r = bench_rnd(10);
		a->pref = r < 7 ? bench_regions[bench_rnd(BENCH_NREGIONS)] : "";
		a->cons = bench_rnd(20) ? -1 : (int)bench_rnd(4);
		a->contract = (int)bench_rnd(3);
	}

	int rc = bench_run("placement", STRATEGY_RESOURCES, nnodes, acts, nacts) ||
		 bench_run("round_robin", STRATEGY_ROUND_ROBIN, nnodes, acts, nacts);

	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("peak RSS: %ld KiB\n", ru.ru_maxrss);

	for (int i = 0; i < 4; i++)
		kvlist_free(&bench_cons[i]);
	for (int i = 0; i < 3; i++)
		strlist_free(&bench_contracts[i]);
	free(acts);
	return rc ? 1 : 0;
}
