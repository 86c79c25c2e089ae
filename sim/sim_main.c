/* lattice-sim — many simulated edge agents in one process (sim/README.md
 * "lattice-sim"). The runtime is sim/simrt.c; this is options, signals and
 * the periodic progress line. */
#include <errno.h>
#include <getopt.h>
#include <nats/nats.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "simrt.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0"
#endif

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

struct opts {
	const char *nats;
	const char *creds;
	const char *scenario;
	const char *state_dir;
	long long threads;
	long long expires_ms;
	const char *log_level;
};

enum { O_NATS = 1, O_CREDS, O_SCENARIO, O_STATE, O_THREADS, O_EXPIRES, O_LOG, O_HELP };

static const struct opt_doc {
	const char *name;
	int id;
	const char *arg;
	const char *dflt;
	const char *help;
} opt_docs[] = {
	{"nats", O_NATS, "URL[,URL...]", "nats://127.0.0.1:4222", "NATS server(s); several = one cluster; reconnects forever"},
	{"nats-creds", O_CREDS, "FILE", "none", "NATS credentials file (JWT + nkey seed) used by every simulated agent"},
	{"scenario", O_SCENARIO, "FILE", "required", "the scenario (JSON, sim/scenarios/README.md)"},
	{"state-dir", O_STATE, "DIR", "required", "one state dir per agent under it (DIR/<node_id>); created"},
	{"threads", O_THREADS, "N", "2", "worker threads (1-64), each owning a slice of the agents"},
	{"pull-expires-ms", O_EXPIRES, "MS", "30000", "expiry of a bound agent's pull request (1000-300000)"},
	{"log-level", O_LOG, "LEVEL", "info", "debug, info, warn or error"},
	{"help", O_HELP, NULL, NULL, "this text"},
};
#define N_OPTS (sizeof(opt_docs) / sizeof(opt_docs[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: lattice-sim --scenario FILE --state-dir DIR [options]\n\n");
	for (size_t i = 0; i < N_OPTS; i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", opt_docs[i].name, opt_docs[i].arg ? " " : "",
			 opt_docs[i].arg ? opt_docs[i].arg : "");
		fprintf(f, "  %-30s %s", left, opt_docs[i].help);
		if (opt_docs[i].dflt)
			fprintf(f, " (default: %s)", opt_docs[i].dflt);
		fprintf(f, "\n");
	}
}

static int bad(const char *fmt, const char *a)
{
	fprintf(stderr, "lattice-sim: ");
	fprintf(stderr, fmt, a);
	fprintf(stderr, "\n");
	return 2;
}

static int parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o, int *help)
{
	struct option lo[N_OPTS + 1];
	for (size_t i = 0; i < N_OPTS; i++)
		lo[i] = (struct option){opt_docs[i].name, opt_docs[i].arg ? required_argument : no_argument, NULL,
					 opt_docs[i].id};
	lo[N_OPTS] = (struct option){0, 0, 0, 0};
	*o = (struct opts){.nats = "nats://127.0.0.1:4222", .threads = 2, .expires_ms = 30000, .log_level = "info"};
	int c;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case O_NATS: o->nats = optarg; break;
		case O_CREDS: o->creds = optarg; break;
		case O_SCENARIO: o->scenario = optarg; break;
		case O_STATE: o->state_dir = optarg; break;
		case O_LOG: o->log_level = optarg; break;
		case O_HELP: *help = 1; return 0;
		case O_THREADS:
			if (parse_int(optarg, 1, 64, &o->threads) < 0)
				return bad("--threads '%s': want 1 to 64", optarg);
			break;
		case O_EXPIRES:
			if (parse_int(optarg, 1000, 300000, &o->expires_ms) < 0)
				return bad("--pull-expires-ms '%s': want 1000 to 300000", optarg);
			break;
		default:
			return bad("unknown option or missing value: '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s' (see --help)", argv[optind]);
	if (!o->scenario || !*o->scenario)
		return bad("--scenario is required%s", "");
	if (!o->state_dir || !*o->state_dir)
		return bad("--state-dir is required%s", "");
	enum log_level lvl;
	if (log_level_parse(o->log_level, &lvl) < 0)
		return bad("--log-level '%s': want debug, info, warn or error", o->log_level);
	if (o->creds) {
		FILE *f = fopen(o->creds, "r");
		struct stat st;
		int e = f == NULL ? errno : fstat(fileno(f), &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
		if (f != NULL)
			fclose(f);
		if (e != 0) {
			fprintf(stderr, "lattice-sim: --nats-creds: cannot read '%s': %s\n", o->creds, strerror(e));
			return 2;
		}
	}
	log_set_level(lvl);
	return 0;
}

static void log_progress(struct simrt *rt, const char *when)
{
	struct simrt_stats st;
	simrt_get_stats(rt, &st);
	log_info("%s: agents %llu, bound %llu, commands applied %llu, acks published %llu, messages acked %llu, "
		 "naked %llu, terminated %llu, heartbeats %llu, pull requests %llu, errors %llu",
		 when, (unsigned long long)st.agents, (unsigned long long)st.bound, (unsigned long long)st.applied,
		 (unsigned long long)st.acks, (unsigned long long)st.msg_acks, (unsigned long long)st.naks,
		 (unsigned long long)st.terms, (unsigned long long)st.heartbeats, (unsigned long long)st.pulls,
		 (unsigned long long)st.errors);
}

int main(int argc, char **argv)
{
	struct opts o;
	int help = 0;
	int rc = parse_opts(argc, argv, &o, &help);
	if (rc)
		return rc;
	if (help) {
		usage(stdout);
		return 0;
	}
	char err[1024];
	struct simrt_scenario *sc = NULL;
	if (simrt_scenario_load(&sc, o.scenario, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim: scenario %s\n", err);
		return 2;
	}
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct simrt_options so = {
		.nats = o.nats,
		.creds = o.creds,
		.state_dir = o.state_dir,
		.agent_version = "lattice-sim " PACKAGE_VERSION,
		.threads = (int)o.threads,
		.pull_expires_ms = o.expires_ms,
	};
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct simrt *rt = NULL;
	if (simrt_start(&rt, sc, &so, err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim: %s\n", err);
		simrt_scenario_free(sc);
		nats_Close();
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("lattice-sim %s: %zu agents in %zu groups (lattice %s, heartbeat %lld ms), %lld threads, opened in "
		 "%lld ms",
		 PACKAGE_VERSION, sc->n_agents, sc->n_groups, sc->lattice, sc->heartbeat_ms, o.threads,
		 (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
	int ticks = 0, status = 0;
	while (!stop_requested) {
		usleep(100 * 1000);
		if (simrt_failed(rt)) {
			status = 1;
			break;
		}
		if (++ticks % 100 == 0)
			log_progress(rt, "progress");
	}
	log_progress(rt, status ? "stopping (a journal failed)" : "stopping (signal)");
	simrt_stop(rt);
	simrt_scenario_free(sc);
	nats_Close();
	return status;
}
