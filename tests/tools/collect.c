/* collect — tests/integration/collect.sh's tool (sim/collect.c):
 *   collect CONNINFO REPLICA   prints collect_replica's element (JSON, one line)
 *   collect --final CONNINFO...  prints collect_final of one element per
 *                              database (replicas 1..N), no agents, t = 0
 * Exit 0, or 1 with the error on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collect.h"

int main(int argc, char **argv)
{
	char err[512];
	json_t *out = NULL;
	if (argc >= 3 && strcmp(argv[1], "--final") == 0) {
		json_t *reps = json_array();
		for (int i = 2; i < argc; i++) {
			json_t *el;
			if (collect_replica(argv[i], i - 1, &el, err, sizeof(err)) != 0) {
				fprintf(stderr, "collect: %s\n", err);
				json_decref(reps);
				return 1;
			}
			json_array_append_new(reps, el);
		}
		if (collect_final(reps, NULL, json_pack("[s]", "n9"), 0, &out, err, sizeof(err)) != 0) {
			fprintf(stderr, "collect: %s\n", err);
			return 1;
		}
	} else if (argc == 3) {
		if (collect_replica(argv[1], atoi(argv[2]), &out, err, sizeof(err)) != 0) {
			fprintf(stderr, "collect: %s\n", err);
			return 1;
		}
	} else {
		fprintf(stderr, "usage: collect CONNINFO REPLICA | collect --final CONNINFO...\n");
		return 2;
	}
	char *s = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	if (!s)
		return 1;
	puts(s);
	free(s);
	return 0;
}
