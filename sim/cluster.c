/* cluster — builds the lattice of a chaos run and breaks it (cluster.h).
 *
 * Layout (netns true), for tag = "<pid><letter>" (the letter counts the
 * clusters of this process):
 *   bridge  lcb<tag>, 10.A.B.1/24 in the root namespace (A.B from the pid,
 *           moved on when a route of the host overlaps);
 *   replica i: namespace lattice-chaos-<tag>-r<i>, veth lcv<tag><i> (bridge
 *           side) / lcp<tag><i> (inside) with 10.A.B.(10+i); latticed there
 *           with its API on :8080 and Raft on :9001;
 *   PostgreSQL i and nats-server in the root namespace, on free ports of
 *           127.0.0.1 and the bridge address.
 * Replica-to-replica traffic crosses the bridge; the root namespace reaches
 * every namespace through its address on the bridge, so partitions (iptables
 * inside the namespaces, matching only the other replicas' addresses) never
 * touch PostgreSQL, NATS or the API seen from lattice-sim.
 *
 * Every process is a direct child (fork, setns, exec), so it is waited for
 * and signalled by PID. Their PIDs and start times are kept in a state file
 * (csys_state_dir()/<tag>) for cluster_sweep_stale (in cluster_sys.c). */
#define _GNU_SOURCE
#include "cluster.h"
#include "cluster_sys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define API_PORT 8080
#define RAFT_PORT 9001
#define UP_TIMEOUT_MS 120000
#define PG_TIMEOUT_MS 60000
#define TERM_WAIT_MS 10000

struct replica {
	char ns[64], veth[16], peer[16], ip[16];
	int http_port, raft_port;
	char api_url[64];
	char dir[PATH_MAX], log[PATH_MAX];
	struct csys_strv argv;
	pid_t pid;
	bool ns_made, veth_made;
	bool cut[CLUSTER_MAX_REPLICAS + 1];
	/* its PostgreSQL */
	char pg_dir[PATH_MAX], pg_data[PATH_MAX], pg_log[PATH_MAX];
	int pg_port;
	char pg_conninfo[160];
	struct csys_strv pg_argv;
	pid_t pg_pid;
};

struct cluster {
	pthread_mutex_t mu;
	int n;
	bool netns;
	char tag[16], bridge[16], br_ip[16], subnet[24];
	bool bridge_made, fwd_rule;
	char dir[PATH_MAX], state[PATH_MAX];
	char ip_bin[64], iptables_bin[64], pg_bindir[PATH_MAX], nats_server[PATH_MAX];
	bool as_pg;
	uid_t pg_uid;
	gid_t pg_gid;
	int ports[2 * CLUSTER_MAX_REPLICAS + 8]; /* handed out so far */
	size_t n_ports;
	/* nats-server */
	int nats_port;
	char nats_url[64], nats_dir[PATH_MAX], nats_log[PATH_MAX];
	struct csys_strv nats_argv;
	pid_t nats_pid;
	struct replica r[CLUSTER_MAX_REPLICAS + 1]; /* 1..n */
};

/* ---- the state file (for cluster_sweep_stale) --------------------------------- */

static void state_write(struct cluster *c)
{
	if (!c->state[0])
		return;
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", c->state);
	FILE *f = fopen(tmp, "we");
	if (!f)
		return;
	unsigned long long st = 0;
	csys_proc_stat(getpid(), NULL, NULL, &st);
	fprintf(f, "owner %d %llu\ndir %s\n", (int)getpid(), st, c->dir);
	pid_t pids[3 * CLUSTER_MAX_REPLICAS + 1];
	size_t n = 0;
	if (c->nats_pid > 0)
		pids[n++] = c->nats_pid;
	for (int i = 1; i <= c->n; i++) {
		if (c->r[i].pid > 0)
			pids[n++] = c->r[i].pid;
		if (c->r[i].pg_pid > 0)
			pids[n++] = c->r[i].pg_pid;
	}
	for (size_t k = 0; k < n; k++)
		if (csys_proc_stat(pids[k], NULL, NULL, &st) == 0)
			fprintf(f, "proc %d %llu\n", (int)pids[k], st);
	if (fclose(f) == 0)
		rename(tmp, c->state);
	else
		unlink(tmp);
}

/* ---- addresses and ports ------------------------------------------------------ */

/* A port nobody listens on, on 127.0.0.1 and (netns) the bridge address,
 * below the kernel's ephemeral range so no client socket takes it meanwhile. */
static int pick_port(struct cluster *c, char *err, size_t errlen)
{
	static unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)csys_now_ms();
	for (int tries = 0; tries < 500; tries++) {
		int p = 20000 + (int)(rand_r(&seed) % 12000);
		bool used = false;
		for (size_t k = 0; k < c->n_ports; k++)
			used |= c->ports[k] == p;
		if (used || !csys_port_free("127.0.0.1", p) || (c->netns && !csys_port_free(c->br_ip, p)))
			continue;
		if (c->n_ports < sizeof(c->ports) / sizeof(c->ports[0]))
			c->ports[c->n_ports++] = p;
		return p;
	}
	return csys_err(err, errlen, "no free TCP port found in 20000-31999");
}

/* Whether 10.a.b.0/24 overlaps a route of the root namespace (the host's
 * networks, other runs' bridges). */
