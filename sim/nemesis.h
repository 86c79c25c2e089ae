/* nemesis — the faults of a chaos run (docs/chaos.md "Scenario keys",
 * "nemeses"): parsed from the scenario, then carried out on schedule by one
 * thread, each start and end written to the history.
 *
 * Agent faults go to the simulated agents (simrt_fault). Process faults and
 * partitions go through the callbacks of struct nemesis_env, so this module
 * does not know how the lattice was built (sim/cluster.c does) and can be
 * tested with stand-ins. */
#ifndef LATTICE_NEMESIS_H
#define LATTICE_NEMESIS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"
#include "simrt.h"

enum nemesis_kind {
	NEM_KILL_AGENTS,
	NEM_CRASH_AGENTS,
	NEM_FLAP_AGENTS,
	NEM_SLOW_ACKS,
	NEM_CUT_AGENTS,
	NEM_KILL_REPLICA,
	NEM_PG,
	NEM_NATS_RESTART,
	NEM_PARTITION,
};

enum nemesis_part { NEM_PART_LEADER_ISOLATED, NEM_PART_MINORITY, NEM_PART_BRIDGE };

/* One scheduled fault. WHICH_LEADER / WHICH_FOLLOWER are resolved when it starts. */
#define NEM_WHICH_LEADER (-1)
#define NEM_WHICH_FOLLOWER (-2)

struct nemesis {
	enum nemesis_kind kind;
	int64_t at_ms;
	int64_t for_ms;     /* 0: to the end of the run (agent faults that can last) */
	long long count;    /* agent faults: how many (0: by fraction or nodes) */
	double fraction;    /* of the agents (of region's when given) */
	char *region;       /* NULL: any */
	char **nodes;       /* explicit targets, NULL-terminated; NULL: none */
	int disk;           /* crash_agents: restart with the state dir */
	int64_t period_ms;  /* flap_agents */
	int64_t delay_ms;   /* slow_acks */
	int which;          /* kill_replica, pg: 1..N or NEM_WHICH_* */
	int kill9;          /* pg */
	enum nemesis_part part;
};

struct nemesis_plan {
	struct nemesis *v;
	size_t n;
};

/* Parses the scenario's "nemeses" (borrowed; NULL = none) strictly: an
 * unknown key for that f, a wrong type or a value out of range is an error
 * naming "nemeses[i].key". replicas is the cluster's size (which: 1..N), netns
 * whether partitions can be made, duration_ms the run's length (at_s must be
 * within it). Two partitions whose times overlap are refused (one cut set at a
 * time). *out owned by the caller: nemesis_plan_free. */
int nemesis_parse(json_t *nemeses, int replicas, int netns, int64_t duration_ms, struct nemesis_plan *out, char *err,
		  size_t errlen);
void nemesis_plan_free(struct nemesis_plan *p);
/* Name of a kind, as in the scenario ("kill_agents"...). */
const char *nemesis_name(enum nemesis_kind k);

/* How process faults reach the lattice. Each returns 0 or -1 with err. */
struct nemesis_env {
	void *ctx;
	int replicas;
	int (*leader)(void *ctx);   /* the agreed leader 1..N, 0: none now */
	int (*replica_kill)(void *ctx, int i, char *err, size_t errlen);
	int (*replica_start)(void *ctx, int i, char *err, size_t errlen);
	int (*pg_stop)(void *ctx, int i, int kill9, char *err, size_t errlen);
	int (*pg_start)(void *ctx, int i, char *err, size_t errlen);
	int (*nats_stop)(void *ctx, char *err, size_t errlen);
	int (*nats_start)(void *ctx, char *err, size_t errlen);
	int (*cut)(void *ctx, int i, int j, char *err, size_t errlen); /* both directions */
	int (*heal)(void *ctx, char *err, size_t errlen);
	/* Nodes the observer should follow (the targets of agent faults). May be NULL. */
	void (*watch_nodes)(void *ctx, const char *const *ids, size_t n);
};

struct nemesis_run;

/* Starts the thread that carries out plan (borrowed; must outlive the run)
 * on hist's clock: agent faults through rt, the rest through env (copied).
 * seed makes the choice of targets repeatable. */
int nemesis_start(struct nemesis_run **out, const struct nemesis_plan *plan, const struct simrt_scenario *sc,
		  struct simrt *rt, const struct nemesis_env *env, struct hist *h, uint64_t seed, char *err,
		  size_t errlen);
/* Every fault started and ended (those with an end). */
int nemesis_done(struct nemesis_run *r);
/* Ends what still lasts now (heals partitions, restarts what is down, thaws
 * frozen agents only if heal_agents), then stops the thread. Faults that last
 * to the end of the run keep their agents dead unless heal_agents. */
void nemesis_stop(struct nemesis_run *r, int heal_agents);
/* Faults started, ended, skipped (could not start) and failed (an action
 * returned an error: logged and in the history). */
void nemesis_counts(struct nemesis_run *r, uint64_t *started, uint64_t *ended, uint64_t *skipped, uint64_t *failed);

#endif
