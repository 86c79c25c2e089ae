/* bus — latticed's side of NATS (docs/protocol.md): the connection, the
 * streams and consumers the leader keeps, and the heartbeats it listens to.
 *
 * Threads: nats.c runs its own (connection reader, flusher, one delivery thread
 * for the heartbeat subscription); every blocking JetStream call runs on the
 * bus's worker thread. Nothing here touches the model: what the loop must know
 * (heartbeats, decoded, in arrival order) is queued and handed over on the loop
 * thread through a uv_async_t, to bus_cbs.heartbeat. The loop tells the bus
 * when this replica starts and stops leading (bus_lead).
 *
 * latticed keeps serving its API while NATS is away: the connection retries
 * forever in the background, and the leader's set-up runs again each time it
 * comes back. */
#ifndef LATTICE_BUS_H
#define LATTICE_BUS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

struct config;
struct bus_job;
struct bus_event;

/* Messages dropped, by subject kind and reason (lattice_nats_dropped_total). */
enum bus_subject { BUS_SUBJ_HB = 0, BUS_SUBJ_ACK, BUS_SUBJ_SNAP, BUS_SUBJECTS };
const char *bus_subject_name(enum bus_subject s);

struct bus_stats {
	atomic_uint_fast64_t dropped[BUS_SUBJECTS][PROTO_DROPS];
	atomic_uint_fast64_t heartbeats;  /* accepted and handed to the loop */
	atomic_uint_fast64_t reconnects;  /* times the connection came back */
	atomic_uint_fast64_t errors_stream_config, errors_jetstream;
	/* Commands stored by JetStream / not (a publish error or no answer in
	 * time); agents' acks read from the ack stream (before any check). */
	atomic_uint_fast64_t published, publish_errors, acks;
	/* From this replica's model, once a second (edge.c): nodes whose applied
	 * policy version is behind the one they should apply; unhealthy nodes. */
	atomic_uint_fast64_t nodes_policy_behind, nodes_unhealthy;
	atomic_int connected;   /* 1 while connected to a NATS server */
	atomic_int streams_ok;  /* 1 once the leader's streams and consumers are set up */
};

/* A command to publish (bus_publish): subject and body JSON, with the
 * command id as its Nats-Msg-Id. */
struct bus_cmd {
	char *id, *subject, *body; /* owned */
	size_t len;
};

struct bus_cbs {
	void *arg;
	/* Loop thread: a heartbeat that passed proto_hb_decode (transferred: the
	 * callee frees it with proto_hb_free + free). now_ms: monotonic arrival. */
	void (*heartbeat)(void *arg, struct proto_hb *hb, int64_t now_ms);
	/* Loop thread: JetStream stored command `id` (ok), or did not (err says why). */
	void (*published)(void *arg, const char *id, bool ok, const char *err);
	/* Loop thread: an agent's ack that passed proto_ack_decode (transferred:
	 * proto_ack_free + free), and its JetStream message, to be acked with
	 * bus_msg_done once the ack is in the log (transferred). */
	void (*ack)(void *arg, struct proto_ack *ack, void *msg);
	/* Loop thread: an actor's state snapshot (as ack: both transferred). */
	void (*snapshot)(void *arg, struct proto_snap *snap, void *msg);
};

struct bus {
	const struct config *cfg; /* borrowed */
	struct bus_cbs cbs;
	bool enabled; /* --nats given */
	struct bus_stats stats;
	void *nc, *js, *opts; /* natsConnection, jsCtx, natsOptions */
	void *pjs;            /* jsCtx for commands: asynchronous publishes */
	pthread_t fetchers[2];    /* acks, snapshots */
	int nfetchers;
	void *hb_sub;         /* natsSubscription while leading (worker thread) */
	atomic_int_fast64_t hb_lost_seen; /* hb_sub's messages nats.c dropped, as last counted */

	/* worker thread: blocking JetStream calls */
	pthread_t worker;
	bool worker_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct bus_job *jobs_head, *jobs_tail;
	bool stopping;
	bool leading;         /* lock: the loop said so */
	uint64_t lead_epoch;  /* lock: bumped at every bus_lead change */
	int64_t retry_at_ms;  /* worker: set-up failed, retry then (0: no retry due) */
	int64_t retry_delay_ms; /* worker: the wait before that retry (0 after a success) */

	/* to the loop */
	uv_async_t wake;
	bool wake_init;
	struct bus_event *ev_head, *ev_tail; /* lock */
	size_t nev;                          /* lock */
	char streams[3][80];                 /* LATTICE_<L>_CMD, _ACK, _SNAP */
	bool replicas_warned[3];             /* an existing stream's replicas differ (said once) */
	atomic_int_fast64_t drop_logged_ms;  /* rate limit of drop log lines */
	atomic_uint_fast64_t drops_unlogged;
};

/* Loop thread, before the loop runs. Connects in the background when --nats is
 * set (a server that is down is retried forever); with --nats "" the bus is
 * disabled and every call below does nothing. Returns 0, or -1 with a message
 * in err (a bad URL, an unreadable creds file). */
int bus_init(struct bus *b, const struct config *cfg, uv_loop_t *loop, const struct bus_cbs *cbs, char *err,
	     size_t errlen);
/* Loop thread: this replica starts (true) or stops leading. Leading: the
 * streams and consumers of `nodes` (node ids, borrowed: copied) are set up and
 * heartbeats are listened to. */
void bus_lead(struct bus *b, bool leading, const char *const *nodes, size_t nnodes);
/* Loop thread, leading: a node was registered (its consumer is created) or
 * deleted (its consumer goes). */
void bus_node(struct bus *b, const char *node_id, bool added);
/* Any thread: counts a dropped message (lattice_nats_dropped_total) and logs
 * it (one line a second at most, saying how many more went unlogged). */
void bus_dropped(struct bus *b, enum bus_subject subj, enum proto_drop why, const char *subject, const char *msg);
/* Loop thread, leading: publishes cmds[0..n) (transferred, and the array)
 * asynchronously; each one's outcome comes back through cbs.published. */
void bus_publish(struct bus *b, struct bus_cmd *cmds, size_t n);
/* Loop thread: publishes (core NATS, best effort) bodies[i] on subjects[i];
 * both arrays and their strings transferred. */
void bus_publish_core(struct bus *b, char **subjects, char **bodies, size_t n);
/* Any thread: acks (ok) or drops (!ok: JetStream redelivers it) a message
 * handed over by cbs.ack or cbs.snapshot (an opaque handle), and frees it. */
void bus_msg_done(void *msg, bool ok);
/* Loop thread: stop the worker, close the connection, close the async handle
 * (the loop must run once more to finish closing it). */
void bus_close(struct bus *b);

#endif
