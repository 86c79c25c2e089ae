/* proto — the edge protocol's messages (docs/protocol.md): subjects, and the
 * strict decoders of what agents send (heartbeats). Pure: no I/O, no clock; any
 * thread.
 *
 * A decoder takes the subject and the body as received and either fills a typed
 * message or says why it is dropped (enum proto_drop), with a message naming the
 * field for the log. Nothing an agent sends can make it fail otherwise. */
#ifndef LATTICE_PROTO_H
#define LATTICE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spec.h"

#define PROTO_HB_MAX (256 * 1024)      /* bytes of a heartbeat */
#define PROTO_HB_ACTORS_MAX 10000      /* actor instances listed in one */
#define PROTO_INSTANCE_MAX 64          /* agent_instance */
#define PROTO_AGENT_VERSION_MAX 128

/* Why a message is dropped (the metric's reason label: proto_drop_name). */
enum proto_drop {
	PROTO_OK = 0,
	PROTO_MALFORMED, /* not JSON, wrong or missing fields, wrong subject */
	PROTO_OVERSIZED, /* larger than the message's limit */
	PROTO_SPOOFED,   /* the subject and the body name different nodes */
	PROTO_STALE,     /* an old seq, or from an agent instance already replaced */
	PROTO_UNKNOWN,   /* names a command or node the lattice does not know */
	PROTO_OVERLOADED, /* more than the leader can take in: its queues are full (bus.c) */
	PROTO_DROPS
};
const char *proto_drop_name(enum proto_drop d);

enum proto_actor_state { PROTO_ST_STARTING = 0, PROTO_ST_RUNNING, PROTO_ST_STOPPING, PROTO_ST_FAILED };

struct proto_hb_actor {
	char *actor_id;
	int64_t instance;
	enum proto_actor_state state;
	int64_t state_version;
};

struct proto_hb {
	struct node_spec profile; /* id, region, labels, cpu_capacity, memory_mb (base load 0) */
	int64_t cpu_measured, memory_measured_mb;
	int64_t error_count, policy_version;
	char agent_version[PROTO_AGENT_VERSION_MAX + 1];
	char instance[PROTO_INSTANCE_MAX + 1];
	int64_t seq;
	struct proto_hb_actor *actors; /* sorted by (actor_id, instance) */
	size_t nactors;
};

#define PROTO_ACK_MAX (16 * 1024)  /* bytes of an ack */
#define PROTO_CMD_ID_MAX 128
#define PROTO_ERROR_MAX 1024

/* An agent's ack of a command (lattice.L.ack.<node>). */
struct proto_ack {
	char command_id[PROTO_CMD_ID_MAX + 1];
	char node_id[SPEC_TOKEN_MAX + 1];
	bool ok;
	char *error; /* NULL: none */
	int64_t applied_version;
};

#define PROTO_SNAP_MAX (400 * 1024)      /* bytes of a snapshot message */
#define PROTO_SNAP_DATA_MAX (256 * 1024) /* bytes of state in one */

/* An actor's state snapshot (lattice.L.snap.<node>). */
struct proto_snap {
	char actor_id[SPEC_ID_MAX + 1];
	char node_id[SPEC_TOKEN_MAX + 1];
	int64_t state_version;
	char *data; /* base64, as sent (checked) */
	char *migration_id; /* NULL: a periodic one */
};

/* Writes "lattice.<L>.<kind>.<token>" (token "*" or ">" for a wildcard) into
 * out. Returns 0, or -1 when it does not fit. */
int proto_subject(char *out, size_t len, const char *lattice, const char *kind, const char *token);

/* Decodes a heartbeat received on `subject` (borrowed) for lattice L. On
 * PROTO_OK *out owns its strings (proto_hb_free); otherwise *out is untouched
 * and err says why. */
enum proto_drop proto_hb_decode(const char *lattice, const char *subject, const void *body, size_t len,
				struct proto_hb *out, char *err, size_t errlen);
void proto_hb_free(struct proto_hb *hb);

/* Decodes an ack received on `subject` (as proto_hb_decode); PROTO_SPOOFED
 * when the subject's node and the body's differ. */
enum proto_drop proto_ack_decode(const char *lattice, const char *subject, const void *body, size_t len,
				 struct proto_ack *out, char *err, size_t errlen);
void proto_ack_free(struct proto_ack *a);

/* Decodes a snapshot received on `subject` (as proto_hb_decode). */
enum proto_drop proto_snap_decode(const char *lattice, const char *subject, const void *body, size_t len,
				  struct proto_snap *out, char *err, size_t errlen);
void proto_snap_free(struct proto_snap *s);

#endif
