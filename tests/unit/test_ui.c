/* test_ui — controller/ui.c: which names the dashboard serves, with which
 * type; reading a file whole (NUL bytes kept), a missing one (-1), a name it
 * does not serve (-1, not read), a directory (-2). */
#include "tap.h"
#include "ui.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
	tap_plan(12);
	ok(ui_content_type("index.html") && strcmp(ui_content_type("index.html"), "text/html; charset=utf-8") == 0,
	   "index.html is HTML");
	ok(ui_content_type("app.js") && strcmp(ui_content_type("app.js"), "text/javascript; charset=utf-8") == 0,
	   "app.js is JavaScript");
	ok(ui_content_type("logo.svg") && strcmp(ui_content_type("logo.svg"), "image/svg+xml") == 0, "an SVG");
	ok(ui_content_type("tool.exe") == NULL && ui_content_type("Makefile") == NULL, "unknown types are not served");
	ok(ui_content_type(".hidden.js") == NULL && ui_content_type("a/b.js") == NULL && ui_content_type("") == NULL,
	   "no hidden file, no path, no empty name");
	ok(ui_content_type("a b.js") == NULL && ui_content_type("x%2e.js") == NULL, "no spaces or escapes");

	char dir[] = "/tmp/test_ui.XXXXXX", path[64], err[256];
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof(path), "%s/blob.png", dir);
	FILE *f = fopen(path, "wb");
	fwrite("\x89PNG\0\0\x01", 1, 7, f);
	fclose(f);
	char *buf = NULL;
	size_t len = 0;
	ok(ui_read(dir, "blob.png", &buf, &len, err, sizeof(err)) == 0 && len == 7 && memcmp(buf, "\x89PNG\0\0\x01", 7) == 0,
	   "a binary file is read whole");
	ok(buf && buf[7] == '\0', "and NUL-terminated");
	free(buf);
	buf = NULL;
	ok(ui_read(dir, "nope.css", &buf, &len, err, sizeof(err)) == -1 && buf == NULL && strstr(err, "nope.css"),
	   "a missing file: -1, named in the message");
	ok(ui_read(dir, "../etc.js", &buf, &len, err, sizeof(err)) == -1, "a name outside the directory: -1");
	snprintf(path, sizeof(path), "%s/sub.js", dir);
	mkdir(path, 0700);
	ok(ui_read(dir, "sub.js", &buf, &len, err, sizeof(err)) == -2, "a directory named like a file: -2");
	ok(buf == NULL, "nothing returned on failure");
	rmdir(path);
	snprintf(path, sizeof(path), "%s/blob.png", dir);
	unlink(path);
	rmdir(dir);
	return tap_done();
}