static bool subnet_taken(uint32_t net)
{
	FILE *f = fopen("/proc/net/route", "re");
	if (!f)
		return false;
	char line[256];
	bool taken = false;
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		return false;
	}
	while (!taken && fgets(line, sizeof(line), f)) {
		char ifc[32];
		unsigned dst, gw, flags, refc, use, metric, mask;
		if (sscanf(line, "%31s %x %x %x %u %u %u %x", ifc, &dst, &gw, &flags, &refc, &use, &metric, &mask) != 8)
			continue;
		uint32_t d = ntohl(dst), m = ntohl(mask);
		if (m == 0)
			continue; /* the default route */
		uint32_t common = m & 0xffffff00u;
		taken = (d & common) == (net & common);
	}
	fclose(f);
	return taken;
}

/* ---- the network ------------------------------------------------------------ */

static int net_up(struct cluster *c, char *err, size_t errlen)
{
	unsigned h = ((unsigned)getpid() * 26u + (unsigned)(c->tag[strlen(c->tag) - 1] - 'a')) % 32768u;
	uint32_t net = 0;
	for (int k = 0; k < 256; k++, h = (h + 1) % 32768u) {
		net = (10u << 24) | ((128u + h / 256u) << 16) | ((h % 256u) << 8);
		if (!subnet_taken(net))
			break;
		net = 0;
	}
	if (!net)
		return csys_err(err, errlen, "no free /24 in 10.128.0.0/9 for the bridge");
	snprintf(c->subnet, sizeof(c->subnet), "%u.%u.%u.0/24", net >> 24, (net >> 16) & 255, (net >> 8) & 255);
	snprintf(c->br_ip, sizeof(c->br_ip), "%u.%u.%u.1", net >> 24, (net >> 16) & 255, (net >> 8) & 255);
	char cidr[32];
	snprintf(cidr, sizeof(cidr), "%s/24", c->br_ip);
	const char *ip = c->ip_bin;
	if (csys_runv(NULL, err, errlen, ip, "link", "add", c->bridge, "type", "bridge", NULL) < 0)
		return -1;
	c->bridge_made = true;
	if (csys_runv(NULL, err, errlen, ip, "addr", "add", cidr, "dev", c->bridge, NULL) < 0 ||
	    csys_runv(NULL, err, errlen, ip, "link", "set", c->bridge, "up", NULL) < 0)
		return -1;
	/* With br_netfilter loaded, bridged packets pass the root namespace's
	 * FORWARD chain: a DROP policy there (Docker's) would cut every replica
	 * off from the others. */
	char v[8] = "";
	FILE *f = fopen("/proc/sys/net/bridge/bridge-nf-call-iptables", "re");
	if (f) {
		if (!fgets(v, sizeof(v), f))
			v[0] = 0;
		fclose(f);
	}
	if (v[0] == '1') {
		if (csys_runv(NULL, err, errlen, c->iptables_bin, "-w", "-I", "FORWARD", "-i", c->bridge, "-o", c->bridge,
			 "-j", "ACCEPT", NULL) < 0)
			return -1;
		c->fwd_rule = true;
	}
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		csys_fmt(r->ip, sizeof(r->ip), "%u.%u.%u.%d", net >> 24, (net >> 16) & 255, (net >> 8) & 255, 10 + i);
		csys_fmt(cidr, sizeof(cidr), "%s/24", r->ip);
		if (csys_runv(NULL, err, errlen, ip, "netns", "add", r->ns, NULL) < 0)
			return -1;
		r->ns_made = true;
		if (csys_runv(NULL, err, errlen, ip, "link", "add", r->veth, "type", "veth", "peer", "name", r->peer, NULL) <
		    0)
			return -1;
		r->veth_made = true;
		if (csys_runv(NULL, err, errlen, ip, "link", "set", r->peer, "netns", r->ns, NULL) < 0 ||
		    csys_runv(NULL, err, errlen, ip, "link", "set", r->veth, "master", c->bridge, "up", NULL) < 0 ||
		    csys_runv(NULL, err, errlen, ip, "-n", r->ns, "addr", "add", cidr, "dev", r->peer, NULL) < 0 ||
		    csys_runv(NULL, err, errlen, ip, "-n", r->ns, "link", "set", r->peer, "up", NULL) < 0 ||
		    csys_runv(NULL, err, errlen, ip, "-n", r->ns, "link", "set", "lo", "up", NULL) < 0)
			return -1;
	}
	return 0;
}

static void net_down(struct cluster *c)
{
	char err[256];
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		if (r->ns_made) {
			csys_ns_kill_all(r->ns);
			csys_runv(NULL, err, sizeof(err), c->ip_bin, "netns", "del", r->ns, NULL);
			r->ns_made = false;
		}
		if (r->veth_made) {
			/* usually gone with the namespace already */
			char p[64];
			snprintf(p, sizeof(p), "/sys/class/net/%s", r->veth);
			if (access(p, F_OK) == 0)
				csys_runv(NULL, err, sizeof(err), c->ip_bin, "link", "del", r->veth, NULL);
			r->veth_made = false;
		}
	}
	if (c->fwd_rule) {
		csys_runv(NULL, err, sizeof(err), c->iptables_bin, "-w", "-D", "FORWARD", "-i", c->bridge, "-o", c->bridge,
		     "-j", "ACCEPT", NULL);
		c->fwd_rule = false;
	}
	if (c->bridge_made) {
		csys_runv(NULL, err, sizeof(err), c->ip_bin, "link", "del", c->bridge, NULL);
		c->bridge_made = false;
	}
}

/* ---- command lines ------------------------------------------------------------ */

