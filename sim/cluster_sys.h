/* cluster_sys — the system side of sim/cluster.c, internal to it: processes
 * (fork, setns, exec, wait), commands run to completion (ip, iptables), tiny
 * socket clients, /proc. Not thread-safe by itself beyond what each call says:
 * cluster.c serializes. Every string parameter is borrowed. */
#ifndef LATTICE_SIM_CLUSTER_SYS_H
#define LATTICE_SIM_CLUSTER_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Names of a run's namespaces: CSYS_NS_PREFIX "<tag>-r<i>". */
#define CSYS_NS_PREFIX "lattice-chaos-"

/* Writes the message into err; returns -1. */
int csys_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* snprintf for names and paths whose lengths were checked (the run dir's) or
 * that are short by construction (a tag is at most 8 characters). */
void csys_fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
void csys_sleep_ms(int ms);
long long csys_now_ms(void); /* monotonic */

/* A growing argv: v is NULL-terminated and owned (csys_strv_free). */
struct csys_strv {
	char **v;
	size_t n, cap;
};
int csys_strv_add(struct csys_strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends each string of a NULL-terminated list, in order. */
int csys_strv_addl(struct csys_strv *s, ...);
void csys_strv_free(struct csys_strv *s);

/* The last lines of a log file (at most ~400 bytes), newlines as '|'. */
void csys_log_tail(const char *path, char *out, size_t len);

/* /proc/PID/stat: state, parent and start time (clock ticks since boot); any
 * out-parameter may be NULL. 0, or -1 when there is no such process. */
int csys_proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start);
/* Alive and not a zombie. */
bool csys_proc_running(pid_t pid);
/* The children of pid (from /proc): at most max into out; how many. */
size_t csys_children_of(pid_t pid, pid_t *out, size_t max);
/* A program of the system directories (sbin first): its path in out, or NULL. */
const char *csys_find_bin(char *out, size_t len, const char *name);

struct csys_spawn_opts {
	const char *ns; /* network namespace name (/run/netns/NS), or NULL */
	int out_fd;	/* stdout and stderr (-1: /dev/null); not closed */
	bool as_pg;	/* drop to uid/gid (PostgreSQL refuses root) */
	uid_t uid;
	gid_t gid;
};
/* fork + exec argv (argv[0] a path), in a session of its own, with default
 * signal handling, no fd of the caller's but 0-2. In the child only
 * async-signal-safe calls: everything is prepared before the fork. An exec
 * failure comes back through a close-on-exec pipe. The PID, or -1 with err. */
pid_t csys_spawn(const struct csys_spawn_opts *o, char *const argv[], char *err, size_t errlen);
/* waitpid with a deadline: 1 when pid exited (reaped; ECHILD counts: someone
 * else reaped it), 0 when it still runs after timeout_ms. */
int csys_wait_exit(pid_t pid, int timeout_ms);
/* sig, then SIGKILL after wait_ms; reaped. pid <= 0: nothing. */
void csys_end_proc(pid_t pid, int sig, int wait_ms);
/* Runs argv to completion (in namespace ns when given), its output captured;
 * 0 when it exits 0, else -1 with err naming the command and what it said. */
int csys_run(const char *ns, char *const argv[], char *err, size_t errlen);
/* The same with the arguments listed after bin (its path), NULL-terminated. */
int csys_runv(const char *ns, char *err, size_t errlen, const char *bin, ...);
/* SIGKILL to every process in namespace ns (found by its inode) until none. */
void csys_ns_kill_all(const char *ns);

/* Where runs record their processes for cluster_sweep_stale: /run/lattice-chaos
 * for root (gone at reboot, with the namespaces), /tmp/lattice-chaos-UID else. */
void csys_state_dir(char *buf, size_t len);

/* GET path over HTTP/1.0: the status code, or -1 (no answer in timeout_ms). */
int csys_http_status(const char *ip, int port, const char *path, int timeout_ms);
/* Whether a nats-server greets (INFO) on ip:port within timeout_ms. */
bool csys_nats_answers(const char *ip, int port, int timeout_ms);
/* Whether a TCP listener could bind ip:port now. */
bool csys_port_free(const char *ip, int port);

#endif
