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
 * (STATE_DIR/<tag>) for cluster_sweep_stale. */
#define _GNU_SOURCE
#include "cluster.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PREFIX "lattice-chaos-"
#define API_PORT 8080
#define RAFT_PORT 9001
#define UP_TIMEOUT_MS 120000
#define PG_TIMEOUT_MS 60000
#define TERM_WAIT_MS 10000

struct strv {
	char **v; /* NULL-terminated */
	size_t n, cap;
};

struct replica {
	char ns[64], veth[16], peer[16], ip[16];
	int http_port, raft_port;
	char api_url[64];
	char dir[PATH_MAX], log[PATH_MAX];
	struct strv argv;
	pid_t pid;
	bool ns_made, veth_made;
	bool cut[CLUSTER_MAX_REPLICAS + 1];
	/* its PostgreSQL */
	char pg_dir[PATH_MAX], pg_data[PATH_MAX], pg_log[PATH_MAX];
	int pg_port;
	char pg_conninfo[160], pg_root_conninfo[160];
	struct strv pg_argv;
	pid_t pg_pid;
};

struct cluster {
	pthread_mutex_t mu;
	int n;
	bool netns;
	char tag[16], bridge[16], br_ip[16], subnet[24];
	bool bridge_made, fwd_rule;
	char dir[PATH_MAX], state[PATH_MAX];
	char ip_bin[64], iptables_bin[64], pg_bindir[PATH_MAX];
	bool as_pg;
	uid_t pg_uid;
	gid_t pg_gid;
	int ports[2 * CLUSTER_MAX_REPLICAS + 8]; /* handed out so far */
	size_t n_ports;
	/* nats-server */
	int nats_port;
	char nats_url[64], nats_dir[PATH_MAX], nats_log[PATH_MAX];
	struct strv nats_argv;
	pid_t nats_pid;
	struct replica r[CLUSTER_MAX_REPLICAS + 1]; /* 1..n */
};

/* ---- small helpers ---------------------------------------------------------- */

static int cerr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cerr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* snprintf for names and paths whose lengths cluster_up checked (the run
 * dir's) or that are short by construction (a tag is at most 8 characters). */
static void fmt(char *buf, size_t len, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int strv_add(struct strv *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int strv_add(struct strv *s, const char *fmt, ...)
{
	if (s->n + 2 > s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -1;
		s->v = v;
		s->cap = cap;
	}
	va_list ap;
	va_start(ap, fmt);
	int rc = vasprintf(&s->v[s->n], fmt, ap);
	va_end(ap);
	if (rc < 0)
		return -1;
	s->v[++s->n] = NULL;
	return 0;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Appends each string (NULL-terminated list) in order. */
static int strv_addl(struct strv *s, ...)
{
	va_list ap;
	va_start(ap, s);
	const char *a;
	int rc = 0;
	while (rc == 0 && (a = va_arg(ap, const char *)))
		rc = strv_add(s, "%s", a);
	va_end(ap);
	return rc;
}

/* The last lines of a log file (at most ~400 bytes), newlines as " | ". */
static void log_tail(const char *path, char *out, size_t len)
{
	snprintf(out, len, "(no log)");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	char buf[401];
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > 400 ? end - 400 : 0;
	ssize_t k = pread(fd, buf, 400, from);
	close(fd);
	if (k <= 0)
		return;
	buf[k] = 0;
	char *s = buf;
	if (from > 0 && strchr(s, '\n'))
		s = strchr(s, '\n') + 1;
	size_t sl = strlen(s);
	while (sl && (s[sl - 1] == '\n' || s[sl - 1] == '\r'))
		s[--sl] = 0;
	for (char *p = s; *p; p++)
		if (*p == '\n')
			*p = '|';
	snprintf(out, len, "%s", s);
}

/* /proc/PID/stat: state, parent and start time (clock ticks since boot).
 * 0, or -1 when there is no such process. */
static int proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return -1;
	buf[k] = 0;
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (!p)
		return -1;
	char st = 0;
	int pp = 0;
	unsigned long long t = 0;
	/* fields 3 (state), 4 (ppid), then 5..21 skipped, 22 (starttime) */
	if (sscanf(p + 1, " %c %d %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu", &st, &pp,
		   &t) != 3)
		return -1;
	if (state)
		*state = st;
	if (ppid)
		*ppid = pp;
	if (start)
		*start = t;
	return 0;
}

/* Alive and not a zombie. */
static bool proc_running(pid_t pid)
{
	char st;
	return pid > 0 && proc_stat(pid, &st, NULL, NULL) == 0 && st != 'Z' && st != 'X';
}

static const char *find_bin(char *out, size_t len, const char *name)
{
	static const char *const dirs[] = {"/usr/sbin", "/sbin", "/usr/bin", "/bin", NULL};
	for (size_t i = 0; dirs[i]; i++) {
		snprintf(out, len, "%s/%s", dirs[i], name);
		if (access(out, X_OK) == 0)
			return out;
	}
	out[0] = 0;
	return NULL;
}

/* ---- processes ------------------------------------------------------------- */

struct spawn_opts {
	const char *ns;	 /* network namespace name, or NULL */
	int out_fd;	 /* stdout and stderr (-1: /dev/null) */
	bool as_pg;	 /* drop to the postgres user */
	uid_t uid;
	gid_t gid;
};

/* fork + exec argv (argv[0] a path). In the child only async-signal-safe calls:
 * everything is prepared before the fork. An exec failure comes back through a
 * close-on-exec pipe. Returns the PID, or -1 with err. */
static pid_t spawn(const struct spawn_opts *o, char *const argv[], char *err, size_t errlen)
{
	int nsfd = -1, ep[2], devnull;
	if (o->ns) {
		char path[128];
		snprintf(path, sizeof(path), "/run/netns/%s", o->ns);
		if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return cerr(err, errlen, "%s: %s", path, strerror(errno));
	}
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		cerr(err, errlen, "/dev/null: %s", strerror(errno));
		if (nsfd >= 0)
			close(nsfd);
		return -1;
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		cerr(err, errlen, "pipe: %s", strerror(errno));
		close(devnull);
		if (nsfd >= 0)
			close(nsfd);
		return -1;
	}
	int out = o->out_fd >= 0 ? o->out_fd : devnull;
	pid_t pid = fork();
	if (pid == 0) {
		int e = 0;
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		static const int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGQUIT, SIGUSR1, SIGUSR2};
		for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++)
			signal(sigs[k], SIG_DFL);
		setsid(); /* a terminal's ^C reaches lattice-sim, which tears down */
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
			e = errno;
		if (!e && (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0))
			e = errno;
		if (!e && o->as_pg && (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0))
			e = errno;
		if (!e) {
			/* nothing of lattice-sim's (sockets, files) leaks into the child */
			int w = ep[1];
			if ((w > 3 && close_range(3, (unsigned)w - 1, 0) < 0) || close_range((unsigned)w + 1, ~0U, 0) < 0)
				for (int fd = 3; fd < 65536; fd++) /* a kernel older than 5.9 */
					if (fd != w)
						close(fd);
			execv(argv[0], argv);
			e = errno;
		}
		ssize_t wr = write(ep[1], &e, sizeof(e));
		(void)wr;
		_exit(127);
	}
	int fe = errno;
	close(ep[1]);
	close(devnull);
	if (nsfd >= 0)
		close(nsfd);
	if (pid < 0) {
		close(ep[0]);
		return cerr(err, errlen, "fork: %s", strerror(fe));
	}
	int e = 0;
	ssize_t k;
	while ((k = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (k > 0) {
		waitpid(pid, NULL, 0);
		return cerr(err, errlen, "cannot start %s%s%s: %s", argv[0], o->ns ? " in namespace " : "",
			    o->ns ? o->ns : "", strerror(e));
	}
	return pid;
}

/* waitpid with a deadline: 1 when pid exited (reaped; ECHILD counts: someone
 * else reaped it), 0 when it still runs after timeout_ms. */
static int wait_exit(pid_t pid, int timeout_ms)
{
	long long end = now_ms() + timeout_ms;
	for (;;) {
		pid_t w = waitpid(pid, NULL, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD))
			return 1;
		if (now_ms() >= end)
			return 0;
		sleep_ms(10);
	}
}

/* sig, then SIGKILL after wait_ms; reaped. */
static void end_proc(pid_t pid, int sig, int wait_ms)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (!wait_exit(pid, wait_ms)) {
		kill(pid, SIGKILL);
		wait_exit(pid, 30000);
	}
}

