/* durhist — a fixed-bucket histogram of durations, for /metrics: the loop thread
 * adds to its own (placements, failovers, command round trips, heartbeat
 * gaps) and publishes copies with its status; metrics.c renders them. Pure:
 * no clock, no locking. */
#ifndef LATTICE_DURHIST_H
#define LATTICE_DURHIST_H

#include <stdint.h>

#define DURHIST_BUCKETS 14

enum durhist_scale {
	DURHIST_FAST, /* 10 µs .. 1 s: work the loop does (placement) */
	DURHIST_SLOW, /* 10 ms .. 10 min: what takes the network and agents (failover, command round trip) */
};

struct durhist {
	enum durhist_scale scale;
	uint64_t bucket[DURHIST_BUCKETS]; /* not cumulative: bucket[i] counts (bound[i-1], bound[i]] */
	uint64_t count;
	uint64_t sum_us;
};

void durhist_init(struct durhist *h, enum durhist_scale scale);
/* Adds one observation of us microseconds (negative counts as 0). */
void durhist_add(struct durhist *h, int64_t us);
/* Upper bound of bucket i, in seconds. */
double durhist_bound(const struct durhist *h, int i);

#endif
