/* test_journal — sim/journal.c: records survive a reopen in order; a torn or
 * corrupt last record (a crash mid-write) is dropped and cut, and appends after
 * it are kept; compaction replaces the file atomically; a leftover .tmp of a
 * crashed compaction is ignored. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "tap.h"

struct seen {
	char recs[16][64];
	int n;
};

static int collect(void *ctx, const char *rec, size_t len)
{
	struct seen *s = ctx;
	if (s->n < 16)
		snprintf(s->recs[s->n], sizeof(s->recs[0]), "%.*s", (int)len, rec);
	s->n++;
	return 0;
}

static int refuse_second(void *ctx, const char *rec, size_t len)
{
	int *n = ctx;
	return ++*n == 2 ? -1 : 0;
}

static struct seen reopen(const char *path, struct journal **jout)
{
	struct seen s = {0};
	char err[256] = "";
	struct journal *j = NULL;
	if (journal_open(&j, path, collect, &s, err, sizeof(err)) < 0) {
		tap_diag("open: %s", err);
		s.n = -1;
	}
	if (jout)
		*jout = j;
	else
		journal_close(j);
	return s;
}

static void append_raw(const char *path, const char *bytes)
{
	int fd = open(path, O_WRONLY | O_APPEND);
	if (fd >= 0) {
		ssize_t w = write(fd, bytes, strlen(bytes));
		(void)w;
		close(fd);
	}
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int main(void)
{
	tap_plan(23);
	char dir[] = "/tmp/lattice-journal.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char path[256], tmp[300];
	snprintf(path, sizeof(path), "%s/journal", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	char err[256];

	is_int(journal_crc32("123456789", 9), 0xCBF43926u, "crc32 is zlib's (check value of \"123456789\")");

	struct journal *j;
	struct seen s = reopen(path, &j);
	is_int(s.n, 0, "a new journal replays nothing");
	ok(journal_append(j, "{\"a\":1}", 7, err, sizeof(err)) == 0, "append 1");
	ok(journal_append(j, "{\"a\":2}", 7, err, sizeof(err)) == 0, "append 2");
	ok(journal_append(j, "{\"a\":3}", 7, err, sizeof(err)) == 0 && journal_sync(j, err, sizeof(err)) == 0,
	   "append 3 and sync");
	ok(journal_append(j, "a\nb", 3, err, sizeof(err)) < 0, "a record with a newline is refused: %s", err);
	is_int(journal_records(j), 3, "3 records");
	journal_close(j);

	s = reopen(path, NULL);
	is_int(s.n, 3, "reopen replays the 3 records");
	ok(s.n == 3 && strcmp(s.recs[0], "{\"a\":1}") == 0 && strcmp(s.recs[2], "{\"a\":3}") == 0, "in order");

	/* A crash mid-write: the last line has no newline. */
	long long clean = file_size(path);
	append_raw(path, "1234abcd {\"a\":4");
	s = reopen(path, &j);
	is_int(s.n, 3, "a torn last record is not replayed");
	is_int(journal_torn_bytes(j), 15, "its bytes are reported");
	is_int(file_size(path), clean, "and cut from the file");
	ok(journal_append(j, "{\"a\":5}", 7, err, sizeof(err)) == 0 && journal_sync(j, err, sizeof(err)) == 0,
	   "append after the cut");
	journal_close(j);
	s = reopen(path, NULL);
	ok(s.n == 4 && strcmp(s.recs[3], "{\"a\":5}") == 0, "the record after a cut torn tail is replayed");

	/* A whole last line whose CRC does not match (a torn sector). */
	append_raw(path, "00000000 {\"a\":6}\n");
	s = reopen(path, &j);
	ok(s.n == 4 && journal_torn_bytes(j) == 17, "a last record with a wrong CRC is dropped");
	journal_close(j);

	/* Compaction. */
	s = reopen(path, &j);
	ok(journal_compact_begin(j, err, sizeof(err)) == 0 && journal_compact_add(j, "{\"live\":1}", 10, err, sizeof(err)) == 0 &&
		   journal_compact_add(j, "{\"live\":2}", 10, err, sizeof(err)) == 0 &&
		   journal_compact_commit(j, err, sizeof(err)) == 0,
	   "compact to 2 live records");
	is_int(journal_records(j), 2, "2 records after compaction");
	ok(access(tmp, F_OK) != 0, "no .tmp left behind");
	ok(journal_append(j, "{\"after\":1}", 11, err, sizeof(err)) == 0 && journal_sync(j, err, sizeof(err)) == 0,
	   "append after compaction");
	journal_close(j);
	s = reopen(path, NULL);
	ok(s.n == 3 && strcmp(s.recs[0], "{\"live\":1}") == 0 && strcmp(s.recs[2], "{\"after\":1}") == 0,
	   "reopen: the compacted records, then the appended one");

	/* A compaction that crashed before its rename leaves a .tmp: ignored. */
	FILE *f = fopen(tmp, "w");
	if (f) {
		fputs("cbf43926 junk\n", f);
		fclose(f);
	}
	s = reopen(path, NULL);
	ok(s.n == 3 && access(tmp, F_OK) != 0, "a leftover .tmp is removed and not replayed");

	/* A record the owner cannot apply fails the open, naming it. */
	int count = 0;
	struct journal *j2 = NULL;
	ok(journal_open(&j2, path, refuse_second, &count, err, sizeof(err)) < 0 && strstr(err, "record 2"),
	   "a record the owner refuses fails the open: %s", err);

	/* Many records: the bound is the owner's (compaction), the file only grows. */
	s = reopen(path, &j);
	for (int i = 0; i < 5000; i++) {
		char rec[32];
		int n = snprintf(rec, sizeof(rec), "{\"i\":%d}", i);
		journal_append(j, rec, (size_t)n, err, sizeof(err));
	}
	journal_sync(j, err, sizeof(err));
	journal_close(j);
	s = reopen(path, NULL);
	is_int(s.n, 5003, "5,000 more records replay");

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
