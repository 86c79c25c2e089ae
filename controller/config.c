#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "log.h"
#include "members.h"
#include "spec.h"

enum opt_kind { OPT_STR, OPT_INT, OPT_BOOL };

struct opt {
	const char *name;
	enum opt_kind kind;
	size_t offset;
	const char *def; /* default as text; NULL = none */
	int64_t min, max;
	const char *arg; /* metavariable for --help */
	const char *doc;
};

#define O(f) offsetof(struct config, f)
static const struct opt config_opts[] = {
	{"config", OPT_STR, O(config_file), NULL, 0, 0, "FILE",
	 "read options from FILE (\"name = value\" lines); flags override it"},
	{"listen", OPT_STR, O(listen), "127.0.0.1:8080", 0, 0, "HOST:PORT", "REST API address"},
	{"data-dir", OPT_STR, O(data_dir), "./lattice-data", 0, 0, "DIR",
	 "Raft log, snapshots and replica metadata (created if missing)"},
	{"pg", OPT_STR, O(pg), "dbname=lattice", 0, 0, "CONNINFO",
	 "libpq connection string of this replica's PostgreSQL database"},
	{"pg-reset", OPT_BOOL, O(pg_reset), "false", 0, 0, NULL,
	 "allow wiping the --pg database when it is recorded for another lattice group or replica id "
	 "(refused otherwise) and rebuilding it from this replica's log; give it once, not in a unit file"},
	{"id", OPT_INT, O(id), "1", 1, INT32_MAX, "N", "Raft server id of this replica"},
	{"raft-address", OPT_STR, O(raft_address), NULL, 0, 0, "IP:PORT",
	 "address Raft listens on and peers reach (IPv4) [this replica's entry in --members, "
	 "else 127.0.0.1:9001]"},
	{"bootstrap", OPT_BOOL, O(bootstrap), "false", 0, 0, NULL,
	 "start a new group: of the --members list (the same list on every replica), or of this "
	 "replica alone (ignored when the data dir already holds a group, so the same command line "
	 "resumes it)"},
	{"members", OPT_STR, O(members), "", 0, 0, "ID=IP:PORT,...",
	 "with --bootstrap: every voter of the new group, by Raft id and Raft address"},
	{"join", OPT_STR, O(join), "", 0, 0, "URL",
	 "join a running group through the REST API of any member (http://HOST:PORT); only a "
	 "data dir that holds no group yet joins"},
	{"api-url", OPT_STR, O(api_url), "", 0, 0, "URL",
	 "URL other replicas and clients reach this replica's REST API at [http://LISTEN]"},
	{"leader-wait-ms", OPT_INT, O(leader_wait_ms), "3000", 0, 600000, "MS",
	 "longest a write waits for a Raft leader to be elected before 503 no_leader"},
	{"heartbeat-interval-ms", OPT_INT, O(heartbeat_interval_ms), "1000", 10, 3600000, "MS",
	 "how often edge agents are expected to heartbeat"},
	{"heartbeat-timeout-ms", OPT_INT, O(heartbeat_timeout_ms), "3000", 0, 86400000, "MS",
	 "a node whose last heartbeat is older is unhealthy; 0 turns failure detection off"},
	{"max-error-count", OPT_INT, O(max_error_count), "5", 1, 1000000, "N",
	 "a node reporting this many errors is unhealthy"},
	{"log-level", OPT_STR, O(log_level), "info", 0, 0, "LEVEL", "debug, info, warn or error"},
	{"http-threads", OPT_INT, O(http_threads), "0", 0, 256, "N",
	 "REST API worker threads; 0: one per online CPU, at least 2"},
	{"pg-read-threads", OPT_INT, O(pg_read_threads), "4", 1, 256, "N",
	 "threads that run the REST API's PostgreSQL reads (each keeps one connection to --pg), so a "
	 "slow query never holds an API worker"},
	{"pg-read-timeout-ms", OPT_INT, O(pg_read_timeout_ms), "10000", 0, 3600000, "MS",
	 "a REST API read that PostgreSQL has not answered within this is cancelled (503 "
	 "database_unavailable): a lock or a runaway query holds no read thread for longer; 0: no limit"},
	{"http-connection-limit", OPT_INT, O(http_connection_limit), "1024", 1, 1000000, "N",
	 "REST API connections open at once, all clients together; more wait in the listen queue"},
	{"http-per-address-limit", OPT_INT, O(http_per_address_limit), "128", 0, 1000000, "N",
	 "REST API connections open at once from one client address (more are closed); 0: no limit"},
	{"http-idle-timeout-s", OPT_INT, O(http_idle_timeout_s), "60", 1, 86400, "S",
	 "close a REST API connection that received and sent nothing for this long"},
	{"http-header-timeout-ms", OPT_INT, O(http_header_timeout_ms), "10000", 100, 3600000, "MS",
	 "close a connection whose request line and headers did not arrive within this (counted "
	 "from its start or its previous answer, so it also ends idle keep-alive)"},
	{"http-body-timeout-ms", OPT_INT, O(http_body_timeout_ms), "30000", 100, 3600000, "MS",
	 "close a connection whose request body did not arrive within this after its headers"},
	{"http-connection-memory", OPT_INT, O(http_connection_memory), "65536", 32768, 16777216, "BYTES",
	 "memory per REST API connection for its request line, headers and buffers"},
	{"max-event-streams", OPT_INT, O(max_event_streams), "256", 0, 100000, "N",
	 "server-sent event streams (GET /v1/events, Accept: text/event-stream) open at once; more are "
	 "refused with 503 too_many_event_streams; 0: none"},
	{"event-stream-buffer", OPT_INT, O(event_stream_buffer), "262144", 4096, 67108864, "BYTES",
	 "events one stream may hold unsent; a client that leaves it full for the keep-alive interval "
	 "(15 s) gets a final overflow event and the stream ends"},
	{"snapshot-threshold", OPT_INT, O(snapshot_threshold), "32768", 16, 100000000, "N",
	 "take a Raft snapshot after this many new entries"},
	{"snapshot-trailing", OPT_INT, O(snapshot_trailing), "1024", 0, 100000000, "N",
	 "entries kept in the log behind a snapshot"},
	{"loop-nice", OPT_INT, O(loop_nice), "-5", -20, 19, "N",
	 "nice value of the thread that runs Raft and applies entries, so its heartbeats and appends "
	 "run before a flood of requests on the API's threads; below 0 needs CAP_SYS_NICE or room in "
	 "RLIMIT_NICE (systemd: LimitNICE=), else it stays at 0 with a warning; 0: left as it is"},
	{"read-wait-max-ms", OPT_INT, O(read_wait_max_ms), "5000", 0, 600000, "MS",
	 "longest a read with ?min_index=N waits for this replica to catch up"},
	{"write-timeout-ms", OPT_INT, O(write_timeout_ms), "10000", 100, 600000, "MS",
	 "longest a write waits to be committed and projected before 503"},
	{"disk-reserve-mb", OPT_INT, O(disk_reserve_mb), "1", 0, 1048576, "MB",
	 "free space kept in the data dir on top of what Raft needs for its next log segment and "
	 "snapshot; below it writes are refused with 503 disk_full"},
	{"projection-queue-mb", OPT_INT, O(projection_queue_mb), "64", 1, 1048576, "MB",
	 "memory for entries waiting to be written to PostgreSQL (while it is slow or unreachable); "
	 "beyond it they are spooled to DATA_DIR/projection.spool, read back in order once PostgreSQL "
	 "takes them, then removed"},
	{"schema-dir", OPT_STR, O(schema_dir), LATTICE_SCHEMA_DIR, 0, 0, "DIR",
	 "directory of the SQL migrations"},
	{"ui-dir", OPT_STR, O(ui_dir), LATTICE_UI_DIR, 0, 0, "DIR",
	 "the dashboard's files (HTML, CSS, JavaScript), served at /ui/"},
	{"chaos-reports", OPT_STR, O(chaos_reports), "", 0, 0, "DIR",
	 "serve the newest chaos report under DIR (lattice-sim run --out DIR/NAME) at GET /v1/chaos/report "
	 "and /v1/chaos/report/timeline.svg, for the dashboard; \"\" serves none (docs/chaos.md)"},
	{"lattice", OPT_STR, O(lattice), "default", 0, 0, "NAME",
	 "lattice name: a NATS subject token (1-64 of A-Z a-z 0-9 _ -) in every subject and stream name"},
	{"nats", OPT_STR, O(nats), "", 0, 0, "URL[,URL...]",
	 "NATS server(s) with JetStream, for the edge protocol (docs/protocol.md); several URLs for a "
	 "NATS cluster; \"\" runs without edge agents (no heartbeats, commands stay pending)"},
	{"nats-creds", OPT_STR, O(nats_creds), "", 0, 0, "FILE", "NATS user credentials file (JWT + nkey seed)"},
	{"nats-replicas", OPT_INT, O(nats_replicas), "1", 1, 5, "N",
	 "JetStream replicas of the streams latticed creates: 3 on a NATS cluster of 3 or more servers, so a "
	 "server's loss loses no command, ack or snapshot; an existing stream is not changed"},
	{"command-timeout-ms", OPT_INT, O(command_timeout_ms), "5000", 100, 3600000, "MS",
	 "a published command not acked within this is published again (the wait doubles each "
	 "attempt, up to 60 s)"},
	{"command-max-attempts", OPT_INT, O(command_max_attempts), "10", 1, 1000, "N",
	 "a command not acked after this many publications is failed"},
};
#undef O
#define NOPTS (sizeof(config_opts) / sizeof(config_opts[0]))

