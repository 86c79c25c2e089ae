#include "ui.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
	const char *ext, *type;
} ui_types[] = {
	{".html", "text/html; charset=utf-8"},
	{".css", "text/css; charset=utf-8"},
	{".js", "text/javascript; charset=utf-8"},
	{".mjs", "text/javascript; charset=utf-8"},
	{".json", "application/json"},
	{".svg", "image/svg+xml"},
	{".png", "image/png"},
	{".ico", "image/x-icon"},
	{".txt", "text/plain; charset=utf-8"},
};

const char *ui_content_type(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 128 || name[0] == '.')
		return NULL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return NULL;
	}
	const char *dot = strrchr(name, '.');
	for (size_t i = 0; dot && i < sizeof(ui_types) / sizeof(ui_types[0]); i++)
		if (strcmp(dot, ui_types[i].ext) == 0)
			return ui_types[i].type;
	return NULL;
}

int ui_read(const char *dir, const char *name, char **out, size_t *len, char *err, size_t errlen)
{
	if (ui_content_type(name) == NULL) {
		snprintf(err, errlen, "the dashboard has no file '%.128s'", name);
		return -1;
	}
	char p[4352];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		if (e == ENOENT)
			snprintf(err, errlen, "the dashboard has no file '%s' (in --ui-dir %s)", name, dir);
		else
			snprintf(err, errlen, "the dashboard's %s cannot be read: %s", p, strerror(e));
		return e == ENOENT ? -1 : -2;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)UI_FILE_MAX) {
		close(fd);
		snprintf(err, errlen, "the dashboard's %s is not a regular file of at most %u MiB", p, UI_FILE_MAX >> 20);
		return -2;
	}
	size_t size = (size_t)st.st_size, got = 0;
	char *buf = malloc(size + 1);
	while (buf && got < size) {
		ssize_t r = read(fd, buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (buf == NULL || got != size) {
		free(buf);
		snprintf(err, errlen, "the dashboard's %s cannot be read: %s", p, buf ? "short read" : "out of memory");
		return -2;
	}
	buf[size] = '\0';
	*out = buf;
	*len = size;
	return 0;
}
