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

#include "check.h"
#include "log.h"
#include "report.h"
#include "run.h"
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
	fprintf(f, "usage: lattice-sim --scenario FILE --state-dir DIR [options]   (agents only)\n"
		   "       lattice-sim run --scenario FILE --out DIR [options]        (a chaos run: run --help)\n"
		   "       lattice-sim check DIR | report DIR\n\n");
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

/* ---- lattice-sim run | check | report (docs/chaos.md) ------------------------- */

/* The program beside this one (build tree: ../NAME; installed: ./NAME), or
 * NAME to be found in PATH. */
static const char *beside(const char *name, char *buf, size_t len)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(buf, len, "%s/%s", self, name);
			if (access(buf, X_OK) == 0)
				return buf;
			snprintf(buf, len, "%s/../%s", self, name);
			if (access(buf, X_OK) == 0)
				return buf;
		}
	}
	return name;
}

/* NAME's path in PATH (the cluster execs by path), or NAME. */
static const char *in_path(const char *name, char *buf, size_t len)
{
	const char *path = getenv("PATH");
	char dirs[4096];
	snprintf(dirs, sizeof(dirs), "%s", path ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
	for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(buf, len, "%s/%s", *d ? d : ".", name);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return name;
}

static void run_usage(FILE *f)
{
	fprintf(f, "usage: lattice-sim run --scenario FILE --out DIR [options]\n"
		   "       lattice-sim check DIR     (check a recorded run again: DIR/violations.json)\n"
		   "       lattice-sim report DIR    (write its report again: summary.txt, report.json, timeline.svg)\n\n"
		   "  --scenario FILE        the scenario (docs/chaos.md)\n"
		   "  --out DIR              the run dir: history, final state, report, logs (new or empty)\n"
		   "  --seed N               repeatable choices of targets and workload (default: from the clock, printed)\n"
		   "  --threads N            agent worker threads (default: 2)\n"
		   "  --latticed PATH        (default: the latticed beside lattice-sim, else PATH)\n"
		   "  --schema-dir DIR       latticed's migrations (default: " LATTICE_SCHEMA_DIR ")\n"
		   "  --pg-bindir DIR        initdb and postgres (default: /usr/lib/postgresql/15/bin)\n"
		   "  --nats-server PATH     (default: nats-server in PATH)\n"
		   "  --keep                 leave the lattice up after the run until SIGINT/SIGTERM\n"
		   "  --log-level LEVEL      debug, info, warn or error (default: info)\n"
		   "Exit status: 0 no violation, 1 violations (or the run failed), 2 bad input.\n");
}

static int main_run(int argc, char **argv)
{
	char lbuf[4200], nbuf[4200];
	struct run_options ro = {.latticed = beside("latticed", lbuf, sizeof(lbuf)),
				 .schema_dir = LATTICE_SCHEMA_DIR,
				 .pg_bindir = "/usr/lib/postgresql/15/bin",
				 .nats_server = in_path("nats-server", nbuf, sizeof(nbuf)),
				 .threads = 2};
	const char *level = "info";
	int have_seed = 0;
	enum { R_SCEN = 1, R_OUT, R_SEED, R_THREADS, R_LATTICED, R_SCHEMA, R_PG, R_NATS, R_KEEP, R_LOG, R_HELP };
	static const struct option lo[] = {
		{"scenario", required_argument, NULL, R_SCEN},	  {"out", required_argument, NULL, R_OUT},
		{"seed", required_argument, NULL, R_SEED},	  {"threads", required_argument, NULL, R_THREADS},
		{"latticed", required_argument, NULL, R_LATTICED}, {"schema-dir", required_argument, NULL, R_SCHEMA},
		{"pg-bindir", required_argument, NULL, R_PG},	  {"nats-server", required_argument, NULL, R_NATS},
		{"keep", no_argument, NULL, R_KEEP},		  {"log-level", required_argument, NULL, R_LOG},
		{"help", no_argument, NULL, R_HELP},		  {0, 0, 0, 0}};
	int c;
	long long v;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case R_SCEN: ro.scenario = optarg; break;
		case R_OUT: ro.out = optarg; break;
		case R_SEED:
			if (parse_int(optarg, 0, 9007199254740991LL, &v) < 0)
				return bad("--seed '%s': want a non-negative integer", optarg);
			ro.seed = (uint64_t)v;
			have_seed = 1;
			break;
		case R_THREADS:
			if (parse_int(optarg, 1, 64, &v) < 0)
				return bad("--threads '%s': want 1 to 64", optarg);
			ro.threads = (int)v;
			break;
		case R_LATTICED: ro.latticed = optarg; break;
		case R_SCHEMA: ro.schema_dir = optarg; break;
		case R_PG: ro.pg_bindir = optarg; break;
		case R_NATS: ro.nats_server = optarg; break;
		case R_KEEP: ro.keep = 1; break;
		case R_LOG: level = optarg; break;
		case R_HELP: run_usage(stdout); return 0;
		default: return bad("run: unknown option or missing value: '%s' (see lattice-sim run --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return bad("run: unexpected argument '%s'", argv[optind]);
	if (!ro.scenario || !ro.out)
		return bad("run: --scenario and --out are required%s", "");
	enum log_level lvl;
	if (log_level_parse(level, &lvl) < 0)
		return bad("--log-level '%s': want debug, info, warn or error", level);
	log_set_level(lvl);
	struct stat st;
	if (stat(ro.schema_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return bad("--schema-dir %s: not a directory (give latticed's migrations)", ro.schema_dir);
	if (!have_seed) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ro.seed = ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid();
		ro.seed &= 9007199254740991ULL; /* exact in any JSON reader */
	}
	log_info("lattice-sim run: seed %llu (--seed %llu repeats the choices)", (unsigned long long)ro.seed,
		 (unsigned long long)ro.seed);
	struct sigaction sa = {0};
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int rc = run_main(&ro, &stop_requested);
	nats_CloseAndWait(5000); /* its threads gone before exit (else they may run into the teardown) */
	return rc;
}

static int main_dir(const char *what, int argc, char **argv)
{
	if (argc != 3 || argv[2][0] == '-') {
		fprintf(stderr, "usage: lattice-sim %s DIR\n", what);
		return 2;
	}
	char err[1024];
	if (!strcmp(what, "check")) {
		size_t n = 0;
		if (check_dir(argv[2], &n, err, sizeof(err)) < 0) {
			fprintf(stderr, "lattice-sim check: %s\n", err);
			return 2;
		}
		printf("%zu violation%s\n", n, n == 1 ? "" : "s");
		return n ? 1 : 0;
	}
	if (report_dir(argv[2], err, sizeof(err)) < 0) {
		fprintf(stderr, "lattice-sim report: %s\n", err);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "run"))
		return main_run(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "check") || !strcmp(argv[1], "report")))
		return main_dir(argv[1], argc, argv);
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
		nats_CloseAndWait(5000);
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
	nats_CloseAndWait(5000);
	return status;
}
