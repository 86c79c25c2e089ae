/* ctl_table — aligned text tables, as kubectl prints them: a header row of
 * upper-case names, columns padded to their widest cell and separated by
 * three spaces, no trailing spaces.
 *
 * Cells are copied and cleaned as they are added: control characters and bytes
 * that are not UTF-8 become '?', so a value from the server can neither break
 * a row in two nor send escape sequences to the terminal. Widths count what a
 * terminal shows (East Asian wide characters are two columns, combining marks
 * none), without depending on the locale. An empty or NULL cell shows
 * "<none>". */
#ifndef LATTICE_CTL_TABLE_H
#define LATTICE_CTL_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct ctl_table;

/* A table of ncols columns whose first row is headers[0..ncols). */
struct ctl_table *ctl_table_new(size_t ncols, const char *const *headers);
/* Adds one cell to the current row (a row is done after ncols cells). */
void ctl_table_cell(struct ctl_table *t, const char *s);
__attribute__((format(printf, 2, 3))) void ctl_table_cellf(struct ctl_table *t, const char *fmt, ...);
/* Data rows so far (not counting the header). */
size_t ctl_table_rows(const struct ctl_table *t);
/* Prints every complete row; without the header row when headers is false
 * (the widths then come from the data alone). */
void ctl_table_print(const struct ctl_table *t, FILE *out, bool headers);
void ctl_table_free(struct ctl_table *t);

/* One row of a table printed as it goes (events --watch): each cell padded
 * to widths[i] (a longer one pushes the rest right), the last not padded. */
void ctl_table_stream_row(FILE *out, const size_t *widths, const char *const *cells, size_t n);

/* The cleaned copy of s (see the top), malloc'd. */
char *ctl_clean(const char *s);
/* Terminal columns of a cleaned string. */
size_t ctl_width(const char *s);

#endif