static char **str_field(struct config *c, const struct opt *o)
{
	return (char **)((char *)c + o->offset);
}

static int set_opt(struct config *c, const struct opt *o, const char *val, char *err, size_t errlen)
{
	switch (o->kind) {
	case OPT_STR: {
		char **f = str_field(c, o);
		char *dup = strdup(val);
		if (dup == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		free(*f);
		*f = dup;
		return 0;
	}
	case OPT_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(val, &end, 10);
		if (errno != 0 || end == val || *end != '\0' || v < o->min || v > o->max) {
			snprintf(err, errlen, "--%s: '%s' is not an integer between %lld and %lld", o->name,
				 val, (long long)o->min, (long long)o->max);
			return -1;
		}
		*(int64_t *)((char *)c + o->offset) = v;
		return 0;
	}
	case OPT_BOOL: {
		bool *f = (bool *)((char *)c + o->offset);
		if (strcmp(val, "true") == 0 || strcmp(val, "1") == 0 || strcmp(val, "yes") == 0)
			*f = true;
		else if (strcmp(val, "false") == 0 || strcmp(val, "0") == 0 || strcmp(val, "no") == 0)
			*f = false;
		else {
			snprintf(err, errlen, "--%s: '%s' is not true or false", o->name, val);
			return -1;
		}
		return 0;
	}
	}
	return -1;
}

