/* workctl — the chaos workload and observer (sim/work.c, sim/observe.c) run
 * for a while against replicas started by a test (tests/integration/chaos_work.sh).
 *
 *   workctl --urls URL1,URL2,... --hist FILE [--seconds S] [--seed N]
 *           [--workload JSON] [--regions R1,R2] [--watch NODE1,NODE2]
 *           [--timeout-ms MS] [--kill-leader-at S --pids PID1,PID2,...]
 *
 * Replica i is the i-th URL (and has Raft id i). With --kill-leader-at, at S
 * seconds the replica the observer sees as leader is killed with SIGKILL (its
 * pid from --pids, in replica order), with a `nemesis` line in the history; the
 * run then goes on for at least --seconds in all and until the observer agrees
 * on another leader (at most 60 s more: a guard). Prints the counts as JSON on
 * stdout: {"invoked":N,"create":{"ok":..,"fail":..,"info":..},...,"killed":R}.
 * Exit 0, or 1 with a message. */
#define _GNU_SOURCE
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"
#include "observe.h"
#include "work.h"

#define MAXN 9

static int split(char *s, char **out, int max)
{
	int n = 0;
	for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
		out[n++] = t;
	return n;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void nap(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static int die(const char *msg)
{
	fprintf(stderr, "workctl: %s\n", msg);
	return 1;
}

int main(int argc, char **argv)
{
	char *urls[MAXN], *pids[MAXN], *regions[WORK_MAX_REGIONS], *watch[4096];
	int n = 0, npids = 0, nregions = 0, nwatch = 0;
	const char *hist_path = NULL, *workload = NULL;
	double seconds = 10, kill_at = -1;
	uint64_t seed = 1;
	int timeout_ms = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (i + 1 >= argc)
			return die("every option takes a value (see the top of tests/tools/workctl.c)");
		char *v = argv[++i];
		if (strcmp(a, "--urls") == 0)
			n = split(v, urls, MAXN);
		else if (strcmp(a, "--pids") == 0)
			npids = split(v, pids, MAXN);
		else if (strcmp(a, "--regions") == 0)
			nregions = split(v, regions, WORK_MAX_REGIONS);
		else if (strcmp(a, "--watch") == 0)
			nwatch = split(v, watch, 4096);
		else if (strcmp(a, "--hist") == 0)
			hist_path = v;
		else if (strcmp(a, "--workload") == 0)
			workload = v;
		else if (strcmp(a, "--seconds") == 0)
			seconds = atof(v);
		else if (strcmp(a, "--kill-leader-at") == 0)
			kill_at = atof(v);
		else if (strcmp(a, "--seed") == 0)
			seed = strtoull(v, NULL, 10);
		else if (strcmp(a, "--timeout-ms") == 0)
			timeout_ms = atoi(v);
		else
			return die("unknown option (see the top of tests/tools/workctl.c)");
	}
	if (n == 0 || !hist_path)
		return die("--urls and --hist are required");
	if (kill_at >= 0 && npids != n)
		return die("--kill-leader-at needs --pids with one pid per URL");

	char err[512];
	json_t *wl = NULL;
	if (workload) {
		json_error_t je;
		if (!(wl = json_loads(workload, JSON_REJECT_DUPLICATES, &je)))
			return die(je.text);
	}
	struct work_cfg cfg;
	if (work_parse(wl, &cfg, err, sizeof(err)) != 0)
		return die(err);
	json_decref(wl);
	if (timeout_ms > 0)
		cfg.timeout_ms = timeout_ms;
	for (int i = 0; i < nregions; i++)
		snprintf(cfg.regions[cfg.n_regions++], sizeof(cfg.regions[0]), "%s", regions[i]);

	struct hist *h = hist_open(hist_path, err, sizeof(err));
	if (!h)
		return die(err);
	struct observe *o = NULL;
	struct work *w = NULL;
	if (observe_start(&o, (const char *const *)urls, n, h, err, sizeof(err)) != 0)
		return die(err);
	if (nwatch > 0 && observe_watch_nodes(o, (const char *const *)watch, nwatch) != 0)
		return die("out of memory");
	if (work_start(&w, &cfg, (const char *const *)urls, n, h, seed, err, sizeof(err)) != 0)
		return die(err);

	int64_t t0 = mono_ms(), end = t0 + (int64_t)(seconds * 1000);
	int killed = 0;
	for (;;) {
		int64_t now = mono_ms();
		if (kill_at >= 0 && !killed && now - t0 >= (int64_t)(kill_at * 1000)) {
			int l = observe_leader(o);
			if (l > 0) {
				pid_t pid = (pid_t)atoi(pids[l - 1]);
				char target[16];
				snprintf(target, sizeof(target), "%d", l);
				hist_writen(h, json_pack("{sssssssis[s]ss}", "type", "nemesis", "f", "kill_replica", "phase",
							 "start", "id", 1, "targets", target, "detail",
							 "kill -9 of the leader (workctl)"));
				if (kill(pid, SIGKILL) != 0)
					return die("kill failed");
				killed = l;
			} else if (now - t0 > (int64_t)(kill_at * 1000) + 30000) {
				return die("no agreed leader to kill within 30 s");
			}
		}
		bool done = now >= end && (kill_at < 0 || killed);
		if (done && killed) {
			int l = observe_leader(o);
			done = l > 0 && l != killed;
			if (!done && now > end + 60000)
				return die("no new leader agreed on within 60 s after the run's end");
		}
		if (done)
			break;
		nap(50);
	}
	work_stop(w);
	hist_writen(h, json_pack("{ssss}", "type", "run", "f", "workload_end"));
	observe_stop(o);
	uint64_t herr = hist_errors(h);
	hist_close(h);
	if (herr)
		return die("history lines could not be written");

	struct work_stats st;
	work_stats(w, &st);
	work_free(w);
	json_t *out = json_pack("{sIsi}", "invoked", (json_int_t)st.invoked, "killed", killed);
	for (int f = 0; f < WORK_F_N; f++) {
		json_t *fo = json_object();
		for (int k = 0; k < WORK_OUTCOMES; k++)
			json_object_set_new(fo, work_outcome_name((enum work_outcome)k), json_integer((json_int_t)st.n[f][k]));
		json_object_set_new(out, work_f_name((enum work_f)f), fo);
	}
	char *s = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s\n", s);
	free(s);
	json_decref(out);
	return 0;
}
