/* report — the report of a chaos run (docs/chaos.md "Report"): report.json (every
 * figure, times in ms), summary.txt (one screen for a person) and timeline.svg
 * (the run as a picture), computed from the history (one clock), final.json and
 * violations.json. Pure reading and writing of files: no servers, no clocks. */
#ifndef LATTICE_REPORT_H
#define LATTICE_REPORT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* Writes DIR/report.json, DIR/summary.txt and DIR/timeline.svg (each written to a
 * temporary name and renamed, so a reader never sees half a file). All JSON is
 * borrowed and not modified: scenario (the scenario object), history (an array of
 * history lines sorted by t, as hist_load gives it), final (final.json; NULL: none
 * was collected) and violations (violations.json; NULL: not checked). Lines or
 * members a reader does not know or cannot use are ignored (docs/chaos.md).
 * Returns 0, or -1 with err naming the file that could not be written. */
int report_write(const char *dir, json_t *scenario, json_t *history, json_t *final, json_t *violations,
		 char *err, size_t errlen);

/* Loads DIR/scenario.json, DIR/history.jsonl, DIR/final.json and
 * DIR/violations.json, calls report_write and prints summary.txt to stdout
 * (`lattice-sim report DIR`). Returns 0, or -1 with err (the file and why). */
int report_dir(const char *dir, char *err, size_t errlen);

/* The report object report_write writes as report.json, for callers that want
 * the figures (the run's one-line verdict, tests). Arguments as report_write;
 * name is the scenario's name for the title (borrowed). Returns a new reference
 * (the caller owns it) or NULL when out of memory. */
json_t *report_build(const char *name, json_t *scenario, json_t *history, json_t *final, json_t *violations);

/* summary.txt of a report object (borrowed) to f. Returns 0 or -1 (write error). */
int report_summary(FILE *f, json_t *report);

/* timeline.svg of a report object (borrowed) to f (sim/report_svg.c). Returns 0
 * or -1 (write error). */
int report_svg(FILE *f, json_t *report);

#endif
