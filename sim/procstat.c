/* procstat — see procstat.h. */
#include "procstat.h"
#include "tswait.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PS_MAX 4096 /* processes followed at once */

struct psample {
	pid_t pid;
	unsigned long long ticks; /* utime + stime */
};

struct procstat {
	struct hist *h;
	int period_ms;
	size_t (*pids)(void *ctx, pid_t *out, size_t n);
	void *ctx;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	struct psample prev[PS_MAX];
	size_t nprev;
};

/* comm, ppid, utime+stime and rss (pages) of pid from /proc/pid/stat. */
static int read_stat(pid_t pid, char *comm, size_t clen, pid_t *ppid, unsigned long long *ticks, long *rss)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *l = strchr(buf, '('), *r = strrchr(buf, ')');
	if (!l || !r || r < l)
		return -1;
	snprintf(comm, clen, "%.*s", (int)(r - l - 1), l + 1);
	/* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ... rss (24th) */
	char st;
	int pp;
	unsigned long long ut, stt;
	long rs;
	if (sscanf(r + 2, "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %ld",
		   &st, &pp, &ut, &stt, &rs) != 5)
		return -1;
	*ppid = pp;
	*ticks = ut + stt;
	*rss = rs;
	return 0;
}

static const char *group_of(const char *comm)
{
	if (!strcmp(comm, "latticed"))
		return "latticed";
	if (!strcmp(comm, "postgres") || !strncmp(comm, "postgres", 8))
		return "postgres";
	if (!strcmp(comm, "nats-server"))
		return "nats-server";
	return NULL;
}

static unsigned long long prev_ticks(struct procstat *p, pid_t pid, int *found)
{
	for (size_t i = 0; i < p->nprev; i++)
		if (p->prev[i].pid == pid) {
			*found = 1;
			return p->prev[i].ticks;
		}
	*found = 0;
	return 0;
}

static void sample(struct procstat *p, double secs)
{
	pid_t roots[64];
	size_t nr = p->pids(p->ctx, roots, 64);
	if (nr > 64)
		nr = 64;
	struct psample cur[PS_MAX];
	size_t ncur = 0;
	static const char *const groups[] = {"lattice-sim", "latticed", "postgres", "nats-server"};
	double cpu[4] = {0}, rss[4] = {0};
	int procs[4] = {0};
	long page = sysconf(_SC_PAGESIZE), hz = sysconf(_SC_CLK_TCK);
	DIR *d = opendir("/proc");
	struct dirent *e;
	while (d && (e = readdir(d)) && ncur < PS_MAX) {
		char *end;
		long v = strtol(e->d_name, &end, 10);
		if (*end || v <= 0)
			continue;
		pid_t pid = (pid_t)v, ppid;
		char comm[64];
		unsigned long long ticks;
		long rs;
		if (read_stat(pid, comm, sizeof(comm), &ppid, &ticks, &rs) < 0)
			continue;
		int gi = -1;
		if (pid == getpid()) {
			gi = 0;
		} else {
			int ours = 0;
			for (size_t i = 0; i < nr; i++)
				ours |= roots[i] == pid || roots[i] == ppid;
			const char *g = ours ? group_of(comm) : NULL;
			for (int k = 1; g && k < 4; k++)
				if (!strcmp(g, groups[k]))
					gi = k;
		}
		if (gi < 0)
			continue;
		int found;
		unsigned long long before = prev_ticks(p, pid, &found);
		if (found && ticks >= before && secs > 0)
			cpu[gi] += (double)(ticks - before) / (double)hz / secs * 100.0;
		rss[gi] += (double)rs * (double)page / (1024.0 * 1024.0);
		procs[gi]++;
		cur[ncur++] = (struct psample){pid, ticks};
	}
	if (d)
		closedir(d);
	memcpy(p->prev, cur, ncur * sizeof(*cur));
	p->nprev = ncur;
	if (secs <= 0)
		return; /* the first sample only sets the baseline */
	json_t *g = json_object();
	for (int k = 0; k < 4; k++)
		if (procs[k])
			json_object_set_new(g, groups[k],
					    json_pack("{s:f, s:f, s:i}", "cpu_pct", (double)(long)(cpu[k] * 10) / 10.0,
						      "rss_mib", (double)(long)(rss[k] * 10) / 10.0, "procs", procs[k]));
	hist_writen(p->h, json_pack("{s:s, s:s, s:i, s:o}", "type", "observe", "f", "resources", "period_ms",
				    p->period_ms, "groups", g));
}

static void *ps_main(void *arg)
{
	struct procstat *p = arg;
	struct timespec last;
	clock_gettime(CLOCK_MONOTONIC, &last);
	sample(p, 0);
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec ts = tswait_add(last, p->period_ms);
		if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == 0 || p->stop)
			continue;
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		double secs = (double)(now.tv_sec - last.tv_sec) + (double)(now.tv_nsec - last.tv_nsec) / 1e9;
		last = now;
		pthread_mutex_unlock(&p->mu);
		sample(p, secs);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

struct procstat *procstat_start(struct hist *h, int period_ms, size_t (*pids)(void *ctx, pid_t *out, size_t n),
				void *ctx)
{
	struct procstat *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->h = h;
	p->period_ms = period_ms > 0 ? period_ms : 5000;
	p->pids = pids;
	p->ctx = ctx;
	pthread_mutex_init(&p->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->th, NULL, ps_main, p) != 0) {
		pthread_mutex_destroy(&p->mu);
		pthread_cond_destroy(&p->cv);
		free(p);
		return NULL;
	}
	return p;
}

void procstat_stop(struct procstat *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = 1;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	pthread_join(p->th, NULL);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
