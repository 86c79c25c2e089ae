/* driver — how an agent runs actor instances. Two implementations:
 *   sim  (driver_sim.c)  in-process actors: a counter that rises every 100 ms;
 *                        a snapshot is {"count":N} in base64, state_version +1
 *                        per snapshot. Pure: no threads, no I/O, time from the
 *                        caller, so ~2,000 agents fit in one process.
 *   exec (driver_exec.c) one child process per instance from a command template.
 *
 * An instance is named by (actor_id, instance). Every call takes the caller's
 * monotonic time in ms (now), so nothing here reads a clock. Not thread-safe:
 * the agent that owns a driver calls it from one thread. */
#ifndef LATTICE_DRIVER_H
#define LATTICE_DRIVER_H

#include <stddef.h>
#include <stdint.h>

enum driver_state { DRIVER_STARTING, DRIVER_RUNNING, DRIVER_STOPPING, DRIVER_FAILED };

/* Protocol name of a state: "starting", "running", "stopping", "failed". */
const char *driver_state_name(enum driver_state s);

/* What to run. All strings borrowed for the call; the driver copies what it keeps. */
struct driver_actor {
	const char *actor_id;
	long long instance;
	const char *module;
	long long cpu_required;
	long long memory_required_mb;
	const char *config_json; /* compact JSON object text, never NULL */
};

/* A snapshot to start from. data is base64 (borrowed), "" for none. */
struct driver_snapshot {
	long long state_version;
	const char *data;
};

/* One instance as list reports it; strings borrowed until the next call. */
struct driver_status {
	const char *actor_id;
	long long instance;
	enum driver_state state;
	long long state_version;
	long long cpu_required;
	long long memory_required_mb;
};

struct driver;

struct driver_ops {
	/* Starts an instance, from snap when not NULL. Returns 0, or -1 with err
	 * (e.g. a snapshot it cannot read). The caller checks find first: starting
	 * an instance that exists is a programming error. */
	int (*start)(struct driver *d, const struct driver_actor *a, const struct driver_snapshot *snap,
		     int64_t now, char *err, size_t errlen);
	/* Stops an instance (0), or returns 1 when there is none. Asynchronous for
	 * exec: the instance shows "stopping" until its process is gone. */
	int (*stop)(struct driver *d, const char *actor_id, long long instance, int64_t now);
	/* The actor's config changed (a->config_json): sim stores it, exec restarts
	 * the child. Returns 0, or 1 when there is no such instance. */
	int (*config)(struct driver *d, const struct driver_actor *a, int64_t now);
	/* Takes a snapshot now. force=0 (periodic): returns 1 and takes nothing when
	 * the state did not change since the last one. On 0, *state_version is the
	 * snapshot's and *data a malloc'd base64 string (the caller frees it).
	 * Returns -1 when there is no such instance. */
	int (*checkpoint)(struct driver *d, const char *actor_id, long long instance, int force, int64_t now,
			  long long *state_version, char **data);
	/* Returns 0 and fills *st when the instance exists (any state), else -1. */
	int (*find)(struct driver *d, const char *actor_id, long long instance, struct driver_status *st);
	/* Calls fn once per instance (order unspecified); fn must not call d. */
	void (*list)(struct driver *d, void (*fn)(void *ctx, const struct driver_status *st), void *ctx);
	/* Housekeeping at time now (reap and restart children, ...). Returns how
	 * many instances crashed since the last poll (each one is an error). */
	int (*poll)(struct driver *d, int64_t now);
	/* Stops everything (exec: SIGTERM, SIGKILL after 5 s) and frees d. */
	void (*destroy)(struct driver *d);
};

struct driver {
	const struct driver_ops *ops;
	const char *name; /* "sim" or "exec" */
};

/* The sim driver. Returns NULL when out of memory. */
struct driver *driver_sim_new(void);

/* The exec driver: each instance runs `/bin/sh -c 'exec TEMPLATE'` with {module},
 * {actor_id} and {instance} replaced by the values, shell-quoted (so a module
 * reference cannot inject commands). tmpl is copied. Returns NULL on OOM. */
struct driver *driver_exec_new(const char *tmpl);
/* The command line an instance would run (malloc'd; NULL on OOM). For tests. */
char *driver_exec_expand(const char *tmpl, const char *module, const char *actor_id, long long instance);

/* Base64 (standard alphabet, padded). encode returns a malloc'd string;
 * decode returns a malloc'd buffer (NUL-terminated, *len without it) or NULL
 * when s is not base64. */
char *driver_b64_encode(const void *data, size_t len);
unsigned char *driver_b64_decode(const char *s, size_t *len);

#endif