/* Runs argv to completion (in namespace ns when given), its output captured;
 * 0 when it exits 0, else -1 with err naming the command and what it said. */
static int run(const char *ns, char *const argv[], char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return cerr(err, errlen, "pipe: %s", strerror(errno));
	struct spawn_opts o = {.ns = ns, .out_fd = p[1]};
	pid_t pid = spawn(&o, argv, err, errlen);
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	char out[512];
	size_t used = 0;
	for (;;) {
		char buf[256];
		ssize_t k = read(p[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		size_t take = (size_t)k < sizeof(out) - 1 - used ? (size_t)k : sizeof(out) - 1 - used;
		memcpy(out + used, buf, take);
		used += take;
	}
	close(p[0]);
	out[used] = 0;
	while (used && isspace((unsigned char)out[used - 1]))
		out[--used] = 0;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	char cmd[256] = "";
	for (size_t i = 0; argv[i] && strlen(cmd) < sizeof(cmd) - 2; i++)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s%s", i ? " " : "", argv[i]);
	return cerr(err, errlen, "%s%s%s failed (%s %d): %s", ns ? "in " : "", ns ? ns : "", cmd,
		    WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		    used ? out : "no output");
}

/* run() of a command given as arguments, NULL-terminated; bin is its path. */
static int runv(const char *ns, char *err, size_t errlen, const char *bin, ...)
{
	const char *argv[24];
	size_t n = 0;
	argv[n++] = bin;
	va_list ap;
	va_start(ap, bin);
	const char *a;
	while ((a = va_arg(ap, const char *)) && n < 23)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	return run(ns, (char *const *)argv, err, errlen);
}

/* ---- the state file (for cluster_sweep_stale) --------------------------------- */

/* Root's runs record in /run (gone at reboot, with the namespaces); others'
 * in /tmp. */
static void state_dir(char *buf, size_t len)
{
	if (geteuid() == 0)
		snprintf(buf, len, "/run/lattice-chaos");
	else
		snprintf(buf, len, "/tmp/lattice-chaos-%u", (unsigned)geteuid());
}

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
	proc_stat(getpid(), NULL, NULL, &st);
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
		if (proc_stat(pids[k], NULL, NULL, &st) == 0)
			fprintf(f, "proc %d %llu\n", (int)pids[k], st);
	if (fclose(f) == 0)
		rename(tmp, c->state);
	else
		unlink(tmp);
}

/* ---- tiny clients ------------------------------------------------------------- */

static int tcp_connect(const char *ip, int port, int timeout_ms)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return -1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS) {
			close(fd);
			return -1;
		}
		struct pollfd pf = {fd, POLLOUT, 0};
		int e = 0;
		socklen_t el = sizeof(e);
		if (poll(&pf, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Reads into buf until it holds "\n" (or is full, or the deadline). */
static ssize_t read_line(int fd, char *buf, size_t len, long long deadline)
{
	size_t used = 0;
	while (used < len - 1) {
		long long left = deadline - now_ms();
		struct pollfd pf = {fd, POLLIN, 0};
		if (left <= 0 || poll(&pf, 1, (int)left) != 1)
			break;
		ssize_t k = read(fd, buf + used, len - 1 - used);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			break;
		used += (size_t)k;
		buf[used] = 0;
		if (strchr(buf, '\n'))
			break;
	}
	buf[used] = 0;
	return (ssize_t)used;
}

/* GET path over HTTP/1.0: the status code, or -1 (no answer in timeout_ms). */
static int http_status(const char *ip, int port, const char *path, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int fd = tcp_connect(ip, port, timeout_ms);
	if (fd < 0)
		return -1;
	char req[256];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s:%d\r\n\r\n", path, ip, port);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -1;
	}
	char buf[256];
	read_line(fd, buf, sizeof(buf), deadline);
	close(fd);
	int code;
	if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
		return -1;
	return code;
}

/* A nats-server greets with INFO. */
static bool nats_answers(const char *ip, int port, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	int fd = tcp_connect(ip, port, timeout_ms);
	if (fd < 0)
		return false;
	char buf[128];
	read_line(fd, buf, sizeof(buf), deadline);
	close(fd);
	return strncmp(buf, "INFO", 4) == 0;
}

/* ---- addresses and ports ------------------------------------------------------ */

static bool port_free(const char *ip, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
		return false;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* A port nobody listens on, on 127.0.0.1 and (netns) the bridge address,
 * below the kernel's ephemeral range so no client socket takes it meanwhile. */
static int pick_port(struct cluster *c, char *err, size_t errlen)
{
	static unsigned seed;
	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)now_ms();
	for (int tries = 0; tries < 500; tries++) {
		int p = 20000 + (int)(rand_r(&seed) % 12000);
		bool used = false;
		for (size_t k = 0; k < c->n_ports; k++)
			used |= c->ports[k] == p;
		if (used || !port_free("127.0.0.1", p) || (c->netns && !port_free(c->br_ip, p)))
			continue;
		if (c->n_ports < sizeof(c->ports) / sizeof(c->ports[0]))
			c->ports[c->n_ports++] = p;
		return p;
	}
	return cerr(err, errlen, "no free TCP port found in 20000-31999");
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
		return cerr(err, errlen, "no free /24 in 10.128.0.0/9 for the bridge");
	snprintf(c->subnet, sizeof(c->subnet), "%u.%u.%u.0/24", net >> 24, (net >> 16) & 255, (net >> 8) & 255);
	snprintf(c->br_ip, sizeof(c->br_ip), "%u.%u.%u.1", net >> 24, (net >> 16) & 255, (net >> 8) & 255);
	char cidr[32];
	snprintf(cidr, sizeof(cidr), "%s/24", c->br_ip);
	const char *ip = c->ip_bin;
	if (runv(NULL, err, errlen, ip, "link", "add", c->bridge, "type", "bridge", NULL) < 0)
		return -1;
	c->bridge_made = true;
	if (runv(NULL, err, errlen, ip, "addr", "add", cidr, "dev", c->bridge, NULL) < 0 ||
	    runv(NULL, err, errlen, ip, "link", "set", c->bridge, "up", NULL) < 0)
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
		if (runv(NULL, err, errlen, c->iptables_bin, "-w", "-I", "FORWARD", "-i", c->bridge, "-o", c->bridge,
			 "-j", "ACCEPT", NULL) < 0)
			return -1;
		c->fwd_rule = true;
	}
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		fmt(r->ip, sizeof(r->ip), "%u.%u.%u.%d", net >> 24, (net >> 16) & 255, (net >> 8) & 255, 10 + i);
		fmt(cidr, sizeof(cidr), "%s/24", r->ip);
		if (runv(NULL, err, errlen, ip, "netns", "add", r->ns, NULL) < 0)
			return -1;
		r->ns_made = true;
		if (runv(NULL, err, errlen, ip, "link", "add", r->veth, "type", "veth", "peer", "name", r->peer, NULL) <
		    0)
			return -1;
		r->veth_made = true;
		if (runv(NULL, err, errlen, ip, "link", "set", r->peer, "netns", r->ns, NULL) < 0 ||
		    runv(NULL, err, errlen, ip, "link", "set", r->veth, "master", c->bridge, "up", NULL) < 0 ||
		    runv(NULL, err, errlen, ip, "-n", r->ns, "addr", "add", cidr, "dev", r->peer, NULL) < 0 ||
		    runv(NULL, err, errlen, ip, "-n", r->ns, "link", "set", r->peer, "up", NULL) < 0 ||
		    runv(NULL, err, errlen, ip, "-n", r->ns, "link", "set", "lo", "up", NULL) < 0)
			return -1;
	}
	return 0;
}