/* Replica i's postgres command line, for its current port. */
static int build_pg_argv(struct cluster *c, int i)
{
	struct replica *r = &c->r[i];
	char port[16], addrs[64];
	csys_strv_free(&r->pg_argv);
	csys_fmt(port, sizeof(port), "%d", r->pg_port);
	csys_fmt(addrs, sizeof(addrs), "listen_addresses=127.0.0.1%s%s", c->netns ? "," : "", c->netns ? c->br_ip : "");
	/* the replica reaches it through the bridge; lattice-sim too (the
	 * bridge's address is ours alone, where 127.0.0.1's port might be taken) */
	csys_fmt(r->pg_conninfo, sizeof(r->pg_conninfo), "host=%s port=%d user=postgres dbname=postgres connect_timeout=5",
	    c->netns ? c->br_ip : "127.0.0.1", r->pg_port);
	return csys_strv_add(&r->pg_argv, "%s/postgres", c->pg_bindir) < 0 ||
			       csys_strv_addl(&r->pg_argv, "-D", r->pg_data, "-p", port, "-c", addrs,
					 /* TCP only: the run dir's path may be too long for a socket's */
					 "-c", "unix_socket_directories=",
					 /* a killed server loses nothing the kernel has: fsync buys nothing */
					 "-c", "fsync=off", "-c", "shared_buffers=32MB", "-c", "max_connections=100",
					 NULL) < 0
		       ? -1
		       : 0;
}

static int build_nats_argv(struct cluster *c)
{
	char port[16];
	const char *ip = c->netns ? c->br_ip : "127.0.0.1";
	csys_strv_free(&c->nats_argv);
	csys_fmt(port, sizeof(port), "%d", c->nats_port);
	csys_fmt(c->nats_url, sizeof(c->nats_url), "nats://%s:%d", ip, c->nats_port);
	return csys_strv_addl(&c->nats_argv, c->nats_server, "-a", ip, "-p", port, "-js", "-sd", c->nats_dir, NULL);
}

/* ---- PostgreSQL ------------------------------------------------------------- */

static int open_log(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return csys_err(err, errlen, "%s: %s", path, strerror(errno));
	return fd;
}

