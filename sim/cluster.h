/* cluster — the lattice a chaos run builds and breaks (docs/chaos.md, "The
 * lattice a run builds"): N latticed replicas, each in a network namespace of
 * its own joined to a bridge by a veth, one PostgreSQL server per replica, one
 * nats-server with JetStream; and the process-level faults and partitions of
 * the nemeses. Every process is started with fork/exec and ended by its PID;
 * every name carries this process's pid, so cluster_sweep_stale() can remove
 * what a lattice-sim killed with -9 left behind.
 *
 * Needs root when netns is true (namespaces, veths, a bridge, iptables) and
 * runs PostgreSQL as user "postgres" when run as root (it refuses root).
 *
 * Threads: the fault calls of one cluster are serialized by a mutex (nemeses
 * may run on several threads); the URL getters never block and their strings
 * live as long as the cluster.
 *
 * Not controller/cluster.h (the replica's cluster routes): files outside sim/
 * include this one by its path ("../../sim/cluster.h"), since -iquote finds
 * controller/ first. */
#ifndef LATTICE_SIM_CLUSTER_H
#define LATTICE_SIM_CLUSTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define CLUSTER_MAX_REPLICAS 5

/* The scenario's "cluster" object, parsed (docs/chaos.md "Scenario keys"). */
struct cluster_cfg {
	int replicas;		  /* 1-5 [3] */
	bool netns;		  /* [true] one namespace per replica; false: all on 127.0.0.1 */
	int heartbeat_timeout_ms; /* [3000] --heartbeat-timeout-ms */
	int command_timeout_ms;	  /* [2000] --command-timeout-ms */
	char **latticed_args;	  /* owned; appended to every latticed's command line */
	size_t n_latticed_args;
};

/* Where things are. Every string is borrowed for the call and copied. */
struct cluster_env {
	const char *dir;	 /* the run dir (exists): DIR/logs/r1.log, pg1.log, nats.log; DIR/r1, pg1, nats */
	const char *latticed;	 /* path of latticed */
	const char *schema_dir;	 /* its --schema-dir */
	const char *pg_bindir;	 /* initdb and postgres (/usr/lib/postgresql/15/bin) */
	const char *nats_server; /* path of nats-server */
	const char *lattice;	 /* --lattice NAME ("default" when NULL) */
	int heartbeat_ms;	 /* --heartbeat-interval-ms (0: latticed's default) */
};

struct cluster;

/* Parses cluster (borrowed; NULL: every default) into *cfg (written in every
 * case; free with cluster_cfg_free). Strict: an unknown key, a wrong type or a
 * value out of range is -1 with a message naming the key. */
int cluster_parse(json_t *cluster, struct cluster_cfg *cfg, char *err, size_t errlen);
void cluster_cfg_free(struct cluster_cfg *cfg);

/* Builds the lattice (sweeping stale leftovers of dead runs first) and waits
 * until every replica's /readyz answers 200 (at most 120 s). cfg and env are
 * borrowed. On failure everything started so far is torn down, *out is NULL
 * and err says what failed (with the tail of the process's log). */
int cluster_up(struct cluster **out, const struct cluster_cfg *cfg, const struct cluster_env *env, char *err,
	       size_t errlen);
/* SIGTERM, then SIGKILL after 10 s, to every process it started (by PID);
 * deletes its namespaces, veths, bridge and firewall rule. NULL is fine. */
void cluster_down(struct cluster *c);
/* Removes what an earlier process of this library left when it died without
 * cluster_down (kill -9): its processes (by the PIDs it recorded under
 * /run/lattice-chaos, checked against their start time), namespaces, links,
 * firewall rule. Leaves alone what belongs to a live process. */
void cluster_sweep_stale(void);

int cluster_replicas(const struct cluster *c);
/* Replica i's (1..N) REST API base URL, "http://IP:PORT", reachable from the
 * root namespace. */
const char *cluster_api_url(const struct cluster *c, int i);
/* nats://IP:PORT, for clients in the root namespace (lattice-sim's agents). */
const char *cluster_nats_url(const struct cluster *c);
/* libpq conninfo of replica i's database, from the root namespace. */
const char *cluster_pg_conninfo(const struct cluster *c, int i);
/* Replica i's address inside the lattice (its namespace's IP, or 127.0.0.1). */
const char *cluster_replica_ip(const struct cluster *c, int i);
/* The PIDs of the processes running now (latticed, postmasters, nats-server):
 * writes at most n into out, returns how many there are. For tests. */
size_t cluster_pids(struct cluster *c, pid_t *out, size_t n);

/* ---- faults: 0, or -1 with err. i is 1..N (else -1). --------------------- */

/* SIGKILL of replica i and reap; 0 when it was not running. */
int cluster_replica_kill(struct cluster *c, int i, char *err, size_t errlen);
/* SIGTERM (a clean stop), SIGKILL after 10 s. */
int cluster_replica_stop(struct cluster *c, int i, char *err, size_t errlen);
/* Starts replica i again with the same data dir and command line (it rejoins
 * the group); 0 when it runs already. Does not wait for it to be ready. */
int cluster_replica_start(struct cluster *c, int i, char *err, size_t errlen);
/* 1 when replica i's process runs (reaps it when it exited), else 0. */
int cluster_replica_alive(struct cluster *c, int i);
/* Until replica i's /readyz answers 200; -1 after timeout_ms or when the
 * process exited. Does not hold the cluster's lock while it waits. */
int cluster_replica_wait_ready(struct cluster *c, int i, int timeout_ms, char *err, size_t errlen);

/* Replica i's PostgreSQL: kill9 false is a fast shutdown (SIGINT, as pg_ctl
 * stop -m fast), true SIGKILL of the postmaster and its children at once (a
 * crash). 0 when it was not running. */
int cluster_pg_stop(struct cluster *c, int i, int kill9, char *err, size_t errlen);
/* Starts it again (after a crash: its recovery) and waits until it accepts
 * connections (at most 60 s); 0 when it runs already. */
int cluster_pg_start(struct cluster *c, int i, char *err, size_t errlen);
int cluster_pg_alive(struct cluster *c, int i);

/* nats-server: SIGTERM (SIGKILL after 10 s); start on the same port and store. */
int cluster_nats_stop(struct cluster *c, char *err, size_t errlen);
int cluster_nats_start(struct cluster *c, char *err, size_t errlen);
int cluster_nats_alive(struct cluster *c);

/* Partitions (netns only; -1 otherwise): cut drops every packet between
 * replicas i and j, both ways (iptables in both namespaces); PostgreSQL, NATS
 * and the API from the root namespace still work. heal removes every cut. */
int cluster_cut(struct cluster *c, int i, int j, char *err, size_t errlen);
int cluster_heal(struct cluster *c, char *err, size_t errlen);

#endif