static const struct opt *find_opt(const char *name)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(config_opts[i].name, name) == 0)
			return &config_opts[i];
	return NULL;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int load_file(struct config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
		return -1;
	}
	/* fopen opens a directory too; reading it would give "no lines", not an error. */
	struct stat st;
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "cannot open config file %s: %s", path,
			 S_ISDIR(st.st_mode) ? "it is a directory" : "not a regular file");
		fclose(f);
		return -1;
	}
	char line[4096];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *s = trim(line);
		if (*s == '\0' || *s == '#')
			continue;
		char *eq = strchr(s, '=');
		if (eq == NULL) {
			snprintf(err, errlen, "%s:%d: expected \"name = value\"", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		char *name = trim(s), *val = trim(eq + 1);
		/* Quotes are optional; they allow leading/trailing spaces in values. */
		size_t vl = strlen(val);
		if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
			val[vl - 1] = '\0';
			val++;
		}
		const struct opt *o = find_opt(name);
		if (o == NULL || strcmp(name, "config") == 0) {
			snprintf(err, errlen, "%s:%d: unknown option '%s'", path, lineno, name);
			rc = -1;
			break;
		}
		char e2[256];
		if (set_opt(c, o, val, e2, sizeof(e2)) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
			rc = -1;
		}
	}
	fclose(f);
	return rc;
}