/* A line in a log saying who starts what, so a reader sees each life. */
static void log_mark(int fd, const char *what)
{
	char line[256];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	int n = snprintf(line, sizeof(line), "=== lattice-sim cluster: %s at %04d-%02d-%02d %02d:%02d:%02d UTC\n", what,
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
}

/* initdb of every replica's server at once (it is the slow part of up). */
static int pg_init_all(struct cluster *c, char *err, size_t errlen)
{
	pid_t pids[CLUSTER_MAX_REPLICAS + 1] = {0};
	int rc = 0;
	for (int i = 1; i <= c->n && rc == 0; i++) {
		struct replica *r = &c->r[i];
		if (mkdir(r->pg_dir, 0700) < 0 && errno != EEXIST)
			return csys_err(err, errlen, "%s: %s", r->pg_dir, strerror(errno));
		if (c->as_pg && chown(r->pg_dir, c->pg_uid, c->pg_gid) < 0)
			return csys_err(err, errlen, "chown %s: %s", r->pg_dir, strerror(errno));
		int fd = open_log(r->pg_log, err, errlen);
		if (fd < 0)
			return -1;
		log_mark(fd, "initdb");
		struct csys_strv a = {0};
		if (csys_strv_add(&a, "%s/initdb", c->pg_bindir) < 0 ||
		    csys_strv_addl(&a, "-D", r->pg_data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
			      "--no-sync", NULL) < 0) {
			csys_strv_free(&a);
			close(fd);
			return csys_err(err, errlen, "out of memory");
		}
		struct csys_spawn_opts o = {.out_fd = fd, .as_pg = c->as_pg, .uid = c->pg_uid, .gid = c->pg_gid};
		pids[i] = csys_spawn(&o, a.v, err, errlen);
		csys_strv_free(&a);
		close(fd);
		if (pids[i] < 0)
			rc = -1;
	}
	for (int i = 1; i <= c->n; i++) {
		if (pids[i] <= 0)
			continue;
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		if (rc == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
			char tail[420];
			csys_log_tail(c->r[i].pg_log, tail, sizeof(tail));
			rc = csys_err(err, errlen,
				  "initdb of replica %d's PostgreSQL in %s failed%s: %s", i, c->r[i].pg_dir,
				  c->as_pg ? " (it runs as user postgres: every directory above it must be searchable by "
					     "that user)"
					   : "",
				  tail);
		}
	}
	if (rc < 0)
		return -1;
	for (int i = 1; i <= c->n; i++) {
		if (!c->netns)
			continue;
		/* the replicas reach their server through the bridge */
		char hba[PATH_MAX + 16];
		snprintf(hba, sizeof(hba), "%s/pg_hba.conf", c->r[i].pg_data);
		FILE *f = fopen(hba, "ae");
		if (!f)
			return csys_err(err, errlen, "%s: %s", hba, strerror(errno));
		fprintf(f, "host all all %s trust\n", c->subnet);
		if (fclose(f) != 0)
			return csys_err(err, errlen, "%s: %s", hba, strerror(errno));
	}
	return 0;
}

/* The postmaster's own view (postmaster.pid): its PID on line 1, "ready" on
 * line 8 once it accepts connections. */
static bool pg_ready_file(const struct replica *r, pid_t *file_pid)
{
	char path[PATH_MAX + 32], buf[1024];
	snprintf(path, sizeof(path), "%s/postmaster.pid", r->pg_data);
	*file_pid = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return false;
	buf[k] = 0;
	*file_pid = atoi(buf);
	char *line = buf;
	for (int n = 1; n < 8 && line; n++) {
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return line && strncmp(line, "ready", 5) == 0;
}

/* A crash: SIGKILL to the postmaster and its children at once (each backend
 * would otherwise notice the death and exit on its own, maybe writing what it
 * holds), then waits until every one is gone, so a restart finds its shared
 * memory unattached. */
static void pg_kill9(struct replica *r)
{
	pid_t kids[512];
	size_t n = csys_children_of(r->pg_pid, kids, 512);
	kill(r->pg_pid, SIGKILL);
	for (size_t k = 0; k < n; k++)
		kill(kids[k], SIGKILL);
	csys_wait_exit(r->pg_pid, 30000);
	for (int round = 0; round < 500; round++) {
		bool any = false;
		for (size_t k = 0; k < n; k++)
			any |= csys_proc_running(kids[k]);
		if (!any)
			break;
		csys_sleep_ms(10);
	}
	r->pg_pid = 0;
}

/* repick (cluster_up only, before any latticed has the port): a port another
 * process took since pick_port is replaced by a new one. */
static int pg_start_locked(struct cluster *c, int i, bool repick, char *err, size_t errlen)
{
	struct replica *r = &c->r[i];
	if (r->pg_pid > 0) {
		if (waitpid(r->pg_pid, NULL, WNOHANG) == 0)
			return 0;
		r->pg_pid = 0;
	}
	for (int attempt = 1;; attempt++) {
		/* After a crash the old postmaster.pid is left: PostgreSQL checks its
		 * PID itself, but if another process got that PID meanwhile it would
		 * refuse to start. Ours is dead, so a live PID there is not ours. */
		pid_t fp;
		pg_ready_file(r, &fp);
		if (fp > 0 && kill(fp, 0) == 0) {
			char path[PATH_MAX + 32];
			snprintf(path, sizeof(path), "%s/postmaster.pid", r->pg_data);
			unlink(path);
		}
		int fd = open_log(r->pg_log, err, errlen);
		if (fd < 0)
			return -1;
		log_mark(fd, "starting postgres");
		struct csys_spawn_opts o = {.out_fd = fd, .as_pg = c->as_pg, .uid = c->pg_uid, .gid = c->pg_gid};
		pid_t pid = csys_spawn(&o, r->pg_argv.v, err, errlen);
		close(fd);
		if (pid < 0)
			return -1;
		r->pg_pid = pid;
		state_write(c);
		long long end = csys_now_ms() + PG_TIMEOUT_MS;
		bool exited = false;
		while (csys_now_ms() < end) {
			if (waitpid(pid, NULL, WNOHANG) != 0) {
				exited = true;
				break;
			}
			if (pg_ready_file(r, &fp) && fp == pid)
				return 0;
			csys_sleep_ms(20);
		}
		char tail[420];
		csys_log_tail(r->pg_log, tail, sizeof(tail));
		if (!exited) {
			pg_kill9(r);
			state_write(c);
			return csys_err(err, errlen, "replica %d's PostgreSQL not ready after %d s: %s", i,
				    PG_TIMEOUT_MS / 1000, tail);
		}
		r->pg_pid = 0;
		if (repick && strstr(tail, "could not create any TCP/IP sockets")) {
			if ((r->pg_port = pick_port(c, err, errlen)) < 0)
				return -1;
			if (build_pg_argv(c, i) < 0)
				return csys_err(err, errlen, "out of memory");
		}
		/* e.g. a killed backend still holding the old shared memory */
		if (attempt == 5)
			return csys_err(err, errlen, "replica %d's PostgreSQL exited while starting: %s", i, tail);
		csys_sleep_ms(500 * attempt);
	}
}

/* ---- nats-server ---------------------------------------------------------- */

static int nats_start_once(struct cluster *c, char *err, size_t errlen);

static int nats_start_locked(struct cluster *c, bool repick, char *err, size_t errlen)
{
	if (c->nats_pid > 0) {
		if (waitpid(c->nats_pid, NULL, WNOHANG) == 0)
			return 0;
		c->nats_pid = 0;
	}
	for (int attempt = 1;; attempt++) {
		int rc = nats_start_once(c, err, errlen);
		if (rc != 1)
			return rc;
		if (!repick || attempt == 5)
			return -1;
		if ((c->nats_port = pick_port(c, err, errlen)) < 0)
			return -1;
		if (build_nats_argv(c) < 0)
			return csys_err(err, errlen, "out of memory");
	}
}

/* 0 started, -1 failed, 1 failed because its port is taken. */
static int nats_start_once(struct cluster *c, char *err, size_t errlen)
{
	int fd = open_log(c->nats_log, err, errlen);
	if (fd < 0)
		return -1;
	log_mark(fd, "starting nats-server");
	struct csys_spawn_opts o = {.out_fd = fd};
	pid_t pid = csys_spawn(&o, c->nats_argv.v, err, errlen);
	close(fd);
	if (pid < 0)
		return -1;
	c->nats_pid = pid;
	state_write(c);
	const char *ip = c->netns ? c->br_ip : "127.0.0.1";
	long long end = csys_now_ms() + 20000;
	while (csys_now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) != 0) {
			c->nats_pid = 0;
			char tail[420];
			csys_log_tail(c->nats_log, tail, sizeof(tail));
			csys_err(err, errlen, "nats-server exited while starting: %s", tail);
			return strstr(tail, "address already in use") ? 1 : -1;
		}
		if (csys_nats_answers(ip, c->nats_port, 1000))
			return 0;
		csys_sleep_ms(20);
	}
	csys_end_proc(pid, SIGKILL, 0);
	c->nats_pid = 0;
	return csys_err(err, errlen, "nats-server does not answer on %s after 20 s", c->nats_url);
}

