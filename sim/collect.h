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
 *    "commands_summary": {"total", "retried", "by_status": {status: n}},
 *    "digests": {table: hex}, "digest"}
 * Every table is read in one REPEATABLE READ transaction (one snapshot),
 * rows sorted by primary key; every column but the per-replica bookkeeping
 * (docs/chaos.md lists them); timestamps as integer ms since the epoch.
 * "commands" holds the open commands only (pending, published); the summary
 * counts them all. digests[table] is the hex SHA-256 of the concatenated md5s
 * of every row's JSON text in key order (computed by PostgreSQL, finished
 * commands included); "digest" is collect_digest of them. "alive" and
 * "applied_index" are the caller's to set (the database can be read while its
 * latticed is down; the applied index is the replica's, from its API). *out
 * is owned by the caller. Returns 0, or -1 with err (connection, query) and
 * *out untouched. */
int collect_replica(const char *conninfo, int replica, json_t **out, char *err, size_t errlen);

/* collect_replica in two steps, so the snapshot can be taken while the
 * agents stand still and the reading done after: collect_begin connects and
 * takes the REPEATABLE READ snapshot (*out owned by the caller: pass it to
 * collect_finish or collect_abort); collect_finish reads it into *out and
 * frees s, also on error. Same returns and errors as collect_replica. */
struct collect_snap;
int collect_begin(const char *conninfo, int replica, struct collect_snap **out, char *err, size_t errlen);
int collect_finish(struct collect_snap *s, json_t **out, char *err, size_t errlen);
void collect_abort(struct collect_snap *s);

/* The digest of a "digests" object (borrowed): SHA-256 of the lines
 * "<table>:<hex>\n", tables in COLLECT_TABLES order, as 64 hex digits into
 * hex (65 bytes). Returns 0, or -1 when a table's digest is missing. */
int collect_digest(json_t *digests, char hex[65]);

/* Assembles final.json: {"t", "replicas", "agents", "dead_nodes"}. replicas
 * (an array of collect_replica's elements), agents (node id -> {"alive",
 * "life", "disk", "policy_version", "running": [[actor, instance], ...]}, dead
 * agents included with their last running list) and dead_nodes (an array of
 * node ids) are stolen, also on error; NULL agents or dead_nodes count as
 * empty. *out is owned by the caller. Returns 0, or -1 with err. */
int collect_final(json_t *replicas, json_t *agents, json_t *dead_nodes, int64_t t, json_t **out, char *err,
		  size_t errlen);

#endif
