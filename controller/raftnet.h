/* raftnet — the Raft transport latticed gives canonical raft: raft's own TCP
 * transport (raft_uv_tcp) with a filter on incoming connections.
 *
 * raft_uv_tcp hands every connection that completed raft's handshake (protocol
 * version, a claimed server id, a claimed address) to raft, which then believes
 * whatever arrives on it: one RequestVote with a high term from anyone who can
 * reach the port deposes the leader. raftnet accepts a connection only when
 *   - the claimed id is a server of the configuration raft uses now
 *     (struct raft's `configuration`, read at accept time, so membership changes
 *     apply to the next connection),
 *   - the connection's source IP (getpeername) is the IP of that server's
 *     configured address, and
 *   - the id is not this replica's own (raft never connects to itself).
 * A replica that missed a membership change (it was down when a member was
 * added, and that member now leads) would refuse the very leader that can
 * bring it up to date. So a refusal for NOT_MEMBER sets `want_learn`, and the
 * loop asks a member's REST API for the group's configuration
 * (raftnet_learn): ids in that learned configuration are accepted by the same
 * rules (source IP of the learned address).
 * Raft is then told the configured address, never the claimed one (which is
 * neither checked nor read). A replica whose configuration is empty (started
 * without --bootstrap, waiting to be added to a group) accepts every connection:
 * it learns its configuration from the leader's first messages.
 *
 * This is not authentication: anyone who can send from a member's IP passes.
 * It keeps strangers and misaddressed peers out; the raft port still belongs on
 * a private network (docs/operations.md).
 *
 * Refused connections are closed, counted (raftnet_refused) and logged, at most
 * RAFTNET_LOG_BURST lines per RAFTNET_LOG_WINDOW_MS (then one line with how many
 * were not logged).
 *
 * Threads: everything runs on the loop thread, except raftnet_refused (any
 * thread). Lifecycle: raftnet_init → raft_uv_init(..., &n->transport) → ... →
 * raft_close, and in its callback raftnet_close after raft_uv_close. */
#ifndef LATTICE_RAFTNET_H
#define LATTICE_RAFTNET_H

#include <raft.h>
#include <raft/uv.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define RAFTNET_LOG_BURST 5
#define RAFTNET_LOG_WINDOW_MS 10000

enum raftnet_verdict {
	RAFTNET_ACCEPT = 0,
	RAFTNET_NOT_MEMBER,    /* the claimed id is not in the configuration */
	RAFTNET_WRONG_ADDRESS, /* the source IP is not the member's configured IP */
	RAFTNET_SELF,          /* the claimed id is this replica's own */
	RAFTNET_NO_PEER,       /* the source address could not be read */
	RAFTNET_VERDICTS
};

struct raftnet {
	/* What raft_uv_init is given. raft owns its `data`; `impl` points here. */
	struct raft_uv_transport transport;
	/* raft_uv_tcp, doing the actual work; its `data` points here. */
	struct raft_uv_transport tcp;
	const struct raft *raft; /* borrowed: whose configuration decides */
	uv_loop_t *loop;         /* borrowed */
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
	unsigned closing_streams; /* refused connections whose handles are closing */
	bool closing, tcp_closed;
	/* log rate limit (loop thread) */
	uint64_t log_window_ms;
	unsigned log_lines;
	uint64_t log_suppressed;
	atomic_uint_fast64_t refused[RAFTNET_VERDICTS];
	/* The configuration a member's API last reported (loop thread). */
	struct raft_configuration learned;
	bool want_learn; /* a connection was refused as NOT_MEMBER since the last learn */
};

/* Sets up n around a new raft_uv_tcp transport on loop. raft is borrowed and
 * only read when a connection arrives (after raft_start), so it may still be
 * uninitialised here. Returns 0 or a raft error code (RAFT_NOMEM). */
int raftnet_init(struct raftnet *n, uv_loop_t *loop, const struct raft *raft);
/* Frees what raftnet_init allocated. Only after raft's close (whose io close
 * waits for this transport's close) has completed. */
void raftnet_close(struct raftnet *n);

/* The decision, without I/O: may a connection from `peer` (borrowed; NULL when
 * unknown) claiming server `id` talk to replica `self` whose configuration is
 * `conf` (borrowed)? On RAFTNET_ACCEPT *member is the configured server (NULL
 * when conf is empty). */
enum raftnet_verdict raftnet_check(const struct raft_configuration *conf, raft_id self, raft_id id,
				   const struct sockaddr *peer, const struct raft_server **member);
/* Replaces the learned configuration with a copy of conf (borrowed). Loop
 * thread. Returns 0 or RAFT_NOMEM. */
int raftnet_learn(struct raftnet *n, const struct raft_configuration *conf);

/* "accepted", "not_member", "wrong_address", "self", "no_peer" (metrics labels). */
const char *raftnet_verdict_name(enum raftnet_verdict v);
/* Any thread: connections refused for reason v since raftnet_init. */
uint64_t raftnet_refused(struct raftnet *n, enum raftnet_verdict v);

#endif