/* ---- latticed ---------------------------------------------------------------- */

static int replica_start_locked(struct cluster *c, int i, char *err, size_t errlen)
{
	struct replica *r = &c->r[i];
	if (r->pid > 0) {
		if (waitpid(r->pid, NULL, WNOHANG) == 0)
			return 0;
		r->pid = 0;
	}
	int fd = open_log(r->log, err, errlen);
	if (fd < 0)
		return -1;
	log_mark(fd, "starting latticed");
	struct csys_spawn_opts o = {.ns = c->netns ? r->ns : NULL, .out_fd = fd};
	pid_t pid = csys_spawn(&o, r->argv.v, err, errlen);
	close(fd);
	if (pid < 0)
		return -1;
	r->pid = pid;
	state_write(c);
	return 0;
}

/* After PostgreSQL and nats-server started: their ports are final. */
static int build_latticed_argv(struct cluster *c, const struct cluster_cfg *cfg, const struct cluster_env *env)
{
	char members[512] = "";
	for (int i = 1; i <= c->n; i++)
		snprintf(members + strlen(members), sizeof(members) - strlen(members), "%s%d=%s:%d", i > 1 ? "," : "",
			 i, c->r[i].ip, c->r[i].raft_port);
	char id[16], listen[32], raft[32], data[PATH_MAX + 8], hbt[16], cto[16], hbi[16];
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		csys_fmt(id, sizeof(id), "%d", i);
		csys_fmt(listen, sizeof(listen), "%s:%d", r->ip, r->http_port);
		csys_fmt(raft, sizeof(raft), "%s:%d", r->ip, r->raft_port);
		csys_fmt(data, sizeof(data), "%s/data", r->dir);
		csys_fmt(hbt, sizeof(hbt), "%d", cfg->heartbeat_timeout_ms);
		csys_fmt(cto, sizeof(cto), "%d", cfg->command_timeout_ms);
		csys_fmt(hbi, sizeof(hbi), "%d", env->heartbeat_ms);
		struct csys_strv *a = &r->argv;
		if (csys_strv_addl(a, env->latticed, "--id", id, "--listen", listen, "--raft-address", raft, "--data-dir",
			      data, "--pg", r->pg_conninfo, "--schema-dir", env->schema_dir, "--bootstrap", "--members",
			      members, "--nats", c->nats_url, "--lattice", env->lattice ? env->lattice : "default",
			      "--heartbeat-timeout-ms", hbt, "--command-timeout-ms", cto, NULL) < 0 ||
		    (env->heartbeat_ms > 0 && csys_strv_addl(a, "--heartbeat-interval-ms", hbi, NULL) < 0))
			return -1;
		for (size_t k = 0; k < cfg->n_latticed_args; k++)
			if (csys_strv_add(a, "%s", cfg->latticed_args[k]) < 0)
				return -1;
	}
	return 0;
}

/* ---- the scenario's "cluster" ------------------------------------------------ */

static int get_int(json_t *obj, const char *key, long long min, long long max, int *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return csys_err(err, errlen, "cluster.%s: want an integer %lld-%lld", key, min, max);
	*out = (int)json_integer_value(v);
	return 0;
}

void cluster_cfg_free(struct cluster_cfg *cfg)
{
	for (size_t k = 0; k < cfg->n_latticed_args; k++)
		free(cfg->latticed_args[k]);
	free(cfg->latticed_args);
	cfg->latticed_args = NULL;
	cfg->n_latticed_args = 0;
}

int cluster_parse(json_t *cluster, struct cluster_cfg *cfg, char *err, size_t errlen)
{
	*cfg = (struct cluster_cfg){.replicas = 3, .netns = true, .heartbeat_timeout_ms = 3000,
				    .command_timeout_ms = 2000};
	if (!cluster)
		return 0;
	if (!json_is_object(cluster))
		return csys_err(err, errlen, "cluster: want an object");
	static const char *const keys[] = {"replicas", "netns", "heartbeat_timeout_ms", "command_timeout_ms",
					   "latticed_args", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(cluster, k, v) {
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known)
			return csys_err(err, errlen,
				    "cluster: unknown key '%s' (known: replicas, netns, heartbeat_timeout_ms, "
				    "command_timeout_ms, latticed_args)",
				    k);
	}
	if (get_int(cluster, "replicas", 1, CLUSTER_MAX_REPLICAS, &cfg->replicas, err, errlen) < 0 ||
	    get_int(cluster, "heartbeat_timeout_ms", 0, 86400000, &cfg->heartbeat_timeout_ms, err, errlen) < 0 ||
	    get_int(cluster, "command_timeout_ms", 1, 86400000, &cfg->command_timeout_ms, err, errlen) < 0)
		return -1;
	if ((v = json_object_get(cluster, "netns"))) {
		if (!json_is_boolean(v))
			return csys_err(err, errlen, "cluster.netns: want true or false");
		cfg->netns = json_is_true(v);
	}
	if ((v = json_object_get(cluster, "latticed_args"))) {
		if (!json_is_array(v) || json_array_size(v) > 64)
			return csys_err(err, errlen, "cluster.latticed_args: want an array of at most 64 strings");
		cfg->latticed_args = calloc(json_array_size(v) + 1, sizeof(char *));
		if (!cfg->latticed_args)
			return csys_err(err, errlen, "out of memory");
		size_t i;
		json_t *a;
		json_array_foreach(v, i, a) {
			if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 4096 ||
			    strlen(json_string_value(a)) != json_string_length(a)) {
				cluster_cfg_free(cfg);
				return csys_err(err, errlen, "cluster.latticed_args[%zu]: want a string of 1-4096 characters",
					    i);
			}
			if (!(cfg->latticed_args[i] = strdup(json_string_value(a)))) {
				cluster_cfg_free(cfg);
				return csys_err(err, errlen, "out of memory");
			}
			cfg->n_latticed_args++;
		}
	}
	return 0;
}

