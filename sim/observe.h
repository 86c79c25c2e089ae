/* observe — the chaos run's observer (docs/chaos.md "Observations", "The
 * observer"): it polls every replica's GET /v1/cluster every 250 ms and writes
 * an `observe leader` line each time the leader a majority of the replicas
 * name (in one term) changes; it follows the status of the nodes it is asked to watch (GET
 * /v1/nodes/{id} on the agreed leader every 500 ms) and writes an `observe
 * node_status` line at each change. The nemeses ask it for the current leader
 * or a live follower.
 *
 * Replica numbers: the caller's replica i (1..N, api_urls[i-1]) must have Raft
 * id i (lattice-sim starts replica i with --id i), so /v1/cluster's leader id
 * is a replica number.
 *
 * Threads: one poller per replica and one for the nodes; every function may be
 * called from any thread but observe_stop (the thread that started it). */
#ifndef LATTICE_OBSERVE_H
#define LATTICE_OBSERVE_H

#include <stdint.h>

#include "hist.h"

#define OBSERVE_MAX_REPLICAS 9

struct observe;

/* Starts polling. api_urls[0..n-1] are copied; h is borrowed until
 * observe_stop returns. Returns 0, or -1 with err. */
int observe_start(struct observe **out, const char *const *api_urls, int n_replicas, struct hist *h, char *err,
		  size_t errlen);

/* The replica a majority of all the replicas name as leader, in one term (0:
 * no majority names one). */
int observe_leader(struct observe *o);
/* The term of that leader (0 when none). */
uint64_t observe_term(struct observe *o);
/* A replica that answered its last poll as a follower of the agreed leader
 * (the lowest numbered), 0 when none. */
int observe_follower(struct observe *o);

/* Adds nodes to follow (ids copied; ones already followed are skipped).
 * Returns 0, or -1 when out of memory. */
int observe_watch_nodes(struct observe *o, const char *const *ids, int n);

/* Stops the pollers (each within its request timeout) and frees o. NULL is
 * fine. */
void observe_stop(struct observe *o);

#endif
