/* cluster_sys — the system side of sim/cluster.c (cluster_sys.h): processes
 * (fork, setns, exec, wait), commands run to completion (ip, iptables), tiny
 * socket clients, /proc, and cluster_sweep_stale. */
#define _GNU_SOURCE
#include "cluster_sys.h"

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

/* ---- small helpers ---------------------------------------------------------- */

int csys_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

void csys_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* snprintf for names and paths whose lengths cluster_up checked (the run
 * dir's) or that are short by construction (a tag is at most 8 characters). */
void csys_fmt(char *buf, size_t len, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vsnprintf(buf, len, f, ap);
	va_end(ap);
}

long long csys_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int csys_strv_add(struct csys_strv *s, const char *fmt, ...)
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

void csys_strv_free(struct csys_strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* Appends each string (NULL-terminated list) in order. */
int csys_strv_addl(struct csys_strv *s, ...)
{
	va_list ap;
	va_start(ap, s);
	const char *a;
	int rc = 0;
	while (rc == 0 && (a = va_arg(ap, const char *)))
		rc = csys_strv_add(s, "%s", a);
	va_end(ap);
	return rc;
}

/* The last lines of a log file (at most ~400 bytes), newlines as " | ". */
void csys_log_tail(const char *path, char *out, size_t len)
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
int csys_proc_stat(pid_t pid, char *state, pid_t *ppid, unsigned long long *start)
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
bool csys_proc_running(pid_t pid)
{
	char st;
	return pid > 0 && csys_proc_stat(pid, &st, NULL, NULL) == 0 && st != 'Z' && st != 'X';
}

const char *csys_find_bin(char *out, size_t len, const char *name)
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


/* fork + exec argv (argv[0] a path). In the child only async-signal-safe calls:
 * everything is prepared before the fork. An exec failure comes back through a
 * close-on-exec pipe. Returns the PID, or -1 with err. */
pid_t csys_spawn(const struct csys_spawn_opts *o, char *const argv[], char *err, size_t errlen)
{
	int nsfd = -1, ep[2], devnull;
	if (o->ns) {
		char path[128];
		snprintf(path, sizeof(path), "/run/netns/%s", o->ns);
		if ((nsfd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return csys_err(err, errlen, "%s: %s", path, strerror(errno));
	}
	if ((devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
		csys_err(err, errlen, "/dev/null: %s", strerror(errno));
		if (nsfd >= 0)
			close(nsfd);
		return -1;
	}
	if (pipe2(ep, O_CLOEXEC) < 0) {
		csys_err(err, errlen, "pipe: %s", strerror(errno));
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
		return csys_err(err, errlen, "fork: %s", strerror(fe));
	}
	int e = 0;
	ssize_t k;
	while ((k = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (k > 0) {
		waitpid(pid, NULL, 0);
		return csys_err(err, errlen, "cannot start %s%s%s: %s", argv[0], o->ns ? " in namespace " : "",
			    o->ns ? o->ns : "", strerror(e));
	}
	return pid;
}

/* waitpid with a deadline: 1 when pid exited (reaped; ECHILD counts: someone
 * else reaped it), 0 when it still runs after timeout_ms. */
int csys_wait_exit(pid_t pid, int timeout_ms)
{
	long long end = csys_now_ms() + timeout_ms;
	for (;;) {
		pid_t w = waitpid(pid, NULL, WNOHANG);
		if (w == pid || (w < 0 && errno == ECHILD))
			return 1;
		if (csys_now_ms() >= end)
			return 0;
		csys_sleep_ms(10);
	}
}

/* sig, then SIGKILL after wait_ms; reaped. */
void csys_end_proc(pid_t pid, int sig, int wait_ms)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	if (!csys_wait_exit(pid, wait_ms)) {
		kill(pid, SIGKILL);
		csys_wait_exit(pid, 30000);
	}
}

/* Runs argv to completion (in namespace ns when given), its output captured;
 * 0 when it exits 0, else -1 with err naming the command and what it said. */
int csys_run(const char *ns, char *const argv[], char *err, size_t errlen)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return csys_err(err, errlen, "pipe: %s", strerror(errno));
	struct csys_spawn_opts o = {.ns = ns, .out_fd = p[1]};
	pid_t pid = csys_spawn(&o, argv, err, errlen);
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
	return csys_err(err, errlen, "%s%s%s failed (%s %d): %s", ns ? "in " : "", ns ? ns : "", cmd,
		    WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
		    used ? out : "no output");
}

/* csys_run() of a command given as arguments, NULL-terminated; bin is its path. */
int csys_runv(const char *ns, char *err, size_t errlen, const char *bin, ...)
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
	return csys_run(ns, (char *const *)argv, err, errlen);
}

/* Root's runs record in /run (gone at reboot, with the namespaces); others'
 * in /tmp. */
void csys_state_dir(char *buf, size_t len)
{
	if (geteuid() == 0)
		snprintf(buf, len, "/run/lattice-chaos");
	else
		snprintf(buf, len, "/tmp/lattice-chaos-%u", (unsigned)geteuid());
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
		long long left = deadline - csys_now_ms();
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
int csys_http_status(const char *ip, int port, const char *path, int timeout_ms)
{
	long long deadline = csys_now_ms() + timeout_ms;
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
bool csys_nats_answers(const char *ip, int port, int timeout_ms)
{
	long long deadline = csys_now_ms() + timeout_ms;
	int fd = tcp_connect(ip, port, timeout_ms);
	if (fd < 0)
		return false;
	char buf[128];
	read_line(fd, buf, sizeof(buf), deadline);
	close(fd);
	return strncmp(buf, "INFO", 4) == 0;
}

bool csys_port_free(const char *ip, int port)
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

/* SIGKILL to every process in namespace ns (found by its inode), for
 * leftovers: ours are ended by PID before. */
void csys_ns_kill_all(const char *ns)
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
				if (csys_proc_running(pid)) {
					kill(pid, SIGKILL);
					found++;
				}
			}
		}
		closedir(d);
		if (!found)
			return;
		csys_sleep_ms(20);
	}
}

/* The children of pid (from /proc). */
size_t csys_children_of(pid_t pid, pid_t *out, size_t max)
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
		if (csys_proc_stat(p, NULL, &pp, NULL) == 0 && pp == pid)
			out[n++] = p;
	}
	closedir(d);
	return n;
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
			owner_alive = csys_proc_stat(pid, NULL, NULL, &now) == 0 && now == st;
		else if (sscanf(line, "proc %d %llu", &pid, &st) == 2 && n < 64 &&
			 csys_proc_stat(pid, NULL, NULL, &now) == 0 && now == st)
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
			any |= csys_proc_running(pids[k]);
		if (!any)
			break;
		csys_sleep_ms(20);
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
	csys_state_dir(sd, sizeof(sd));
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
	if (!csys_find_bin(ip, sizeof(ip), "ip"))
		return;
	if ((d = opendir("/run/netns"))) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!tag_dead(e->d_name, CSYS_NS_PREFIX, dead, nd, sd))
				continue;
			csys_ns_kill_all(e->d_name);
			csys_runv(NULL, err, sizeof(err), ip, "netns", "del", e->d_name, NULL);
		}
		closedir(d);
	}
	if ((d = opendir("/sys/class/net"))) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (tag_dead(e->d_name, "lcv", dead, nd, sd) || tag_dead(e->d_name, "lcb", dead, nd, sd))
				csys_runv(NULL, err, sizeof(err), ip, "link", "del", e->d_name, NULL);
		closedir(d);
	}
	/* FORWARD rules of dead bridges: "-A FORWARD -i lcbTAG -o lcbTAG -j ACCEPT" */
	if (!csys_find_bin(ipt, sizeof(ipt), "iptables"))
		return;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	char *const argv[] = {ipt, "-w", "-S", "FORWARD", NULL};
	struct csys_spawn_opts o = {.out_fd = p[1]};
	pid_t pid = csys_spawn(&o, argv, err, sizeof(err));
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
		csys_runv(NULL, err, sizeof(err), ipt, "-w", "-D", "FORWARD", "-i", rules[k], "-o", rules[k], "-j", "ACCEPT",
		     NULL);
}
