/* config — latticed's options: one table (name, kind, default, range, doc) drives
 * the command-line parser, the config-file parser and --help, so they never
 * disagree. A config file holds "name = value" lines with the long option names;
 * flags given on the command line override the file. */
#ifndef LATTICE_CONFIG_H
#define LATTICE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct config {
	char *config_file;
	char *listen;       /* HOST:PORT for the REST API */
	char *data_dir;     /* Raft log, snapshots, replica metadata */
	char *pg;           /* libpq conninfo of this replica's database */
	bool pg_reset;      /* may wipe a database recorded for another group or replica */
	int64_t id;         /* Raft server id, >= 1 */
	char *raft_address; /* IPv4 HOST:PORT raft listens on */
	bool bootstrap;
	char *members; /* --members: "ID=IP:PORT,..." ("" none; members.h parses it) */
	char *join;    /* --join URL ("" none) */
	char *api_url; /* --api-url ("" : http://LISTEN) */
	int64_t leader_wait_ms;
	int64_t heartbeat_interval_ms;
	int64_t heartbeat_timeout_ms; /* 0: failure detection off */
	int64_t max_error_count;
	char *log_level;
	int64_t http_threads;
	int64_t pg_read_threads;
	int64_t pg_read_timeout_ms;
	int64_t http_connection_limit;
	int64_t http_per_address_limit; /* 0: none */
	int64_t http_idle_timeout_s;
	int64_t http_header_timeout_ms;
	int64_t http_body_timeout_ms;
	int64_t http_connection_memory; /* bytes */
	int64_t max_event_streams;
	int64_t event_stream_buffer; /* bytes */
	int64_t snapshot_threshold;
	int64_t snapshot_trailing;
	int64_t loop_nice; /* the loop thread's nice value; 0: left as it is */
	int64_t read_wait_max_ms;
	int64_t write_timeout_ms;
	int64_t disk_reserve_mb; /* kept free in the data dir beyond what raft needs */
	int64_t projection_queue_mb; /* the projection's queue in memory; beyond it, the spool */
	char *schema_dir;
	char *chaos_reports; /* "" none */
	char *ui_dir;
	char *lattice; /* lattice name (NATS subjects): a subject token */
	char *nats;       /* --nats URL[,URL...] ("" : no edge protocol) */
	char *nats_creds; /* "" none */
	int64_t nats_replicas; /* JetStream replicas of the streams latticed creates */
	int64_t command_timeout_ms;
	int64_t command_max_attempts;
};

enum config_rc { CONFIG_OK = 0, CONFIG_ERROR = 1, CONFIG_EXIT = 2 /* --help/--version printed */ };

/* Fills *c with defaults, then the file named by --config, then the flags.
 * On CONFIG_ERROR writes a message to err. The strings in *c are owned by it
 * (config_free). */
int config_load(struct config *c, int argc, char **argv, char *err, size_t errlen);
void config_free(struct config *c);
void config_usage(FILE *out);
/* Splits "host:port" (IPv4 dotted quad or hostname for listen). 0 or -1. */
int config_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