/* ---- up and down -------------------------------------------------------------- */

static int mkdir_p1(const char *path, char *err, size_t errlen)
{
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return csys_err(err, errlen, "%s: %s", path, strerror(errno));
	return 0;
}

int cluster_replicas(const struct cluster *c)
{
	return c->n;
}

static bool bad_i(const struct cluster *c, int i)
{
	return i < 1 || i > c->n;
}

const char *cluster_api_url(const struct cluster *c, int i)
{
	return bad_i(c, i) ? NULL : c->r[i].api_url;
}

const char *cluster_nats_url(const struct cluster *c)
{
	return c->nats_url;
}

const char *cluster_pg_conninfo(const struct cluster *c, int i)
{
	return bad_i(c, i) ? NULL : c->r[i].pg_conninfo;
}

const char *cluster_replica_ip(const struct cluster *c, int i)
{
	return bad_i(c, i) ? NULL : c->r[i].ip;
}

int cluster_up(struct cluster **out, const struct cluster_cfg *cfg, const struct cluster_env *env, char *err,
	       size_t errlen)
{
	static unsigned seq;
	*out = NULL;
	if (cfg->replicas < 1 || cfg->replicas > CLUSTER_MAX_REPLICAS)
		return csys_err(err, errlen, "cluster: replicas %d: want 1-%d", cfg->replicas, CLUSTER_MAX_REPLICAS);
	if (!env->dir || !env->latticed || !env->schema_dir || !env->pg_bindir || !env->nats_server)
		return csys_err(err, errlen, "cluster: dir, latticed, schema_dir, pg_bindir and nats_server are required");
	if (cfg->netns && geteuid() != 0)
		return csys_err(err, errlen,
			    "cluster: network namespaces need root (or set \"netns\": false in the scenario's cluster)");
	cluster_sweep_stale();
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return csys_err(err, errlen, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	c->n = cfg->replicas;
	c->netns = cfg->netns;
	csys_fmt(c->tag, sizeof(c->tag), "%d%c", (int)getpid(),
	    'a' + (int)(__atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED) % 26));
	csys_fmt(c->bridge, sizeof(c->bridge), "lcb%s", c->tag);
	if (!realpath(env->dir, c->dir)) {
		csys_err(err, errlen, "%s: %s", env->dir, strerror(errno));
		goto fail;
	}
	if (strlen(c->dir) > PATH_MAX - 64 || strlen(env->pg_bindir) > PATH_MAX - 64 ||
	    strlen(env->nats_server) >= PATH_MAX) {
		csys_err(err, errlen, "%s: path too long", c->dir);
		goto fail;
	}
	csys_fmt(c->pg_bindir, sizeof(c->pg_bindir), "%s", env->pg_bindir);
	csys_fmt(c->nats_server, sizeof(c->nats_server), "%s", env->nats_server);
	if (geteuid() == 0) {
		/* PostgreSQL refuses to run as root */
		struct passwd *pw = getpwnam("postgres");
		if (!pw) {
			csys_err(err, errlen, "running as root, PostgreSQL must run as user postgres, and there is none");
			goto fail;
		}
		c->as_pg = true;
		c->pg_uid = pw->pw_uid;
		c->pg_gid = pw->pw_gid;
	}
	if (c->netns) {
		if (!csys_find_bin(c->ip_bin, sizeof(c->ip_bin), "ip") ||
		    !csys_find_bin(c->iptables_bin, sizeof(c->iptables_bin), "iptables")) {
			csys_err(err, errlen, "network namespaces need ip (iproute2) and iptables; install them or set "
					  "\"netns\": false");
			goto fail;
		}
	}
	char sd[64];
	csys_state_dir(sd, sizeof(sd));
	if (mkdir(sd, 0755) == 0 || errno == EEXIST)
		csys_fmt(c->state, sizeof(c->state), "%s/%s", sd, c->tag);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/logs", c->dir);
	if (mkdir_p1(p, err, errlen) < 0)
		goto fail;
	csys_fmt(c->nats_dir, sizeof(c->nats_dir), "%s/nats", c->dir);
	csys_fmt(c->nats_log, sizeof(c->nats_log), "%s/logs/nats.log", c->dir);
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		csys_fmt(r->ns, sizeof(r->ns), CSYS_NS_PREFIX "%s-r%d", c->tag, i);
		csys_fmt(r->veth, sizeof(r->veth), "lcv%s%d", c->tag, i);
		csys_fmt(r->peer, sizeof(r->peer), "lcp%s%d", c->tag, i);
		csys_fmt(r->dir, sizeof(r->dir), "%s/r%d", c->dir, i);
		csys_fmt(r->log, sizeof(r->log), "%s/logs/r%d.log", c->dir, i);
		csys_fmt(r->pg_dir, sizeof(r->pg_dir), "%s/pg%d", c->dir, i);
		csys_fmt(r->pg_data, sizeof(r->pg_data), "%s/pg%d/data", c->dir, i);
		csys_fmt(r->pg_log, sizeof(r->pg_log), "%s/logs/pg%d.log", c->dir, i);
		if (mkdir_p1(r->dir, err, errlen) < 0)
			goto fail;
	}
	state_write(c);
	if (c->netns && net_up(c, err, errlen) < 0)
		goto fail;
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		if (c->netns) {
			r->http_port = API_PORT;
			r->raft_port = RAFT_PORT;
		} else {
			csys_fmt(r->ip, sizeof(r->ip), "127.0.0.1");
			if ((r->http_port = pick_port(c, err, errlen)) < 0 || (r->raft_port = pick_port(c, err, errlen)) < 0)
				goto fail;
		}
		csys_fmt(r->api_url, sizeof(r->api_url), "http://%s:%d", r->ip, r->http_port);
		if ((r->pg_port = pick_port(c, err, errlen)) < 0)
			goto fail;
	}
	if ((c->nats_port = pick_port(c, err, errlen)) < 0)
		goto fail;
	for (int i = 1; i <= c->n; i++)
		if (build_pg_argv(c, i) < 0) {
			csys_err(err, errlen, "out of memory");
			goto fail;
		}
	if (build_nats_argv(c) < 0) {
		csys_err(err, errlen, "out of memory");
		goto fail;
	}
	if (pg_init_all(c, err, errlen) < 0)
		goto fail;
	for (int i = 1; i <= c->n; i++)
		if (pg_start_locked(c, i, true, err, errlen) < 0)
			goto fail;
	if (nats_start_locked(c, true, err, errlen) < 0)
		goto fail;
	if (build_latticed_argv(c, cfg, env) < 0) {
		csys_err(err, errlen, "out of memory");
		goto fail;
	}
	for (int i = 1; i <= c->n; i++)
		if (replica_start_locked(c, i, err, errlen) < 0)
			goto fail;
	long long end = csys_now_ms() + UP_TIMEOUT_MS;
	for (int i = 1; i <= c->n; i++) {
		long long left = end - csys_now_ms();
		if (cluster_replica_wait_ready(c, i, left > 0 ? (int)left : 1, err, errlen) < 0)
			goto fail;
	}
	*out = c;
	return 0;