void config_usage(FILE *out)
{
	fprintf(out, "Usage: latticed [OPTION]...\n"
		     "Replica of the lattice control plane: Raft-replicated state, projected into\n"
		     "PostgreSQL, served over a REST API.\n\n");
	for (size_t i = 0; i < NOPTS; i++) {
		const struct opt *o = &config_opts[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
		fprintf(out, "  %-30s %s", left, o->doc);
		/* A doc that ends in its own [default] (a computed one) says it already. */
		size_t dl = strlen(o->doc);
		if (o->def && o->kind != OPT_BOOL && !(dl && o->doc[dl - 1] == ']'))
			fprintf(out, " [%s]", o->def);
		fprintf(out, "\n");
	}
	fprintf(out, "  %-30s %s\n  %-30s %s\n", "--help", "print this help and exit", "--version",
		"print the version and exit");
	fprintf(out, "\nSIGTERM or SIGINT shuts down cleanly: in-flight writes are answered or refused\n"
		     "and the PostgreSQL projection is flushed.\n");
}

int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NOPTS; i++)
		if (config_opts[i].def && set_opt(c, &config_opts[i], config_opts[i].def, err, errlen) != 0)
			return CONFIG_ERROR;

	struct option longopts[NOPTS + 3];
	for (size_t i = 0; i < NOPTS; i++) {
		longopts[i].name = config_opts[i].name;
		longopts[i].has_arg = config_opts[i].kind == OPT_BOOL ? optional_argument : required_argument;
		longopts[i].flag = NULL;
		longopts[i].val = 1000 + (int)i;
	}
	longopts[NOPTS] = (struct option){"help", no_argument, NULL, 'h'};
	longopts[NOPTS + 1] = (struct option){"version", no_argument, NULL, 'V'};
	longopts[NOPTS + 2] = (struct option){NULL, 0, NULL, 0};

	/* Two passes: the file first (defaults < file < flags), then the flags. */
	for (int pass = 0; pass < 2; pass++) {
		optind = 1;
		opterr = 0;
		int ch;
		while ((ch = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
			if (ch == 'h') {
				config_usage(stdout);
				return CONFIG_EXIT;
			}
			if (ch == 'V') {
				printf("latticed %s\n", PACKAGE_VERSION);
				return CONFIG_EXIT;
			}
			if (ch == '?' || ch == ':') {
				const char *bad = argv[optind - 1];
				snprintf(err, errlen, "%s option '%s' (see latticed --help)",
					 ch == ':' ? "missing value for" : "unknown", bad);
				return CONFIG_ERROR;
			}
			const struct opt *o = &config_opts[ch - 1000];
			bool is_config = strcmp(o->name, "config") == 0;
			if (pass == 0 && !is_config)
				continue;
			if (pass == 1 && is_config)
				continue;
			const char *val = optarg;
			if (o->kind == OPT_BOOL && val == NULL)
				val = "true";
			if (set_opt(c, o, val, err, errlen) != 0)
				return CONFIG_ERROR;
			if (pass == 0 && load_file(c, c->config_file, err, errlen) != 0)
				return CONFIG_ERROR;
		}
		if (pass == 1 && optind < argc) {
			snprintf(err, errlen, "unexpected argument '%s' (see latticed --help)", argv[optind]);
			return CONFIG_ERROR;
		}
	}
	if (!spec_node_id_valid(c->lattice)) {
		snprintf(err, errlen,
			 "--lattice: '%s' is not a NATS subject token (1 to 64 characters of A-Z a-z 0-9 _ -)",
			 c->lattice);
		return CONFIG_ERROR;
	}
	enum log_level l;
	if (log_level_parse(c->log_level, &l) != 0) {
		snprintf(err, errlen, "--log-level: '%s' is not debug, info, warn or error", c->log_level);
		return CONFIG_ERROR;
	}
	if (c->http_threads == 0) {
		/* The workers never wait on PostgreSQL or the loop (their requests
		 * are suspended), so more of them than cores only lengthens the
		 * tail; two keep one slow request from holding the rest. */
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->http_threads = n < 2 ? 2 : n > 256 ? 256 : n;
	}
	if (c->http_connection_limit < c->http_threads) {
		/* libmicrohttpd splits the limit among the threads. */
		snprintf(err, errlen, "--http-connection-limit (%lld) must be at least --http-threads (%lld)",
			 (long long)c->http_connection_limit, (long long)c->http_threads);
		return CONFIG_ERROR;
	}
	char host[256];
	int port;
	if (config_split_hostport(c->listen, host, sizeof(host), &port) != 0) {
		snprintf(err, errlen, "--listen: '%s' is not HOST:PORT", c->listen);
		return CONFIG_ERROR;
	}
	if (c->members[0] != '\0') {
		struct members ms;
		if (members_parse(c->members, &ms, err, errlen) != 0)
			return CONFIG_ERROR;
		const struct member *self = members_find(&ms, c->id);
		if (self == NULL) {
			snprintf(err, errlen, "--members does not list this replica's --id %lld", (long long)c->id);
			return CONFIG_ERROR;
		}
		if (c->raft_address == NULL && (c->raft_address = strdup(self->address)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return CONFIG_ERROR;
		}
		if (strcmp(c->raft_address, self->address) != 0) {
			snprintf(err, errlen, "--raft-address %s differs from this replica's entry in --members (%s)",
				 c->raft_address, self->address);
			return CONFIG_ERROR;
		}
	}
	if (c->raft_address == NULL && (c->raft_address = strdup("127.0.0.1:9001")) == NULL) {
		snprintf(err, errlen, "out of memory");
		return CONFIG_ERROR;
	}
	if (c->members[0] != '\0' && !c->bootstrap) {
		snprintf(err, errlen, "--members is the member list of a new group: give it with --bootstrap (on every "
				      "replica); to add a replica to a running group use --join");
		return CONFIG_ERROR;
	}
	if (c->join[0] != '\0' && c->bootstrap) {
		snprintf(err, errlen, "--join and --bootstrap exclude each other: a replica either starts a "
				      "new group or joins one");
		return CONFIG_ERROR;
	}
	if (c->join[0] != '\0' && strncmp(c->join, "http://", 7) != 0) {
		snprintf(err, errlen, "--join: '%s' is not an http://HOST:PORT URL", c->join);
		return CONFIG_ERROR;
	}
	if (c->api_url[0] != '\0' && strncmp(c->api_url, "http://", 7) != 0) {
		snprintf(err, errlen, "--api-url: '%s' is not an http:// URL", c->api_url);
		return CONFIG_ERROR;
	}
	if (config_split_hostport(c->raft_address, host, sizeof(host), &port) != 0 || port == 0) {
		snprintf(err, errlen, "--raft-address: '%s' is not IP:PORT", c->raft_address);
		return CONFIG_ERROR;
	}
	if (c->nats_creds[0] != '\0' && c->nats[0] == '\0') {
		snprintf(err, errlen, "--nats-creds is given without --nats: give the NATS URL too, or drop it");
		return CONFIG_ERROR;
	}
	if (c->nats_creds[0] != '\0') {
		/* nats.c reads the file only when it connects, and one it cannot read
		 * looks like a NATS that never answers: say so now. */
		FILE *f = fopen(c->nats_creds, "r");
		struct stat st;
		int e = f == NULL ? errno : fstat(fileno(f), &st) != 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
		if (f != NULL)
			fclose(f);
		if (e != 0) {
			snprintf(err, errlen, "--nats-creds: cannot read '%s': %s", c->nats_creds, strerror(e));
			return CONFIG_ERROR;
		}
	}
	return CONFIG_OK;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (config_opts[i].kind == OPT_STR)
			free(*str_field(c, &config_opts[i]));
	memset(c, 0, sizeof(*c));
}

int config_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon = strrchr(s, ':');
	if (colon == NULL || colon == s || (size_t)(colon - s) >= hostlen)
		return -1;
	char *end;
	errno = 0;
	long p = strtol(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end != '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	*port = (int)p;
	return 0;
}
