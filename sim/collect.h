/* collect — the final state of a chaos run (docs/chaos.md "final.json"): each
 * replica's PostgreSQL projection, read with libpq, and the whole final.json
 * object. Blocking I/O; any thread (one connection per call). */
#ifndef LATTICE_COLLECT_H
#define LATTICE_COLLECT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* The tables collected, in the order replicas_differ searches them for the
 * first differing row (a macro, so the checker needs no libpq). */
#define COLLECT_TABLES {"actors", "placements", "nodes", "commands", "failovers", "policies"}
#define COLLECT_NTABLES 6

/* Reads replica number `replica`'s database (conninfo borrowed: a libpq
 * connection string) into one "replicas[]" element of final.json:
 *   {"replica", "alive": true, "applied_index": null, "projected_index",
 *    "tables": {actors, placements, nodes, commands, failovers, policies},
 *    "digest"}
 * Every table is read in one REPEATABLE READ transaction (one snapshot),
 * rows sorted by primary key; every column but the per-replica bookkeeping
 * (docs/chaos.md lists them); timestamps as integer ms since the epoch.
 * "digest" is the lower-case hex SHA-256 of the canonical dump of "tables"
 * (collect_digest). "alive" and "applied_index" are the caller's to set (the
 * database can be read while its latticed is down; the applied index is the
 * replica's, from its API). *out is owned by the caller. Returns 0, or -1 with
 * err (connection, query) and *out untouched. */
int collect_replica(const char *conninfo, int replica, json_t **out, char *err, size_t errlen);

/* The digest of a "tables" object (borrowed): SHA-256 of its compact JSON dump
 * with object keys sorted, as 64 hex digits into hex (65 bytes). Returns 0, or
 * -1 when it cannot be dumped. */
int collect_digest(json_t *tables, char hex[65]);

/* Assembles final.json: {"t", "replicas", "agents", "dead_nodes"}. replicas
 * (an array of collect_replica's elements), agents (node id -> {"alive",
 * "life", "disk", "policy_version", "running": [[actor, instance], ...]}, dead
 * agents included with their last running list) and dead_nodes (an array of
 * node ids) are stolen, also on error; NULL agents or dead_nodes count as
 * empty. *out is owned by the caller. Returns 0, or -1 with err. */
int collect_final(json_t *replicas, json_t *agents, json_t *dead_nodes, int64_t t, json_t **out, char *err,
		  size_t errlen);

#endif
