/* The exec driver: one child process per instance, `/bin/sh -c <template>`.
 *
 * Each child gets its own session (setsid), so a stop signals the whole group
 * (the shell and whatever it started), and PR_SET_PDEATHSIG, so it is killed
 * when the agent dies, even by SIGKILL. (The death signal follows the thread
 * that forked: the agent calls the driver from its main thread, which lives as
 * long as the process.) The shell runs `exec TEMPLATE`, so the template is one
 * command (a script for more); processes that command starts itself are
 * stopped with its group but do not get the death signal. A child that exits on its own is a crash: counted,
 * shown "failed", restarted after a backoff (1 s doubling to 30 s; back to 1 s
 * once a child has run 60 s). Exec actors have no state: snapshots carry
 * state_version 0 and empty data. */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"

#define EXEC_STOP_GRACE_MS 5000
#define EXEC_BACKOFF_MIN_MS 1000
#define EXEC_BACKOFF_MAX_MS 30000
#define EXEC_STABLE_MS 60000

struct exec_actor {
	char *actor_id;
	long long instance;
	char *module;
	char *config;
	long long cpu, mem;
	pid_t pid;             /* 0: no process */
	enum driver_state state;
	int64_t started;       /* when the current process started */
	int64_t restart_at;    /* FAILED: when to start again */
	int64_t kill_at;       /* STOPPING: when SIGTERM turns into SIGKILL */
	int64_t backoff;
	int restart_after_stop; /* a config change: start again once it is gone */
	int removed;           /* stopped for good: drop it once reaped */
};

struct exec_driver {
	struct driver d;
	char *tmpl;
	struct exec_actor **a;
	size_t n, cap;
};

/* Appends s to the buffer, single-quoted for the shell when quote is set. */
static int put(char **buf, size_t *len, size_t *cap, const char *s, int quote)
{
	size_t need = *len + strlen(s) * 4 + 3;
	if (need >= *cap) {
		size_t nc = need * 2;
		char *nb = realloc(*buf, nc);
		if (!nb)
			return -1;
		*buf = nb;
		*cap = nc;
	}
	if (quote)
		(*buf)[(*len)++] = '\'';
	for (; *s; s++) {
		if (quote && *s == '\'') {
			memcpy(*buf + *len, "'\\''", 4);
			*len += 4;
		} else {
			(*buf)[(*len)++] = *s;
		}
	}
	if (quote)
		(*buf)[(*len)++] = '\'';
	(*buf)[*len] = '\0';
	return 0;
}

char *driver_exec_expand(const char *tmpl, const char *module, const char *actor_id, long long instance)
{
	char inst[24];
	snprintf(inst, sizeof(inst), "%lld", instance);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	if (put(&buf, &len, &cap, "", 0) < 0)
		return NULL;
	for (const char *p = tmpl; *p;) {
		const char *val = NULL;
		size_t skip = 0;
		if (strncmp(p, "{module}", 8) == 0)
			val = module, skip = 8;
		else if (strncmp(p, "{actor_id}", 10) == 0)
			val = actor_id, skip = 10;
		else if (strncmp(p, "{instance}", 10) == 0)
			val = inst, skip = 10;
		if (val) {
			if (put(&buf, &len, &cap, val, 1) < 0)
				goto oom;
			p += skip;
		} else {
			char one[2] = {*p++, 0};
			if (put(&buf, &len, &cap, one, 0) < 0)
				goto oom;
		}
	}
	return buf;
oom:
	free(buf);
	return NULL;
}

static struct exec_actor *lookup(struct exec_driver *x, const char *actor_id, long long instance, size_t *idx)
{
	for (size_t i = 0; i < x->n; i++) {
		struct exec_actor *a = x->a[i];
		if (!a->removed && a->instance == instance && strcmp(a->actor_id, actor_id) == 0) {
			if (idx)
				*idx = i;
			return a;
		}
	}
	return NULL;
}

static void actor_free(struct exec_actor *a)
{
	if (!a)
		return;
	free(a->actor_id);
	free(a->module);
	free(a->config);
	free(a);
}

static int spawn(struct exec_driver *x, struct exec_actor *a, int64_t now, char *err, size_t errlen)
{
	/* "exec": the actor's program replaces the shell, so it is the process
	 * that gets SIGTERM and the death signal (dash forks for `sh -c`, and a
	 * grandchild would outlive a killed agent). */
	char *body = driver_exec_expand(x->tmpl, a->module, a->actor_id, a->instance);
	char *cmd = body ? malloc(strlen(body) + 6) : NULL;
	if (cmd)
		sprintf(cmd, "exec %s", body);
	free(body);
	if (!cmd) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start '%s': fork: %s", cmd, strerror(errno));
		free(cmd);
		return -1;
	}
	if (pid == 0) {
		setsid();
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent) /* the agent died before prctl */
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		int fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			if (fd > 2)
				close(fd);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	log_info("exec actor %s/%lld: started pid %d: %s", a->actor_id, a->instance, (int)pid, cmd);
	free(cmd);
	/* The child may not have called setsid yet: make the group now too, so a
	 * stop right away still reaches it (the later setsid is then a no-op error). */
	setpgid(pid, pid);
	a->pid = pid;
	a->state = DRIVER_RUNNING;
	a->started = now;
	return 0;
}

