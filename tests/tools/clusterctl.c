/* clusterctl — drives sim/cluster.c for tests/integration/chaos_cluster.sh.
 *
 *   clusterctl parse JSON      cluster_parse of a scenario's "cluster" object:
 *                              prints "ok replicas=N netns=B ..." or "error: ..."
 *   clusterctl sweep           cluster_sweep_stale()
 *   clusterctl up DIR [JSON]   builds the lattice in DIR (JSON: the "cluster"
 *                              object), prints "api I URL", "ip I IP",
 *                              "pg I CONNINFO", "nats URL", "pid PID", then
 *                              "ready"; then reads commands on stdin, one a
 *                              line, and answers each with one line ("ok",
 *                              "error: ...", or the value asked for):
 *     kill I | stop I | start I | wait I | alive I
 *     pg-stop I | pg-kill I | pg-start I | pg-alive I
 *     nats-stop | nats-start | nats-alive
 *     cut I J | heal | pids | down
 *   End of input is "down". Paths come from the environment: LATTICED,
 *   SCHEMA_DIR, PGBIN, NATS_SERVER, and LATTICE / HEARTBEAT_MS. */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../sim/cluster.h"

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);
	return v && *v ? v : def;
}

static int parse_json(const char *text, struct cluster_cfg *cfg, char *err, size_t errlen)
{
	json_t *j = NULL;
	if (text) {
		json_error_t je;
		if (!(j = json_loads(text, JSON_DECODE_ANY, &je))) {
			snprintf(err, errlen, "bad JSON: %s", je.text);
			return -1;
		}
	}
	int rc = cluster_parse(j, cfg, err, errlen);
	json_decref(j);
	return rc;
}

static void answer(int rc, const char *err)
{
	if (rc == 0)
		printf("ok\n");
	else
		printf("error: %s\n", err);
}

static int serve(struct cluster *c)
{
	char line[256], err[1024];
	while (fgets(line, sizeof(line), stdin)) {
		char cmd[32] = "";
		int i = 0, j = 0;
		int n = sscanf(line, "%31s %d %d", cmd, &i, &j);
		if (n < 1)
			continue;
		err[0] = 0;
		if (!strcmp(cmd, "kill"))
			answer(cluster_replica_kill(c, i, err, sizeof(err)), err);
		else if (!strcmp(cmd, "stop"))
			answer(cluster_replica_stop(c, i, err, sizeof(err)), err);
		else if (!strcmp(cmd, "start"))
			answer(cluster_replica_start(c, i, err, sizeof(err)), err);
		else if (!strcmp(cmd, "wait"))
			answer(cluster_replica_wait_ready(c, i, 60000, err, sizeof(err)), err);
		else if (!strcmp(cmd, "alive"))
			printf("%d\n", cluster_replica_alive(c, i));
		else if (!strcmp(cmd, "pg-stop"))
			answer(cluster_pg_stop(c, i, 0, err, sizeof(err)), err);
		else if (!strcmp(cmd, "pg-kill"))
			answer(cluster_pg_stop(c, i, 1, err, sizeof(err)), err);
		else if (!strcmp(cmd, "pg-start"))
			answer(cluster_pg_start(c, i, err, sizeof(err)), err);
		else if (!strcmp(cmd, "pg-alive"))
			printf("%d\n", cluster_pg_alive(c, i));
		else if (!strcmp(cmd, "nats-stop"))
			answer(cluster_nats_stop(c, err, sizeof(err)), err);
		else if (!strcmp(cmd, "nats-start"))
			answer(cluster_nats_start(c, err, sizeof(err)), err);
		else if (!strcmp(cmd, "nats-alive"))
			printf("%d\n", cluster_nats_alive(c));
		else if (!strcmp(cmd, "cut"))
			answer(cluster_cut(c, i, j, err, sizeof(err)), err);
		else if (!strcmp(cmd, "heal"))
			answer(cluster_heal(c, err, sizeof(err)), err);
		else if (!strcmp(cmd, "pids")) {
			pid_t p[32];
			size_t k = cluster_pids(c, p, 32);
			for (size_t m = 0; m < k && m < 32; m++)
				printf("%s%d", m ? " " : "", (int)p[m]);
			printf("\n");
		} else if (!strcmp(cmd, "down"))
			break;
		else
			printf("error: unknown command '%s'\n", cmd);
	}
	cluster_down(c);
	printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	char err[1024];
	struct cluster_cfg cfg;
	if (argc == 3 && !strcmp(argv[1], "parse")) {
		if (parse_json(argv[2], &cfg, err, sizeof(err)) < 0) {
			printf("error: %s\n", err);
			return 2;
		}
		printf("ok replicas=%d netns=%s heartbeat_timeout_ms=%d command_timeout_ms=%d args=", cfg.replicas,
		       cfg.netns ? "true" : "false", cfg.heartbeat_timeout_ms, cfg.command_timeout_ms);
		for (size_t k = 0; k < cfg.n_latticed_args; k++)
			printf("%s%s", k ? "," : "", cfg.latticed_args[k]);
		printf("\n");
		cluster_cfg_free(&cfg);
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "sweep")) {
		cluster_sweep_stale();
		return 0;
	}
	if ((argc == 3 || argc == 4) && !strcmp(argv[1], "up")) {
		if (parse_json(argc == 4 ? argv[3] : NULL, &cfg, err, sizeof(err)) < 0) {
			printf("error: %s\n", err);
			return 2;
		}
		struct cluster_env env = {
			.dir = argv[2],
			.latticed = env_or("LATTICED", "./latticed"),
			.schema_dir = env_or("SCHEMA_DIR", "schema"),
			.pg_bindir = env_or("PGBIN", "/usr/lib/postgresql/15/bin"),
			.nats_server = env_or("NATS_SERVER", "/usr/sbin/nats-server"),
			.lattice = env_or("LATTICE", "default"),
			.heartbeat_ms = atoi(env_or("HEARTBEAT_MS", "0")),
		};
		struct cluster *c;
		int rc = cluster_up(&c, &cfg, &env, err, sizeof(err));
		cluster_cfg_free(&cfg);
		if (rc < 0) {
			printf("error: %s\n", err);
			return 1;
		}
		for (int i = 1; i <= cluster_replicas(c); i++)
			printf("api %d %s\nip %d %s\npg %d %s\n", i, cluster_api_url(c, i), i, cluster_replica_ip(c, i), i,
			       cluster_pg_conninfo(c, i));
		printf("nats %s\npid %d\nready\n", cluster_nats_url(c), (int)getpid());
		return serve(c);
	}
	fprintf(stderr, "usage: clusterctl parse JSON | sweep | up DIR [JSON]\n");
	return 2;
}
