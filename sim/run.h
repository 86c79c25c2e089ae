/* run — `lattice-sim run`: one chaos run from a scenario (docs/chaos.md):
 * build the lattice (cluster.c), start the simulated agents (simrt.c), wait
 * until they are bound, run the workload (work.c) and the faults (nemesis.c)
 * for duration_s, end the faults, settle, collect the final state
 * (collect.c), check it (check.c) and write the report (report.c). */
#ifndef LATTICE_RUN_H
#define LATTICE_RUN_H

#include <signal.h>
#include <stdint.h>

/* All strings borrowed. */
struct run_options {
	const char *scenario;   /* path */
	const char *out;        /* the run dir (created; must be empty or absent) */
	const char *latticed;   /* paths of the programs it starts */
	const char *schema_dir;
	const char *pg_bindir;
	const char *nats_server;
	uint64_t seed;
	int threads;            /* agent worker threads */
	int keep;               /* leave the lattice running at the end (until a signal) */
};

/* Carries out the run. Returns the process exit status: 0 no violation, 1
 * violations found or the run failed (the message says which), 2 bad input
 * (scenario, options). stop is polled: set by a signal, the run ends early,
 * cleans up what it started, and returns 1. */
int run_main(const struct run_options *o, volatile sig_atomic_t *stop);

#endif