/* SIGKILL to every process in namespace ns (found by its inode), for
 * leftovers: ours are ended by PID before. */
static void ns_kill_all(const char *ns)
{
	char path[128];
	struct stat nst;
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	if (stat(path, &nst) < 0)
		return;
	for (int round = 0; round < 50; round++) {
		DIR *d = opendir("/proc");
		if (!d)
			return;
		int found = 0;
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			char p[300];
			struct stat st;
			snprintf(p, sizeof(p), "/proc/%s/ns/net", e->d_name);
			if (stat(p, &st) == 0 && st.st_ino == nst.st_ino && st.st_dev == nst.st_dev) {
				pid_t pid = atoi(e->d_name);
				if (proc_running(pid)) {
					kill(pid, SIGKILL);
					found++;
				}
			}
		}
		closedir(d);
		if (!found)
			return;
		sleep_ms(20);
	}
}

static void net_down(struct cluster *c)
{
	char err[256];
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		if (r->ns_made) {
			ns_kill_all(r->ns);
			runv(NULL, err, sizeof(err), c->ip_bin, "netns", "del", r->ns, NULL);
			r->ns_made = false;
		}
		if (r->veth_made) {
			/* usually gone with the namespace already */
			char p[64];
			snprintf(p, sizeof(p), "/sys/class/net/%s", r->veth);
			if (access(p, F_OK) == 0)
				runv(NULL, err, sizeof(err), c->ip_bin, "link", "del", r->veth, NULL);
			r->veth_made = false;
		}
	}
	if (c->fwd_rule) {
		runv(NULL, err, sizeof(err), c->iptables_bin, "-w", "-D", "FORWARD", "-i", c->bridge, "-o", c->bridge,
		     "-j", "ACCEPT", NULL);
		c->fwd_rule = false;
	}
	if (c->bridge_made) {
		runv(NULL, err, sizeof(err), c->ip_bin, "link", "del", c->bridge, NULL);
		c->bridge_made = false;
	}
}

