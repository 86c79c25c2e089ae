/* outbox — the leader publishes the model's open commands (docs/protocol.md,
 * SPEC "Commands"): each pending command goes to JetStream with its id as
 * Nats-Msg-Id; one not acked within --command-timeout-ms (doubling each time,
 * at most 60 s) is published again, and after --command-max-attempts it is
 * failed. Publications, agents' acks and failures go back into the log as
 * command_update entries, written by the leader's own ops; an agent's ack is
 * acked on JetStream only once it is in the log, so a leader change loses none.
 * A publication is written up to 500 ms late (a quarter of the timeout at
 * most), and not at all when the ack comes first: the ack's update records it.
 *
 * When to publish again is soft state (memory, this leader only): a new
 * leader publishes every pending command at once and waits one timeout before
 * publishing a published one again. A node gets one security_policy at a time,
 * the newest: the next waits until the node acks it or its timeout passes
 * (older ones are superseded in the model, model_cmd.c). Loop thread only. */
#ifndef LATTICE_OUTBOX_H
#define LATTICE_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"

struct loop;
struct proto_ack;
struct entry_cmd_update;
struct ob_held;

/* The longest wait before a command is published again. */
#define OUTBOX_BACKOFF_MAX_MS 60000

struct outbox {
	struct loop *loop; /* borrowed */
	bool enabled, leading;
	struct hmap track; /* command id -> struct ob_track (owned) */
	struct hmap flight; /* node id -> struct ob_flight (owned): its security_policy on its way */
	int64_t next_scan_ms, next_sweep_ms;
	/* Updates waiting to be proposed, and the JetStream messages of the acks
	 * among them (acked once the update is applied). */
	struct entry_cmd_update *pend;
	size_t npend, cappend;
	void **msgs;
	size_t nmsgs, capmsgs;
	uint64_t publications, acks, failures; /* proposed (stats) */
	struct ob_held *held_head, *held_tail; /* publications not written yet, oldest first */
};

void outbox_init(struct outbox *o, struct loop *l, bool enabled);
void outbox_release(struct outbox *o);
/* Every loop tick: follows leadership, publishes what is due, proposes what
 * was learned. */
void outbox_tick(struct outbox *o, int64_t now_ms);
/* The bus's reports (bus.h): a publication's outcome; an agent's ack (both
 * transferred). */
void outbox_published(struct outbox *o, const char *id, bool ok, const char *err);
void outbox_ack(struct outbox *o, struct proto_ack *ack, void *msg);

#endif
