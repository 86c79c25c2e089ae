/* simrt — the runtime of lattice-sim: N simulated agents (sim/agent.h cores with
 * the sim driver) in one process, over ONE NATS connection (sim/README.md
 * "lattice-sim").
 *
 * nats.c's natsSubscription_Fetch is one blocking request loop per consumer;
 * 2,000 of them would swamp nats-server. Instead each agent keeps one JetStream
 * pull request outstanding, sent by hand on core NATS
 * ($JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>, reply _INBOX.<sim>.<agent>.<gen>),
 * and one wildcard subscription receives every agent's commands and the
 * requests' status messages (408 expired, 409, ...). A few worker threads each
 * own a slice of the agents: the delivery callback only queues a message to
 * the worker owning its agent, and the worker does everything else for its
 * agents (heartbeats, agent_tick, pull requests, command batches: apply,
 * fsync, acks published to JetStream and awaited, then the command messages
 * acked). So an agent core is only ever touched by its worker's thread.
 *
 * The scenario (simrt_scenario_*) is the JSON file that says which agents run:
 * sim/scenarios/README.md. */
#ifndef LATTICE_SIMRT_H
#define LATTICE_SIMRT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent.h"
#include "hist.h"

/* ---- scenario ------------------------------------------------------------- */

/* One "agents" entry: count agents named <prefix>-0000, <prefix>-0001, ... */
struct simrt_group {
	char *prefix;
	char *region;
	struct agent_label *labels; /* keys and values owned by the scenario */
	size_t n_labels;
	long long cpu_capacity; /* millicores */
	long long memory_mb;
	long long count;
};

struct simrt_scenario {
	char *lattice;
	long long heartbeat_ms;
	long long snapshot_ms;
	struct simrt_group *groups;
	size_t n_groups;
	size_t n_agents; /* sum of the counts */
	/* The chaos run's keys (docs/chaos.md "Scenario keys"), kept as JSON for
	 * their own parsers (cluster.c, work.c, nemesis.c); NULL when absent.
	 * Owned by the scenario. */
	json_t *cluster;
	json_t *workload;
	json_t *nemeses;
	long long duration_s; /* workload and faults; default 60 */
	long long settle_s;   /* after them, before the final state is read; default 30 */
};

/* Parses a scenario from JSON text (len bytes, borrowed). Strict: unknown
 * keys, wrong types, values out of range and duplicate node ids are refused
 * with a message naming the key (e.g. "agents[1].count: want an integer
 * 1-100000"). On success *out is owned by the caller (simrt_scenario_free). */
int simrt_scenario_parse(struct simrt_scenario **out, const char *json, size_t len, char *err, size_t errlen);
/* The same from a file (path borrowed); the message starts with the path. */
int simrt_scenario_load(struct simrt_scenario **out, const char *path, char *err, size_t errlen);
void simrt_scenario_free(struct simrt_scenario *sc);
/* The node id of agent i (0 <= i < n_agents), in scenario order, into buf
 * (at least 72 bytes). Returns the group of the agent. */
const struct simrt_group *simrt_scenario_node(const struct simrt_scenario *sc, size_t i, char *buf, size_t len);

/* ---- runtime -------------------------------------------------------------- */

/* All strings borrowed for simrt_start. */
struct simrt_options {
	const char *nats;      /* URL[,URL...] of one cluster */
	const char *creds;     /* NULL: none */
	const char *state_dir; /* each agent keeps <state_dir>/<node_id>/journal */
	const char *agent_version;
	int threads;           /* workers, >= 1 */
	int64_t pull_expires_ms; /* expiry of a bound agent's pull request; 0: 30,000 */
	struct hist *hist;     /* NULL: none; else agent lines (docs/chaos.md) are written to it */
};

struct simrt_stats {
	uint64_t agents;
	uint64_t bound;     /* agents whose consumer answered their last pull request */
	uint64_t applied;   /* commands applied (not replays nor refusals) */
	uint64_t acks;      /* ack messages stored by JetStream */
	uint64_t msg_acks;  /* command messages acked (+ACK) */
	uint64_t naks;      /* command messages NAKed (redelivered later) */
	uint64_t terms;     /* command messages terminated (unreadable) */
	uint64_t heartbeats;
	uint64_t pulls;     /* pull requests sent */
	uint64_t errors;    /* failed publishes, journal errors, unexpected statuses */
};

struct simrt;

/* Opens every agent of sc (state dirs created; journals replayed: their actors
 * run again), connects to NATS (in the background when it is not reachable
 * yet: it reconnects forever) and starts the workers. sc must outlive the
 * runtime. Returns 0, or -1 with err (then nothing is left running). */
int simrt_start(struct simrt **out, const struct simrt_scenario *sc, const struct simrt_options *o, char *err,
		size_t errlen);
void simrt_get_stats(struct simrt *rt, struct simrt_stats *st);
/* Set when an agent's journal fsync failed: its durability is unknown, so the
 * process must exit without acking (a restart replays the journals). */
int simrt_failed(struct simrt *rt);
/* Stops the workers, closes the agents (nothing written) and the connection. */
void simrt_stop(struct simrt *rt);

/* ---- faults (docs/chaos.md "nemeses") ---------------------------------------- */

size_t simrt_agents(const struct simrt *rt);
/* Node id of agent idx (borrowed, lives as long as rt). */
const char *simrt_agent_id(const struct simrt *rt, size_t idx);
/* Index of node_id, or -1. */
long simrt_agent_find(const struct simrt *rt, const char *node_id);

enum simrt_fault {
	SIMRT_FREEZE,        /* stops: no heartbeats, commands left unacked (a hung or unreachable node) */
	SIMRT_THAW,          /* goes on where it stopped */
	SIMRT_CRASH,         /* the process dies: its actors are gone, its disk stays */
	SIMRT_RESTART,       /* a crashed agent starts again from its state dir */
	SIMRT_RESTART_EMPTY, /* ... from an empty state dir (a new disk) */
	SIMRT_CUT,           /* loses NATS: nothing in or out, but keeps running */
	SIMRT_UNCUT,
	SIMRT_SLOW_ACKS,     /* arg: every ack published arg ms late (0: on time again) */
};
/* Queues fault f for agent idx to the worker owning it (applied within a few
 * ms, in the order queued). A fault that does not apply (RESTART of a running
 * agent, THAW of one not frozen) is ignored. History lines: crash, restart,
 * dead (frozen), alive (thawed). Returns 0, -1 on a bad index or OOM. */
int simrt_fault(struct simrt *rt, size_t idx, enum simrt_fault f, int64_t arg);
/* Holds every agent still (no heartbeats, commands, acks or snapshots: the
 * worker threads wait) until simrt_resume; returns once they all stand still.
 * Messages arriving meanwhile wait in the queues. Keep it short: a pause
 * longer than the heartbeat timeout makes the nodes look dead. */
void simrt_pause(struct simrt *rt);
void simrt_resume(struct simrt *rt);
/* What every agent runs now, for final.json's "agents" (docs/chaos.md): the
 * workers are paused while it is read (if they are not already). Owned by the
 * caller. */
json_t *simrt_view(struct simrt *rt);

#endif