/* ---- PostgreSQL ------------------------------------------------------------- */

static int open_log(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return cerr(err, errlen, "%s: %s", path, strerror(errno));
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
			return cerr(err, errlen, "%s: %s", r->pg_dir, strerror(errno));
		if (c->as_pg && chown(r->pg_dir, c->pg_uid, c->pg_gid) < 0)
			return cerr(err, errlen, "chown %s: %s", r->pg_dir, strerror(errno));
		int fd = open_log(r->pg_log, err, errlen);
		if (fd < 0)
			return -1;
		log_mark(fd, "initdb");
		struct strv a = {0};
		if (strv_add(&a, "%s/initdb", c->pg_bindir) < 0 ||
		    strv_addl(&a, "-D", r->pg_data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C",
			      "--no-sync", NULL) < 0) {
			strv_free(&a);
			close(fd);
			return cerr(err, errlen, "out of memory");
		}
		struct spawn_opts o = {.out_fd = fd, .as_pg = c->as_pg, .uid = c->pg_uid, .gid = c->pg_gid};
		pids[i] = spawn(&o, a.v, err, errlen);
		strv_free(&a);
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
			log_tail(c->r[i].pg_log, tail, sizeof(tail));
			rc = cerr(err, errlen,
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
			return cerr(err, errlen, "%s: %s", hba, strerror(errno));
		fprintf(f, "host all all %s trust\n", c->subnet);
		if (fclose(f) != 0)
			return cerr(err, errlen, "%s: %s", hba, strerror(errno));
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

/* The children of pid (from /proc). */
static size_t children_of(pid_t pid, pid_t *out, size_t max)
{
	size_t n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < max) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		pid_t p = atoi(e->d_name), pp;
		if (proc_stat(p, NULL, &pp, NULL) == 0 && pp == pid)
			out[n++] = p;
	}
	closedir(d);
	return n;
}

/* A crash: SIGKILL to the postmaster and its children at once (each backend
 * would otherwise notice the death and exit on its own, maybe writing what it
 * holds), then waits until every one is gone, so a restart finds its shared
 * memory unattached. */
static void pg_kill9(struct replica *r)
{
	pid_t kids[512];
	size_t n = children_of(r->pg_pid, kids, 512);
	kill(r->pg_pid, SIGKILL);
	for (size_t k = 0; k < n; k++)
		kill(kids[k], SIGKILL);
	wait_exit(r->pg_pid, 30000);
	for (int round = 0; round < 500; round++) {
		bool any = false;
		for (size_t k = 0; k < n; k++)
			any |= proc_running(kids[k]);
		if (!any)
			break;
		sleep_ms(10);
	}
	r->pg_pid = 0;
}

static int pg_start_locked(struct cluster *c, int i, char *err, size_t errlen)
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
		struct spawn_opts o = {.out_fd = fd, .as_pg = c->as_pg, .uid = c->pg_uid, .gid = c->pg_gid};
		pid_t pid = spawn(&o, r->pg_argv.v, err, errlen);
		close(fd);
		if (pid < 0)
			return -1;
		r->pg_pid = pid;
		state_write(c);
		long long end = now_ms() + PG_TIMEOUT_MS;
		bool exited = false;
		while (now_ms() < end) {
			if (waitpid(pid, NULL, WNOHANG) != 0) {
				exited = true;
				break;
			}
			if (pg_ready_file(r, &fp) && fp == pid)
				return 0;
			sleep_ms(20);
		}
		char tail[420];
		log_tail(r->pg_log, tail, sizeof(tail));
		if (!exited) {
			pg_kill9(r);
			state_write(c);
			return cerr(err, errlen, "replica %d's PostgreSQL not ready after %d s: %s", i,
				    PG_TIMEOUT_MS / 1000, tail);
		}
		r->pg_pid = 0;
		/* e.g. a killed backend still holding the old shared memory */
		if (attempt == 5)
			return cerr(err, errlen, "replica %d's PostgreSQL exited while starting: %s", i, tail);
		sleep_ms(500 * attempt);
	}
}

