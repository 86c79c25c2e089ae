/* ui — the dashboard's files (docs/ui.md): latticed serves the files of
 * --ui-dir (installed under $(pkgdatadir)/ui) at /ui/. A flat directory of
 * plain HTML, CSS and JavaScript; only names of [A-Za-z0-9._-] with a known
 * extension are served. Files only: no state, any thread. */
#ifndef LATTICE_UI_H
#define LATTICE_UI_H

#include <stddef.h>

#define UI_FILE_MAX (8u << 20) /* a larger file is refused */

/* The Content-Type for a file name by its extension; NULL when not served. */
const char *ui_content_type(const char *name);

/* Reads dir/name into *out (malloc'd, NUL-terminated, owned by the caller),
 * its length into *len. Returns 0; -1 when there is no such file (or its
 * name is not served); -2 when it cannot be read; err says which and why. */
int ui_read(const char *dir, const char *name, char **out, size_t *len, char *err, size_t errlen);

#endif