static void signal_group(pid_t pid, int sig)
{
	if (kill(-pid, sig) < 0)
		kill(pid, sig);
}

static int exec_start(struct driver *d, const struct driver_actor *spec, const struct driver_snapshot *snap,
		      int64_t now, char *err, size_t errlen)
{
	struct exec_driver *x = (struct exec_driver *)d;
	if (x->n == x->cap) {
		size_t nc = x->cap ? x->cap * 2 : 8;
		struct exec_actor **na = realloc(x->a, nc * sizeof(*na));
		if (!na) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		x->a = na;
		x->cap = nc;
	}
	struct exec_actor *a = calloc(1, sizeof(*a));
	if (!a || !(a->actor_id = strdup(spec->actor_id)) || !(a->module = strdup(spec->module)) ||
	    !(a->config = strdup(spec->config_json))) {
		actor_free(a);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	a->instance = spec->instance;
	a->cpu = spec->cpu_required;
	a->mem = spec->memory_required_mb;
	a->backoff = EXEC_BACKOFF_MIN_MS;
	if (spawn(x, a, now, err, errlen) < 0) {
		actor_free(a);
		return -1;
	}
	x->a[x->n++] = a;
	return 0;
}

static int exec_stop(struct driver *d, const char *actor_id, long long instance, int64_t now)
{
	struct exec_driver *x = (struct exec_driver *)d;
	size_t idx;
	struct exec_actor *a = lookup(x, actor_id, instance, &idx);
	if (!a)
		return 1;
	a->removed = 1;
	a->restart_after_stop = 0;
	if (a->pid > 0) {
		if (a->state != DRIVER_STOPPING) {
			signal_group(a->pid, SIGTERM);
			a->state = DRIVER_STOPPING;
			a->kill_at = now + EXEC_STOP_GRACE_MS;
		}
	} else {
		x->a[idx] = x->a[--x->n];
		actor_free(a);
	}
	return 0;
}

static int exec_config(struct driver *d, const struct driver_actor *spec, int64_t now)
{
	struct exec_driver *x = (struct exec_driver *)d;
	struct exec_actor *a = lookup(x, spec->actor_id, spec->instance, NULL);
	if (!a)
		return 1;
	char *c = strdup(spec->config_json);
	if (c) {
		free(a->config);
		a->config = c;
	}
	if (a->pid > 0 && a->state != DRIVER_STOPPING) {
		signal_group(a->pid, SIGTERM);
		a->state = DRIVER_STOPPING;
		a->kill_at = now + EXEC_STOP_GRACE_MS;
		a->restart_after_stop = 1;
	} else if (a->pid == 0) {
		a->restart_at = now; /* failed and waiting: start now with the new config */
	}
	return 0;
}

static int exec_checkpoint(struct driver *d, const char *actor_id, long long instance, int force, int64_t now,
			   long long *state_version, char **data)
{
	struct exec_actor *a = lookup((struct exec_driver *)d, actor_id, instance, NULL);
	if (!a)
		return -1;
	if (!force)
		return 1; /* no state, so it never changes */
	char *e = strdup("");
	if (!e)
		return -1;
	*state_version = 0;
	*data = e;
	return 0;
}

static void fill(const struct exec_actor *a, struct driver_status *st)
{
	st->actor_id = a->actor_id;
	st->instance = a->instance;
	st->state = a->state;
	st->state_version = 0;
	st->cpu_required = a->cpu;
	st->memory_required_mb = a->mem;
}

static int exec_find(struct driver *d, const char *actor_id, long long instance, struct driver_status *st)
{
	struct exec_actor *a = lookup((struct exec_driver *)d, actor_id, instance, NULL);
	if (!a)
		return -1;
	fill(a, st);
	return 0;
}

static void exec_list(struct driver *d, void (*fn)(void *ctx, const struct driver_status *st), void *ctx)
{
	struct exec_driver *x = (struct exec_driver *)d;
	for (size_t i = 0; i < x->n; i++) {
		struct driver_status st;
		fill(x->a[i], &st);
		fn(ctx, &st); /* a removed one still stopping is listed: it still runs */
	}
}

static int exec_poll(struct driver *d, int64_t now)
{
	struct exec_driver *x = (struct exec_driver *)d;
	int crashes = 0;
	for (size_t i = 0; i < x->n;) {
		struct exec_actor *a = x->a[i];
		if (a->pid > 0) {
			int status;
			pid_t r = waitpid(a->pid, &status, WNOHANG);
			if (r == a->pid || (r < 0 && errno == ECHILD)) {
				/* The group may outlive the shell: make sure none of it stays. */
				signal_group(a->pid, SIGKILL);
				pid_t was = a->pid;
				a->pid = 0;
				if (a->state == DRIVER_STOPPING) {
					log_info("exec actor %s/%lld: pid %d stopped", a->actor_id, a->instance, (int)was);
					if (a->removed) {
						x->a[i] = x->a[--x->n];
						actor_free(a);
						continue;
					}
					if (a->restart_after_stop) {
						a->restart_after_stop = 0;
						a->state = DRIVER_FAILED;
						a->restart_at = now; /* not a crash: start again now */
					}
				} else {
					crashes++;
					if (now - a->started >= EXEC_STABLE_MS)
						a->backoff = EXEC_BACKOFF_MIN_MS;
					char how[64];
					if (r > 0 && WIFSIGNALED(status))
						snprintf(how, sizeof(how), "killed by signal %d", WTERMSIG(status));
					else if (r > 0 && WIFEXITED(status))
						snprintf(how, sizeof(how), "exited with status %d", WEXITSTATUS(status));
					else
						snprintf(how, sizeof(how), "is gone");
					log_warn("exec actor %s/%lld: pid %d %s; restarting in %lld ms", a->actor_id,
						 a->instance, (int)was, how, (long long)a->backoff);
					a->state = DRIVER_FAILED;
					a->restart_at = now + a->backoff;
					a->backoff = a->backoff * 2 > EXEC_BACKOFF_MAX_MS ? EXEC_BACKOFF_MAX_MS
											  : a->backoff * 2;
				}
			} else if (a->state == DRIVER_STOPPING && now >= a->kill_at) {
				log_warn("exec actor %s/%lld: pid %d ignored SIGTERM for %d ms: SIGKILL", a->actor_id,
					 a->instance, (int)a->pid, EXEC_STOP_GRACE_MS);
				signal_group(a->pid, SIGKILL);
				a->kill_at = now + EXEC_STOP_GRACE_MS;
			}
		}
		if (a->pid == 0 && a->state == DRIVER_FAILED && now >= a->restart_at) {
			char err[256];
			if (spawn(x, a, now, err, sizeof(err)) < 0) {
				log_warn("exec actor %s/%lld: %s", a->actor_id, a->instance, err);
				crashes++;
				a->restart_at = now + a->backoff;
			}
		}
		i++;
	}
	return crashes;
}

static void exec_destroy(struct driver *d)
{
	struct exec_driver *x = (struct exec_driver *)d;
	if (!x)
		return;
	for (size_t i = 0; i < x->n; i++)
		if (x->a[i]->pid > 0)
			signal_group(x->a[i]->pid, SIGTERM);
	/* Wait for them (5 s at most), then SIGKILL what is left. */
	for (int tick = 0; tick <= EXEC_STOP_GRACE_MS / 50; tick++) {
		int alive = 0;
		for (size_t i = 0; i < x->n; i++) {
			struct exec_actor *a = x->a[i];
			if (a->pid <= 0)
				continue;
			if (waitpid(a->pid, NULL, WNOHANG) == 0) {
				alive++;
				if (tick == EXEC_STOP_GRACE_MS / 50)
					signal_group(a->pid, SIGKILL);
			} else {
				signal_group(a->pid, SIGKILL);
				a->pid = 0;
			}
		}
		if (!alive)
			break;
		usleep(50 * 1000);
	}
	for (size_t i = 0; i < x->n; i++) {
		if (x->a[i]->pid > 0)
			waitpid(x->a[i]->pid, NULL, 0);
		actor_free(x->a[i]);
	}
	free(x->a);
	free(x->tmpl);
	free(x);
}

static const struct driver_ops exec_ops = {
	.start = exec_start,
	.stop = exec_stop,
	.config = exec_config,
	.checkpoint = exec_checkpoint,
	.find = exec_find,
	.list = exec_list,
	.poll = exec_poll,
	.destroy = exec_destroy,
};

struct driver *driver_exec_new(const char *tmpl)
{
	struct exec_driver *x = calloc(1, sizeof(*x));
	if (!x || !(x->tmpl = strdup(tmpl))) {
		free(x);
		return NULL;
	}
	x->d.ops = &exec_ops;
	x->d.name = "exec";
	return &x->d;
}
