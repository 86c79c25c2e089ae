/* procstat — what a chaos run costs the machine: every period, the CPU and
 * resident memory of lattice-sim itself, the replicas (latticed), the
 * PostgreSQL servers (postmasters and their backends) and nats-server, read
 * from /proc and written to the history as
 *   {"type":"observe","f":"resources","period_ms":5000,
 *    "groups":{"lattice-sim":{"cpu_pct":3.1,"rss_mib":33.0,"procs":1}, ...}}
 * (cpu_pct: percent of one core over the period). One thread. */
#ifndef LATTICE_PROCSTAT_H
#define LATTICE_PROCSTAT_H

#include <stddef.h>
#include <sys/types.h>

#include "hist.h"

struct procstat;

/* pids(ctx, out, n) returns the run's own processes (the cluster's: replicas,
 * postmasters, nats-server); children of those are counted too. Returns NULL
 * when the thread cannot start. */
struct procstat *procstat_start(struct hist *h, int period_ms, size_t (*pids)(void *ctx, pid_t *out, size_t n),
				void *ctx);
void procstat_stop(struct procstat *p);

#endif