/* ---- nats-server ---------------------------------------------------------- */

static int nats_start_locked(struct cluster *c, char *err, size_t errlen)
{
	if (c->nats_pid > 0) {
		if (waitpid(c->nats_pid, NULL, WNOHANG) == 0)
			return 0;
		c->nats_pid = 0;
	}
	int fd = open_log(c->nats_log, err, errlen);
	if (fd < 0)
		return -1;
	log_mark(fd, "starting nats-server");
	struct spawn_opts o = {.out_fd = fd};
	pid_t pid = spawn(&o, c->nats_argv.v, err, errlen);
	close(fd);
	if (pid < 0)
		return -1;
	c->nats_pid = pid;
	state_write(c);
	const char *ip = c->netns ? c->br_ip : "127.0.0.1";
	long long end = now_ms() + 20000;
	while (now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) != 0) {
			c->nats_pid = 0;
			char tail[420];
			log_tail(c->nats_log, tail, sizeof(tail));
			return cerr(err, errlen, "nats-server exited while starting: %s", tail);
		}
		if (nats_answers(ip, c->nats_port, 1000))
			return 0;
		sleep_ms(20);
	}
	end_proc(pid, SIGKILL, 0);
	c->nats_pid = 0;
	return cerr(err, errlen, "nats-server does not answer on %s after 20 s", c->nats_url);
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
	struct spawn_opts o = {.ns = c->netns ? r->ns : NULL, .out_fd = fd};
	pid_t pid = spawn(&o, r->argv.v, err, errlen);
	close(fd);
	if (pid < 0)
		return -1;
	r->pid = pid;
	state_write(c);
	return 0;
}

static int build_argv(struct cluster *c, const struct cluster_cfg *cfg, const struct cluster_env *env)
{
	char members[512] = "";
	for (int i = 1; i <= c->n; i++)
		snprintf(members + strlen(members), sizeof(members) - strlen(members), "%s%d=%s:%d", i > 1 ? "," : "",
			 i, c->r[i].ip, c->r[i].raft_port);
	const char *pg_host = c->netns ? c->br_ip : "127.0.0.1";
	char id[16], listen[32], raft[32], data[PATH_MAX + 8], hbt[16], cto[16], hbi[16], port[16], addrs[64];
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		snprintf(r->pg_conninfo, sizeof(r->pg_conninfo),
			 "host=%s port=%d user=postgres dbname=postgres connect_timeout=5", pg_host, r->pg_port);
		snprintf(r->pg_root_conninfo, sizeof(r->pg_root_conninfo),
			 "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5", r->pg_port);
		snprintf(id, sizeof(id), "%d", i);
		snprintf(listen, sizeof(listen), "%s:%d", r->ip, r->http_port);
		snprintf(raft, sizeof(raft), "%s:%d", r->ip, r->raft_port);
		snprintf(data, sizeof(data), "%s/data", r->dir);
		snprintf(hbt, sizeof(hbt), "%d", cfg->heartbeat_timeout_ms);
		snprintf(cto, sizeof(cto), "%d", cfg->command_timeout_ms);
		snprintf(hbi, sizeof(hbi), "%d", env->heartbeat_ms);
		struct strv *a = &r->argv;
		if (strv_addl(a, env->latticed, "--id", id, "--listen", listen, "--raft-address", raft, "--data-dir",
			      data, "--pg", r->pg_conninfo, "--schema-dir", env->schema_dir, "--bootstrap", "--members",
			      members, "--nats", c->nats_url, "--lattice", env->lattice ? env->lattice : "default",
			      "--heartbeat-timeout-ms", hbt, "--command-timeout-ms", cto, NULL) < 0 ||
		    (env->heartbeat_ms > 0 && strv_addl(a, "--heartbeat-interval-ms", hbi, NULL) < 0))
			return -1;
		for (size_t k = 0; k < cfg->n_latticed_args; k++)
			if (strv_add(a, "%s", cfg->latticed_args[k]) < 0)
				return -1;
		snprintf(port, sizeof(port), "%d", r->pg_port);
		snprintf(addrs, sizeof(addrs), "listen_addresses=127.0.0.1%s%s", c->netns ? "," : "",
			 c->netns ? c->br_ip : "");
		if (strv_add(&r->pg_argv, "%s/postgres", c->pg_bindir) < 0 ||
		    strv_addl(&r->pg_argv, "-D", r->pg_data, "-p", port, "-c", addrs,
			      /* TCP only: the run dir's path may be too long for a socket's */
			      "-c", "unix_socket_directories=",
			      /* a killed server loses nothing the kernel has: fsync buys nothing */
			      "-c", "fsync=off", "-c", "shared_buffers=32MB", "-c", "max_connections=100", NULL) < 0)
			return -1;
	}
	snprintf(port, sizeof(port), "%d", c->nats_port);
	return strv_addl(&c->nats_argv, env->nats_server, "-a", c->netns ? c->br_ip : "127.0.0.1", "-p", port, "-js",
			 "-sd", c->nats_dir, NULL);
}

/* ---- the scenario's "cluster" ------------------------------------------------ */

