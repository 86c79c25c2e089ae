/* check — the checker of a chaos run (docs/chaos.md "violations.json"): reads
 * the history and the final state, and names every violation of the checks of
 * docs/chaos.md's table with the history lines that show it. Pure (no I/O)
 * except check_dir. Not thread-safe across calls sharing JSON values (jansson
 * reference counts). */
#ifndef LATTICE_CHECK_H
#define LATTICE_CHECK_H

#include <jansson.h>
#include <stddef.h>

/* Runs every check. history (borrowed): the array hist_load gives (objects
 * sorted by t). final (borrowed): final.json's object. *out (owned by the
 * caller): {"violations":[...], "checks":{...}} — each violation is
 * {"check","key","message","evidence":[history lines, verbatim], ...more
 * members some checks add (replica, node, instance, table)}; violations are in
 * the order of docs/chaos.md's table, then by key. Returns 0, or -1 with err
 * when an input is not what docs/chaos.md says (the message names it) or
 * memory ran out; *out is then untouched. */
int check_run(json_t *history, json_t *final, json_t **out, char *err, size_t errlen);

/* `lattice-sim check DIR`: loads DIR/history.jsonl and DIR/final.json (dir
 * borrowed), runs check_run, writes DIR/violations.json and prints one line per
 * violation ("check key: message") to stdout. *n_violations is set on success.
 * Returns 0, or -1 with err (nothing written). */
int check_dir(const char *dir, size_t *n_violations, char *err, size_t errlen);

#endif
