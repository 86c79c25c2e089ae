/* chaosrep — the latest chaos run's report for the API (and so the
 * dashboard): `lattice-sim run --out DIR/NAME` writes report.json and
 * timeline.svg (docs/chaos.md); latticed --chaos-reports DIR serves the newest
 * of DIR/ * / (by report.json's modification time; DIR itself when it holds
 * one). Files only: no state, any thread. */
#ifndef LATTICE_CHAOSREP_H
#define LATTICE_CHAOSREP_H

#include <stddef.h>

#define CHAOSREP_MAX (16u << 20) /* a larger file is refused */

/* Reads NAME ("report.json" or "timeline.svg") of the newest run under dir
 * (borrowed) into *out (malloc'd, NUL-terminated, owned by the caller) and its
 * run's directory name into run (at least 256 bytes). Returns 0; -1 when there
 * is none (err says so); -2 when it cannot be read (err says why). */
int chaosrep_read(const char *dir, const char *name, char **out, size_t *len, char *run, char *err, size_t errlen);

#endif
