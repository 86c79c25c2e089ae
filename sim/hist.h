/* hist — the history of a chaos run (docs/chaos.md "history.jsonl"): one JSON
 * object per line, each stamped with t = ms since the run started on ONE
 * monotonic clock. Every writer of a run (workload clients, nemeses, agents,
 * observer) shares one struct hist; writes are serialized by a mutex and each
 * line is flushed to the kernel at once, so a crash loses at most the line
 * being written. */
#ifndef LATTICE_HIST_H
#define LATTICE_HIST_H

#include <jansson.h>
#include <stdint.h>

struct hist;

/* Creates (truncates) path. Returns NULL with err on failure. */
struct hist *hist_open(const char *path, char *err, size_t errlen);
/* ms since hist_open (monotonic). Thread-safe. */
int64_t hist_now(const struct hist *h);
/* Writes obj (borrowed; not modified) as one line with "t" = hist_now() put
 * first, unless obj already has an integer "t". Thread-safe. Returns 0, or -1
 * when the line could not be written (the history is then incomplete: the run
 * reports it). */
int hist_write(struct hist *h, json_t *obj);
/* The same with the object stolen (json_pack(...) straight in). */
int hist_writen(struct hist *h, json_t *obj);
/* Lines that could not be written. */
uint64_t hist_errors(const struct hist *h);
void hist_close(struct hist *h);

/* Reading: every line of a history file, as JSON objects sorted by t (stable:
 * equal t keeps file order). *out (owned by the caller, json_decref) is an
 * array. A line that is not a JSON object with an integer t is an error
 * naming its line number. */
int hist_load(const char *path, json_t **out, char *err, size_t errlen);

#endif
