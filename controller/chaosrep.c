/* chaosrep — see chaosrep.h. */
#include "chaosrep.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* mtime of DIR/report.json, or -1. */
static int report_mtime(const char *dir, struct timespec *t)
{
	char p[4096];
	struct stat st;
	if (snprintf(p, sizeof(p), "%s/report.json", dir) >= (int)sizeof(p) || stat(p, &st) < 0 || !S_ISREG(st.st_mode))
		return -1;
	*t = st.st_mtim;
	return 0;
}

static int newer(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec != b->tv_sec ? a->tv_sec > b->tv_sec : a->tv_nsec > b->tv_nsec;
}

int chaosrep_read(const char *dir, const char *name, char **out, size_t *len, char *run, char *err, size_t errlen)
{
	*out = NULL;
	*len = 0;
	char best[4096] = "";
	struct timespec bt = {0}, t;
	if (report_mtime(dir, &t) == 0) {
		snprintf(best, sizeof(best), "%s", dir);
		bt = t;
	}
	DIR *d = opendir(dir);
	if (!d && !best[0]) {
		snprintf(err, errlen, "no chaos report: %s: %s", dir, strerror(errno));
		return -1;
	}
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sub[4096];
		if (snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) >= (int)sizeof(sub))
			continue;
		if (report_mtime(sub, &t) == 0 && (!best[0] || newer(&t, &bt))) {
			snprintf(best, sizeof(best), "%s", sub);
			bt = t;
		}
	}
	if (d)
		closedir(d);
	if (!best[0]) {
		snprintf(err, errlen, "no chaos report under %s (lattice-sim run --out %s/NAME writes one)", dir, dir);
		return -1;
	}
	const char *slash = strrchr(best, '/');
	snprintf(run, 256, "%s", slash && slash[1] ? slash + 1 : best);
	char p[4200];
	snprintf(p, sizeof(p), "%s/%s", best, name);
	FILE *f = fopen(p, "rb");
	if (!f) {
		snprintf(err, errlen, "chaos report %s: %s: %s", run, name, strerror(errno));
		return errno == ENOENT ? -1 : -2;
	}
	char *buf = NULL;
	size_t n = 0, cap = 0;
	for (;;) {
		if (n + 65536 + 1 > cap) {
			size_t nc = cap ? cap * 2 : 131072;
			char *nb = realloc(buf, nc);
			if (!nb)
				break;
			buf = nb;
			cap = nc;
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
		if (r == 0 || n > CHAOSREP_MAX)
			break;
	}
	int bad = ferror(f) || !buf || n > CHAOSREP_MAX;
	fclose(f);
	if (bad) {
		free(buf);
		snprintf(err, errlen, "chaos report %s: %s: %s", run, name,
			 n > CHAOSREP_MAX ? "larger than 16 MiB" : "read error");
		return -2;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}
