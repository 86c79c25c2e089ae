/* work — the workload of a chaos run (docs/chaos.md "The workload"): client
 * threads that create, scale, migrate and delete actors, replace policies and
 * read actors with ?consistent=true through the REST API of a random replica
 * each time, and record every request in the history: an `invoke` before it
 * is sent, then exactly one `ok` / `fail` / `info` for it.
 *
 * Each operation is ONE attempt (no retry, no Idempotency-Key): a request
 * whose outcome is unknown stays `info` and the checker treats it as possibly
 * applied, which keeps the history simple.
 *
 * What a client does (operation, actor, values, replica, pacing) is a function
 * of the seed; what the lattice answers is not.
 *
 * Threads: work_start starts cfg->clients threads; work_stats may be called
 * from any thread; work_stop and work_free from the thread that started it. */
#ifndef LATTICE_WORK_H
#define LATTICE_WORK_H

#include <jansson.h>
#include <stdint.h>

#include "hist.h"

enum work_f { WORK_CREATE, WORK_SCALE, WORK_MIGRATE, WORK_DELETE, WORK_POLICY, WORK_READ, WORK_F_N };
enum work_outcome { WORK_OK, WORK_FAIL, WORK_INFO, WORK_OUTCOMES };

#define WORK_MAX_CLIENTS 64
#define WORK_MAX_REGIONS 16

struct work_cfg {
	/* scenario keys (docs/chaos.md, `workload`) */
	int clients;            /* 0..64, default 4 */
	double ops_per_s;       /* all clients together, (0, 10000], default 20 */
	int actors;             /* pool w-0000.., 1..10000, default 40 */
	int policies;           /* pool p-0.., 0..1000, default 2 */
	int64_t cpu_required;   /* default 100 */
	int64_t memory_required_mb; /* default 64 */
	int max_replicas;       /* 1..100, default 3 */
	int mix[WORK_F_N];      /* relative weights, default create 2, scale 3, migrate 1, delete 1, policy 1, read 4 */
	/* not scenario keys: the caller may change them after work_parse */
	int timeout_ms;         /* per request, default 10000 */
	char module[128];       /* the actors' module, default "registry.local/chaos:1" */
	/* Regions policy selectors pick from (the scenario's agent regions); none:
	 * selectors are [] (every node) or ["default"]. */
	char regions[WORK_MAX_REGIONS][64];
	int n_regions;
};

struct work_stats {
	uint64_t invoked;
	uint64_t n[WORK_F_N][WORK_OUTCOMES];
};

struct work;

/* Fills *cfg from the scenario's `workload` object (borrowed; NULL: every
 * default). Strict: an unknown key, a wrong type or a value out of range is
 * an error naming it ("workload.mix.scale: want an integer 0..1000"). A mix
 * with every weight 0 is an error when clients > 0. */
int work_parse(json_t *workload, struct work_cfg *cfg, char *err, size_t errlen);

/* Starts the clients. api_urls[0..n_replicas-1] are the replicas' base URLs
 * ("http://HOST:PORT"; replica i+1 in the history), copied. h is borrowed
 * until work_stop returns. *out is owned by the caller (work_free).
 * Returns 0, or -1 with err (nothing left running). */
int work_start(struct work **out, const struct work_cfg *cfg, const char *const *api_urls, int n_replicas,
	       struct hist *h, uint64_t seed, char *err, size_t errlen);

/* Counts so far (completions by f and outcome; invokes); final after
 * work_stop. */
void work_stats(struct work *w, struct work_stats *out);

/* Stops sending; waits for the requests in flight (each bounded by
 * cfg->timeout_ms), whose completions are recorded. Once is enough; again is
 * harmless. */
void work_stop(struct work *w);
/* Stops (if not yet) and frees w. NULL is fine. */
void work_free(struct work *w);

/* "create", "scale", ... / "ok", "fail", "info". */
const char *work_f_name(enum work_f f);
const char *work_outcome_name(enum work_outcome o);

/* How an answer is recorded (docs/chaos.md, the classification table):
 * status 0 = no answer; code = the error code of the body ("" none). For f a
 * read, no state changes whatever the answer. Exposed for tests. */
enum work_outcome work_classify(enum work_f f, int status, const char *code);

#endif