static int get_int(json_t *obj, const char *key, long long min, long long max, int *out, char *err, size_t errlen)
{
	json_t *v = json_object_get(obj, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return cerr(err, errlen, "cluster.%s: want an integer %lld-%lld", key, min, max);
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
		return cerr(err, errlen, "cluster: want an object");
	static const char *const keys[] = {"replicas", "netns", "heartbeat_timeout_ms", "command_timeout_ms",
					   "latticed_args", NULL};
	const char *k;
	json_t *v;
	json_object_foreach(cluster, k, v) {
		bool known = false;
		for (size_t i = 0; keys[i]; i++)
			known |= strcmp(k, keys[i]) == 0;
		if (!known)
			return cerr(err, errlen,
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
			return cerr(err, errlen, "cluster.netns: want true or false");
		cfg->netns = json_is_true(v);
	}
	if ((v = json_object_get(cluster, "latticed_args"))) {
		if (!json_is_array(v) || json_array_size(v) > 64)
			return cerr(err, errlen, "cluster.latticed_args: want an array of at most 64 strings");
		cfg->latticed_args = calloc(json_array_size(v) + 1, sizeof(char *));
		if (!cfg->latticed_args)
			return cerr(err, errlen, "out of memory");
		size_t i;
		json_t *a;
		json_array_foreach(v, i, a) {
			if (!json_is_string(a) || json_string_length(a) == 0 || json_string_length(a) > 4096 ||
			    strlen(json_string_value(a)) != json_string_length(a)) {
				cluster_cfg_free(cfg);
				return cerr(err, errlen, "cluster.latticed_args[%zu]: want a string of 1-4096 characters",
					    i);
			}
			if (!(cfg->latticed_args[i] = strdup(json_string_value(a)))) {
				cluster_cfg_free(cfg);
				return cerr(err, errlen, "out of memory");
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
		return cerr(err, errlen, "%s: %s", path, strerror(errno));
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
	return bad_i(c, i) ? NULL : c->r[i].pg_root_conninfo;
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
		return cerr(err, errlen, "cluster: replicas %d: want 1-%d", cfg->replicas, CLUSTER_MAX_REPLICAS);
	if (!env->dir || !env->latticed || !env->schema_dir || !env->pg_bindir || !env->nats_server)
		return cerr(err, errlen, "cluster: dir, latticed, schema_dir, pg_bindir and nats_server are required");
	if (cfg->netns && geteuid() != 0)
		return cerr(err, errlen,
			    "cluster: network namespaces need root (or set \"netns\": false in the scenario's cluster)");
	cluster_sweep_stale();
	struct cluster *c = calloc(1, sizeof(*c));
	if (!c)
		return cerr(err, errlen, "out of memory");
	pthread_mutex_init(&c->mu, NULL);
	c->n = cfg->replicas;
	c->netns = cfg->netns;
	fmt(c->tag, sizeof(c->tag), "%d%c", (int)getpid(),
	    'a' + (int)(__atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED) % 26));
	fmt(c->bridge, sizeof(c->bridge), "lcb%s", c->tag);
	if (!realpath(env->dir, c->dir)) {
		cerr(err, errlen, "%s: %s", env->dir, strerror(errno));
		goto fail;
	}
	if (strlen(c->dir) > PATH_MAX - 64 || strlen(env->pg_bindir) > PATH_MAX - 64) {
		cerr(err, errlen, "%s: path too long", c->dir);
		goto fail;
	}
	fmt(c->pg_bindir, sizeof(c->pg_bindir), "%s", env->pg_bindir);
	if (geteuid() == 0) {
		/* PostgreSQL refuses to run as root */
		struct passwd *pw = getpwnam("postgres");
		if (!pw) {
			cerr(err, errlen, "running as root, PostgreSQL must run as user postgres, and there is none");
			goto fail;
		}
		c->as_pg = true;
		c->pg_uid = pw->pw_uid;
		c->pg_gid = pw->pw_gid;
	}
	if (c->netns) {
		if (!find_bin(c->ip_bin, sizeof(c->ip_bin), "ip") ||
		    !find_bin(c->iptables_bin, sizeof(c->iptables_bin), "iptables")) {
			cerr(err, errlen, "network namespaces need ip (iproute2) and iptables; install them or set "
					  "\"netns\": false");
			goto fail;
		}
	}
	char sd[64];
	state_dir(sd, sizeof(sd));
	if (mkdir(sd, 0755) == 0 || errno == EEXIST)
		fmt(c->state, sizeof(c->state), "%s/%s", sd, c->tag);
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/logs", c->dir);
	if (mkdir_p1(p, err, errlen) < 0)
		goto fail;
	fmt(c->nats_dir, sizeof(c->nats_dir), "%s/nats", c->dir);
	fmt(c->nats_log, sizeof(c->nats_log), "%s/logs/nats.log", c->dir);
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		fmt(r->ns, sizeof(r->ns), NS_PREFIX "%s-r%d", c->tag, i);
		fmt(r->veth, sizeof(r->veth), "lcv%s%d", c->tag, i);
		fmt(r->peer, sizeof(r->peer), "lcp%s%d", c->tag, i);
		fmt(r->dir, sizeof(r->dir), "%s/r%d", c->dir, i);
		fmt(r->log, sizeof(r->log), "%s/logs/r%d.log", c->dir, i);
		fmt(r->pg_dir, sizeof(r->pg_dir), "%s/pg%d", c->dir, i);
		fmt(r->pg_data, sizeof(r->pg_data), "%s/pg%d/data", c->dir, i);
		fmt(r->pg_log, sizeof(r->pg_log), "%s/logs/pg%d.log", c->dir, i);
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
			fmt(r->ip, sizeof(r->ip), "127.0.0.1");
			if ((r->http_port = pick_port(c, err, errlen)) < 0 || (r->raft_port = pick_port(c, err, errlen)) < 0)
				goto fail;
		}
		fmt(r->api_url, sizeof(r->api_url), "http://%s:%d", r->ip, r->http_port);
		if ((r->pg_port = pick_port(c, err, errlen)) < 0)
			goto fail;
	}
	if ((c->nats_port = pick_port(c, err, errlen)) < 0)
		goto fail;
	fmt(c->nats_url, sizeof(c->nats_url), "nats://%s:%d", c->netns ? c->br_ip : "127.0.0.1", c->nats_port);
	if (build_argv(c, cfg, env) != 0) {
		cerr(err, errlen, "out of memory");
		goto fail;
	}
	if (pg_init_all(c, err, errlen) < 0)
		goto fail;
	for (int i = 1; i <= c->n; i++)
		if (pg_start_locked(c, i, err, errlen) < 0)
			goto fail;
	if (nats_start_locked(c, err, errlen) < 0)
		goto fail;
	for (int i = 1; i <= c->n; i++)
		if (replica_start_locked(c, i, err, errlen) < 0)
			goto fail;
	long long end = now_ms() + UP_TIMEOUT_MS;
	for (int i = 1; i <= c->n; i++) {
		long long left = end - now_ms();
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
			end_proc(c->r[i].pid, SIGTERM, TERM_WAIT_MS);
		c->r[i].pid = 0;
	}
	if (c->nats_pid > 0)
		kill(c->nats_pid, SIGTERM);
	for (int i = 1; i <= c->n; i++)
		if (c->r[i].pg_pid > 0)
			kill(c->r[i].pg_pid, SIGINT); /* fast shutdown */
	if (c->nats_pid > 0)
		end_proc(c->nats_pid, SIGTERM, TERM_WAIT_MS);
	c->nats_pid = 0;
	for (int i = 1; i <= c->n; i++) {
		struct replica *r = &c->r[i];
		if (r->pg_pid > 0 && !wait_exit(r->pg_pid, TERM_WAIT_MS))
			pg_kill9(r);
		r->pg_pid = 0;
	}
	if (c->netns)
		net_down(c);
	if (c->state[0])
		unlink(c->state);
	for (int i = 1; i <= c->n; i++) {
		strv_free(&c->r[i].argv);
		strv_free(&c->r[i].pg_argv);
	}
	strv_free(&c->nats_argv);
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
		if (proc_running(all[j]) && k++ < n)
			out[k - 1] = all[j];
	pthread_mutex_unlock(&c->mu);
	return k;
}

/* ---- faults ---------------------------------------------------------------- */

#define CHECK_I(c, i)                                                                                       \
	do {                                                                                                 \
		if (bad_i(c, i))                                                                             \
			return cerr(err, errlen, "no replica %d (the cluster has %d)", i, (c)->n);         \
	} while (0)

int cluster_replica_kill(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	end_proc(c->r[i].pid, SIGKILL, 30000);
	c->r[i].pid = 0;
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_replica_stop(struct cluster *c, int i, char *err, size_t errlen)
{
	CHECK_I(c, i);
	pthread_mutex_lock(&c->mu);
	end_proc(c->r[i].pid, SIGTERM, TERM_WAIT_MS);
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
	long long end = now_ms() + timeout_ms;
	int last = -1;
	for (;;) {
		if (!cluster_replica_alive(c, i)) {
			char tail[420];
			log_tail(r->log, tail, sizeof(tail));
			return cerr(err, errlen, "replica %d is not running; %s ends: %s", i, r->log, tail);
		}
		if ((last = http_status(r->ip, r->http_port, "/readyz", 2000)) == 200)
			return 0;
		if (now_ms() >= end)
			break;
		sleep_ms(100);
	}
	char tail[420];
	log_tail(r->log, tail, sizeof(tail));
	return cerr(err, errlen, "replica %d (%s) not ready after %d ms (/readyz: %s%d); %s ends: %s", i,
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
			if (wait_exit(r->pg_pid, PG_TIMEOUT_MS))
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
	int rc = pg_start_locked(c, i, err, errlen);
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
	end_proc(c->nats_pid, SIGTERM, TERM_WAIT_MS);
	c->nats_pid = 0;
	state_write(c);
	pthread_mutex_unlock(&c->mu);
	return 0;
}

int cluster_nats_start(struct cluster *c, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	int rc = nats_start_locked(c, err, errlen);
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
	return runv(ns, err, errlen, c->iptables_bin, "-w", "-A", "INPUT", "-s", ip, "-j", "DROP", NULL) < 0 ||
			       runv(ns, err, errlen, c->iptables_bin, "-w", "-A", "OUTPUT", "-d", ip, "-j", "DROP",
				    NULL) < 0
		       ? -1
		       : 0;
}

int cluster_cut(struct cluster *c, int i, int j, char *err, size_t errlen)
{
	CHECK_I(c, i);
	CHECK_I(c, j);
	if (!c->netns)
		return cerr(err, errlen, "partitions need network namespaces (the cluster runs with \"netns\": false)");
	if (i == j)
		return cerr(err, errlen, "cannot cut replica %d from itself", i);
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
		if (runv(r->ns, err, errlen, c->iptables_bin, "-w", "-F", "INPUT", NULL) < 0 ||
		    runv(r->ns, err, errlen, c->iptables_bin, "-w", "-F", "OUTPUT", NULL) < 0) {
			rc = -1;
			continue;
		}
		memset(r->cut, 0, sizeof(r->cut));
	}
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* ---- sweeping what dead runs left ---------------------------------------------- */

/* The owner pid of a name "<prefix><pid><letter>...", or 0. */
static pid_t tag_pid(const char *name, const char *prefix)
{
	size_t pl = strlen(prefix);
	if (strncmp(name, prefix, pl) != 0 || !isdigit((unsigned char)name[pl]))
		return 0;
	char *end;
	long v = strtol(name + pl, &end, 10);
	if (*end < 'a' || *end > 'z' || v <= 0 || v > INT_MAX)
		return 0;
	return (pid_t)v;
}

static bool pid_alive(pid_t pid)
{
	return kill(pid, 0) == 0 || errno == EPERM;
}

/* Processes a dead run recorded: SIGKILL those whose start time still
 * matches (a PID reused since is someone else's), then waits for them.
 * Returns true when the run is dead (its file is then removed). */
static bool sweep_state_file(const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	char line[PATH_MAX + 32];
	pid_t pids[64];
	size_t n = 0;
	bool owner_alive = false;
	while (fgets(line, sizeof(line), f)) {
		int pid;
		unsigned long long st, now;
		if (sscanf(line, "owner %d %llu", &pid, &st) == 2)
			owner_alive = proc_stat(pid, NULL, NULL, &now) == 0 && now == st;
		else if (sscanf(line, "proc %d %llu", &pid, &st) == 2 && n < 64 &&
			 proc_stat(pid, NULL, NULL, &now) == 0 && now == st)
			pids[n++] = pid;
	}
	fclose(f);
	if (owner_alive)
		return false;
	for (size_t k = 0; k < n; k++)
		kill(pids[k], SIGKILL);
	for (int round = 0; round < 250; round++) {
		bool any = false;
		for (size_t k = 0; k < n; k++)
			any |= proc_running(pids[k]);
		if (!any)
			break;
		sleep_ms(20);
	}
	unlink(path);
	return true;
}

#define SWEEP_MAX 64

/* Whether the run a name's tag names is dead: its state file said so, or it
 * has none and its PID is not running. */
static bool tag_dead(const char *name, const char *prefix, char dead[][16], size_t nd, const char *sd)
{
	pid_t pid = tag_pid(name, prefix);
	if (pid <= 0)
		return false;
	/* the tag: the pid's digits and the letter after them */
	const char *tag = name + strlen(prefix);
	size_t tl = strspn(tag, "0123456789") + 1;
	for (size_t k = 0; k < nd; k++)
		if (strlen(dead[k]) == tl && strncmp(tag, dead[k], tl) == 0)
			return true;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%.*s", sd, (int)tl, tag);
	if (access(path, F_OK) == 0)
		return false; /* a live run's (a dead one's was removed above) */
	return !pid_alive(pid);
}

void cluster_sweep_stale(void)
{
	char err[256], ip[64], ipt[64], sd[64], dead[SWEEP_MAX][16];
	size_t nd = 0;
	state_dir(sd, sizeof(sd));
	DIR *d = opendir(sd);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (tag_pid(e->d_name, "") <= 0 || strlen(e->d_name) >= 16 || strchr(e->d_name, '.'))
				continue;
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", sd, e->d_name);
			if (sweep_state_file(path) && nd < SWEEP_MAX)
				snprintf(dead[nd++], sizeof(dead[0]), "%s", e->d_name);
		}
		closedir(d);
	}
	if (!find_bin(ip, sizeof(ip), "ip"))
		return;
	if ((d = opendir("/run/netns"))) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!tag_dead(e->d_name, NS_PREFIX, dead, nd, sd))
				continue;
			ns_kill_all(e->d_name);
			runv(NULL, err, sizeof(err), ip, "netns", "del", e->d_name, NULL);
		}
		closedir(d);
	}
	if ((d = opendir("/sys/class/net"))) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (tag_dead(e->d_name, "lcv", dead, nd, sd) || tag_dead(e->d_name, "lcb", dead, nd, sd))
				runv(NULL, err, sizeof(err), ip, "link", "del", e->d_name, NULL);
		closedir(d);
	}
	/* FORWARD rules of dead bridges: "-A FORWARD -i lcbTAG -o lcbTAG -j ACCEPT" */
	if (!find_bin(ipt, sizeof(ipt), "iptables"))
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	char *const argv[] = {ipt, "-w", "-S", "FORWARD", NULL};
	struct spawn_opts o = {.out_fd = p[1]};
	pid_t pid = spawn(&o, argv, err, sizeof(err));
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return;
	}
	FILE *f = fdopen(p[0], "r");
	if (!f) {
		close(p[0]);
		waitpid(pid, NULL, 0);
		return;
	}
	char line[256], rules[32][16];
	size_t nr = 0;
	while (fgets(line, sizeof(line), f)) {
		char br[32], br2[32];
		if (sscanf(line, "-A FORWARD -i %31s -o %31s -j ACCEPT", br, br2) == 2 && strcmp(br, br2) == 0 &&
		    strlen(br) < 16 && nr < 32 && tag_dead(br, "lcb", dead, nd, sd))
			snprintf(rules[nr++], sizeof(rules[0]), "%s", br);
	}
	fclose(f);
	waitpid(pid, NULL, 0);
	for (size_t k = 0; k < nr; k++)
		runv(NULL, err, sizeof(err), ipt, "-w", "-D", "FORWARD", "-i", rules[k], "-o", rules[k], "-j", "ACCEPT",
		     NULL);
}