fail:
	cluster_down(c);
	return -1;
}

void cluster_down(struct cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	/* the replicas first (a clean stop flushes their projection), at once */
	for (int i = 1; i <= c->n; i++)
		if (c->r[i].pid > 0)
			kill(c->r[i].pid, SIGTERM);
	for (int i = 1; i <= c->n; i++) {
		if (c->r[i].pid > 0)
			csys_end_proc(c->r[i].pid, SIGTERM, TERM_WAIT_MS);
		c->r[i].pid = 0;
	}
	if (c->nats_pid > 0)
		kill(c->nats_pid, SIGTERM);
	for (int i = 1; i <= c->n; i++)
		if (c->r[i].pg_pid > 0)
			kill(c->r[i].pg_pid, SIGINT); /* fast shutdown */
	if (c->nats_pid > 0)
		csys_end_proc(c->nats_pid, SIGTERM, TERM_WAIT_MS);
	c->nats_pid = 0;
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		if (r->pg_pid > 0 && !csys_wait_exit(r->pg_pid, TERM_WAIT_MS))
			pg_kill9(r);
		r->pg_pid = 0;
	}
	if (c->netns)
		net_down(c);
	if (c->state[0])
		unlink(c->state);
	for (int i = 1; i <= c->n; i++) {
		csys_strv_free(&c->r[i].argv);
		csys_strv_free(&c->r[i].pg_argv);
	}
	csys_strv_free(&c->nats_argv);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

size_t cluster_pids(struct cluster *c, pid_t *out, size_t n)
{
	pthread_mutex_lock(&c->mu);
	size_t k = 0;
	pid_t all[2 * CLUSTER_MAX_REPLICAS + 1];
	size_t m = 0;
	if (c->nats_pid > 0)
		all[m++] = c->nats_pid;
	for (int i = 1; i <= c->n; i++) {
		if (c->r[i].pid > 0)
			all[m++] = c->r[i].pid;
		if (c->r[i].pg_pid > 0)
			all[m++] = c->r[i].pg_pid;
	}
	for (size_t j = 0; j < m; j++)
		if (csys_proc_running(all[j]) && k++ < n)
			out[k - 1] = all[j];
	pthread_mutex_unlock(&c->mu);
	return k;
}

/* ---- faults ---------------------------------------------------------------- */

#define CHECK_I(c, i)                                                                                       \
	do {                                                                                                 \
		if (bad_i(c, i))                                                                             \
			return csys_err(err, errlen, "no replica %d (the cluster has %d)", i, (c)->n);         \
	} while (0)

