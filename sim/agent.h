/* agent — the edge agent's core, as docs/protocol.md's "The agent" describes it:
 * command handling (target check, at-most-once by command_id, fencing per object,
 * apply, durable record), the actors it runs (through a driver), heartbeats and
 * snapshots. It does no network I/O and reads no clock: the caller passes
 * monotonic time (now, ms) and gives it a small I/O table for wall time and for
 * publishing snapshots, and carries out what it returns (publish the ack, ack
 * or term the JetStream message). So one process can hold thousands of agents
 * (lattice-sim) and tests can drive one by hand. Not thread-safe: one owner.
 *
 * Durable state (state_dir/journal, sim/journal.h): the outcome of the last
 * AGENT_MAX_COMMAND_IDS applied command ids, the fencing position of every
 * object, the security policy, and the actors it runs with their last
 * snapshot. Each applied command is written and fsynced before its ack is
 * returned (or, with agent_handle_deferred, before the caller sends it: one
 * fsync for a whole fetched batch). The journal is compacted at open and whenever it holds more than
 * twice the live records plus 10,000. */
#ifndef LATTICE_AGENT_H
#define LATTICE_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "driver.h"

#define AGENT_MAX_COMMAND_IDS 100000

struct agent_label {
	const char *key;
	const char *value;
};

/* All strings borrowed for agent_open; the agent copies them. */
struct agent_config {
	const char *lattice;
	const char *node_id;
	const char *region;
	const struct agent_label *labels;
	size_t n_labels;
	long long cpu_capacity; /* millicores, 0 = unknown */
	long long memory_mb;    /* MiB, 0 = unknown */
	const char *agent_version;
	const char *agent_instance; /* random per process start (16 hex) */
	int64_t snapshot_interval_ms; /* periodic snapshots of changed actors; 0: only on actor_migrate */
	/* Heartbeats report the sum of the running actors' requests as measured
	 * usage instead of the caller's figures (simulated agents). */
	int usage_from_requests;
	size_t max_command_ids; /* 0: AGENT_MAX_COMMAND_IDS */
};

struct agent_io {
	void *ctx;
	/* Unix time in ms: sent_at, at, taken_at. */
	int64_t (*wall_ms)(void *ctx);
	/* Publishes a snapshot message to JetStream with header Nats-Msg-Id: msg_id.
	 * All borrowed. Returns 0 once the stream stored it (or had it already). */
	int (*publish_snapshot)(void *ctx, const char *subject, const char *msg_id, const char *json, size_t len);
};

enum agent_verdict {
	AGENT_ACK,   /* publish reply.ack with Nats-Msg-Id reply.ack_msg_id, then ack the message */
	AGENT_TERM,  /* unreadable (no command_id): natsMsg_Term so it is not redelivered forever */
	AGENT_RETRY, /* not applied now (a snapshot or the journal failed): leave it for redelivery */
};

struct agent_reply {
	enum agent_verdict verdict;
	char *command_id; /* when readable, else NULL */
	char *ack;        /* AGENT_ACK: the ack message (JSON) */
	char *ack_msg_id; /* AGENT_ACK: "ack-<command_id>" */
	int applied;      /* 1: this call applied it; 0: replayed, refused or not applied */
	int ok;           /* AGENT_ACK: status "ok" */
	char *error;      /* AGENT_ACK with an error: its text; TERM/RETRY: why */
};

struct agent;

/* Checks that s is a subject token: 1-64 of [A-Za-z0-9_-]. */
int agent_valid_token(const char *s);

/* Creates an agent. drv is transferred (destroyed with the agent, also on
 * failure). io is copied. state_dir (borrowed; NULL keeps nothing on disk)
 * must exist; its journal is replayed and compacted, and the actors it lists
 * are started again (sim actors from their last snapshot). */
int agent_open(struct agent **out, const struct agent_config *cfg, const struct agent_io *io,
	       struct driver *drv, const char *state_dir, int64_t now, char *err, size_t errlen);
/* Stops the driver's actors (exec: their processes) and frees everything.
 * Nothing is written: a restarted agent with this state dir starts them again. */
void agent_close(struct agent *a);

/* Handles one command message (data borrowed, need not be NUL-terminated).
 * Fills *r (release it with agent_reply_release). Never fails on bad input. */
void agent_handle_command(struct agent *a, const char *data, size_t len, int64_t now, struct agent_reply *r);
/* The same, but the journal records are written and not fsynced: call
 * agent_sync, and carry out no AGENT_ACK reply of the batch before it returns
 * 0 (a replayed command may be one applied earlier in the same batch). */
void agent_handle_deferred(struct agent *a, const char *data, size_t len, int64_t now, struct agent_reply *r);
/* fsyncs what deferred commands and snapshots wrote (0 at once when nothing
 * is pending). On -1 the records' durability is unknown (a failed fsync may
 * have dropped them): the caller must not ack and should exit, so a restart
 * replays the journal, which is the truth. */
int agent_sync(struct agent *a, char *err, size_t errlen);
void agent_reply_release(struct agent_reply *r);

/* Housekeeping: driver poll (crashes count as errors), periodic snapshots.
 * Call at least every 500 ms (an exec actor that died is restarted then). */
void agent_tick(struct agent *a, int64_t now);

/* Builds the next heartbeat (seq + 1). cpu/mem measured: the host's usage,
 * ignored with usage_from_requests. Returns malloc'd JSON, NULL on OOM. */
char *agent_heartbeat(struct agent *a, int64_t now, long long cpu_measured, long long memory_measured_mb);

/* Errors in the last 60 s: failed commands, crashed actors, bad messages. */
int agent_error_count(struct agent *a, int64_t now);
/* Counts an error seen outside the agent (the caller's I/O), for error_count. */
void agent_note_error(struct agent *a, int64_t now);
/* Commands applied since open (not replays, not refusals). */
uint64_t agent_applied_count(const struct agent *a);
/* The version of the last security_policy applied (0: none). */
long long agent_policy_version(const struct agent *a);
/* Calls fn for each instance the driver has (strings borrowed for the call). */
void agent_list(struct agent *a, void (*fn)(void *ctx, const struct driver_status *st), void *ctx);

/* Subjects (borrowed, live as long as a): lattice.L.{hb,cmd,ack,snap}.<node_id>. */
const char *agent_subject_hb(const struct agent *a);
const char *agent_subject_cmd(const struct agent *a);
const char *agent_subject_ack(const struct agent *a);
const char *agent_subject_snap(const struct agent *a);
/* "agent_<node_id>" and "LATTICE_<L>_CMD". */
const char *agent_consumer(const struct agent *a);
const char *agent_cmd_stream(const struct agent *a);
const char *agent_node_id(const struct agent *a);

/* RFC 3339 UTC with milliseconds ("2026-12-02T10:15:30.125Z") into buf (≥ 25 bytes). */
void agent_format_time(int64_t unix_ms, char *buf, size_t len);

#endif