int cluster_replica_kill(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	csys_end_proc(c->r[i].pid, SIGKILL, 30000);
	c->r[i].pid = 0;
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_replica_stop(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	csys_end_proc(c->r[i].pid, SIGTERM, TERM_WAIT_MS);
	c->r[i].pid = 0;
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_replica_start(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	int rc = replica_start_locked(c, i, err, errlen);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int cluster_replica_alive(struct cluster *c, int i)
{
	if (bad_i(c, i))
		return 0;
	pthread_mutex_lock(&c->mu);
	struct replica *r = &c->r[i];
	if (r->pid > 0 && waitpid(r->pid, NULL, WNOHANG) != 0) {
		r->pid = 0;
		state_write(c);
	}
	int alive = r->pid > 0;
	pthread_mutex_unlock(&c->mu);
	return alive;
}

int cluster_replica_wait_ready(struct cluster *c, int i, int timeout_ms, char *err, size_t errlen)
{
	CHECK_I(c, i);
	struct replica *r = &c->r[i];
	long long end = csys_now_ms() + timeout_ms;
	int last = -1;
	for (;;) {
		if (!cluster_replica_alive(c, i)) {
			char tail[420];
			csys_log_tail(r->log, tail, sizeof(tail));
			return csys_err(err, errlen, "replica %d is not running; %s ends: %s", i, r->log, tail);
		}
		if ((last = csys_http_status(r->ip, r->http_port, "/readyz", 2000)) == 200)
			return 0;
		if (csys_now_ms() >= end)
			break;
		csys_sleep_ms(100);
	}
	char tail[420];
	csys_log_tail(r->log, tail, sizeof(tail));
	return csys_err(err, errlen, "replica %d (%s) not ready after %d ms (/readyz: %s%d); %s ends: %s", i,
		    r->api_url, timeout_ms, last < 0 ? "no answer " : "", last, r->log, tail);
}

int cluster_pg_stop(struct cluster *c, int i, int kill9, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	struct replica *r = &c->r[i];
	if (r->pg_pid > 0 && waitpid(r->pg_pid, NULL, WNOHANG) != 0)
		r->pg_pid = 0;
	if (r->pg_pid > 0) {
		if (kill9) {
			pg_kill9(r);
		} else {
			kill(r->pg_pid, SIGINT); /* pg_ctl stop -m fast */
			if (csys_wait_exit(r->pg_pid, PG_TIMEOUT_MS))
				r->pg_pid = 0;
			else
				pg_kill9(r);
		}
	}
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_pg_start(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	int rc = pg_start_locked(c, i, false, err, errlen);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int cluster_pg_alive(struct cluster *c, int i)
{
	if (bad_i(c, i))
		return 0;
	pthread_mutex_lock(&c->mu);
	struct replica *r = &c->r[i];
	if (r->pg_pid > 0 && waitpid(r->pg_pid, NULL, WNOHANG) != 0)
		r->pg_pid = 0;
	int alive = r->pg_pid > 0;
	pthread_mutex_unlock(&c->mu);
	return alive;
}

int cluster_nats_stop(struct cluster *c, char *err, size_t errlen)
{
	(void)err;
	(void)errlen;
	pthread_mutex_lock(&c->mu);
	csys_end_proc(c->nats_pid, SIGTERM, TERM_WAIT_MS);
	c->nats_pid = 0;
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_nats_start(struct cluster *c, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	int rc = nats_start_locked(c, false, err, errlen);
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int cluster_nats_alive(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->nats_pid > 0 && waitpid(c->nats_pid, NULL, WNOHANG) != 0)
		c->nats_pid = 0;
	int alive = c->nats_pid > 0;
	pthread_mutex_unlock(&c->mu);
	return alive;
}

/* Drops everything between this namespace and ip, both directions. */
static int drop_peer(struct cluster *c, const char *ns, const char *ip, char *err, size_t errlen)
{
	return csys_runv(ns, err, errlen, c->iptables_bin, "-w", "-A", "INPUT", "-s", ip, "-j", "DROP", NULL) < 0 ||
			       csys_runv(ns, err, errlen, c->iptables_bin, "-w", "-A", "OUTPUT", "-d", ip, "-j", "DROP",
				    NULL) < 0
		       ? -1
		       : 0;
}

int cluster_cut(struct cluster *c, int i, int j, char *err, size_t errlen)
{
	CHECK_I(c, i);
	CHECK_I(c, j);
	if (!c->netns)
		return csys_err(err, errlen, "partitions need network namespaces (the cluster runs with \"netns\": false)");
	if (i == j)
		return csys_err(err, errlen, "cannot cut replica %d from itself", i);
	pthread_mutex_lock(&c->mu);
	int rc = 0;
	if (!c->r[i].cut[j]) {
		/* in both namespaces: each side drops what the other still sends */
		rc = drop_peer(c, c->r[i].ns, c->r[j].ip, err, errlen);
		if (rc == 0)
			rc = drop_peer(c, c->r[j].ns, c->r[i].ip, err, errlen);
		/* marked even when half done, so heal flushes it */
		c->r[i].cut[j] = c->r[j].cut[i] = true;
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

int cluster_heal(struct cluster *c, char *err, size_t errlen)
{
	if (!c->netns)
		return 0;
	pthread_mutex_lock(&c->mu);
	int rc = 0;
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		bool any = false;
		for (int j = 1; j <= c->n; j++)
			any |= r->cut[j];
		if (!any)
			continue;
		/* the namespace is ours alone: its only rules are cuts */
		if (csys_runv(r->ns, err, errlen, c->iptables_bin, "-w", "-F", "INPUT", NULL) < 0 ||
		    csys_runv(r->ns, err, errlen, c->iptables_bin, "-w", "-F", "OUTPUT", NULL) < 0) {
			rc = -1;
			continue;
		}
		memset(r->cut, 0, sizeof(r->cut));
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

