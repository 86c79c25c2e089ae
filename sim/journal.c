#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct journal {
	char *path;
	char *tmp_path;
	int fd;
	int tmp_fd; /* -1 outside a compaction */
	uint64_t size;
	uint64_t records;
	uint64_t tmp_records;
	uint64_t torn;
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	int saved = errno;
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	errno = saved;
	return -1;
}

uint32_t journal_crc32(const void *data, size_t len)
{
	static uint32_t table[256];
	static int ready; /* benign race: every thread computes the same table */
	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = 1;
	}
	const unsigned char *p = data;
	uint32_t c = 0xFFFFFFFFu;
	for (size_t i = 0; i < len; i++)
		c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
	return c ^ 0xFFFFFFFFu;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* The directory of path must be synced for a create or rename to survive. */
static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int parse_hex8(const char *p, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 8; i++) {
		char c = p[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		v = (v << 4) | (uint32_t)d;
	}
	*out = v;
	return 0;
}

static int read_file(int fd, char **buf, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -1;
	size_t cap = (size_t)st.st_size + 1, n = 0;
	char *b = malloc(cap);
	if (!b)
		return -1;
	for (;;) {
		if (n + 1 >= cap) {
			char *nb = realloc(b, cap * 2);
			if (!nb) {
				free(b);
				return -1;
			}
			b = nb;
			cap *= 2;
		}
		ssize_t r = pread(fd, b + n, cap - 1 - n, (off_t)n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			free(b);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

int journal_open(struct journal **out, const char *path, journal_replay_fn fn, void *ctx, char *err,
		 size_t errlen)
{
	struct journal *j = calloc(1, sizeof(*j));
	if (!j)
		return fail(err, errlen, "journal %s: out of memory", path);
	j->fd = -1;
	j->tmp_fd = -1;
	j->path = strdup(path);
	size_t pl = strlen(path);
	j->tmp_path = malloc(pl + 5);
	if (!j->path || !j->tmp_path) {
		journal_close(j);
		return fail(err, errlen, "journal %s: out of memory", path);
	}
	memcpy(j->tmp_path, path, pl);
	memcpy(j->tmp_path + pl, ".tmp", 5);
	unlink(j->tmp_path); /* a compaction the last process did not finish */

	int existed = access(path, F_OK) == 0;
	j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->fd < 0) {
		fail(err, errlen, "journal %s: cannot open: %s", path, strerror(errno));
		journal_close(j);
		return -1;
	}
	if (!existed && sync_dir(path) < 0) {
		fail(err, errlen, "journal %s: cannot sync its directory: %s", path, strerror(errno));
		journal_close(j);
		return -1;
	}
	char *buf;
	size_t len;
	if (read_file(j->fd, &buf, &len) < 0) {
		fail(err, errlen, "journal %s: cannot read: %s", path, strerror(errno));
		journal_close(j);
		return -1;
	}
	size_t pos = 0;
	uint64_t line = 0;
	while (pos < len) {
		char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl)
			break; /* torn: the write of the last line did not finish */
		size_t ll = (size_t)(nl - (buf + pos));
		uint32_t crc;
		if (ll < 9 || buf[pos + 8] != ' ' || parse_hex8(buf + pos, &crc) < 0)
			break;
		const char *rec = buf + pos + 9;
		size_t rl = ll - 9;
		if (journal_crc32(rec, rl) != crc)
			break;
		*nl = '\0';
		line++;
		if (fn && fn(ctx, rec, rl) != 0) {
			free(buf);
			fail(err, errlen, "journal %s: record %llu cannot be applied", path,
			     (unsigned long long)line);
			journal_close(j);
			return -1;
		}
		j->records++;
		pos += ll + 1;
	}
	free(buf);
	if (pos < len) {
		j->torn = len - pos;
		if (ftruncate(j->fd, (off_t)pos) < 0 || fsync(j->fd) < 0) {
			fail(err, errlen, "journal %s: cannot cut its torn tail: %s", path, strerror(errno));
			journal_close(j);
			return -1;
		}
	}
	j->size = pos;
	*out = j;
	return 0;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->tmp_fd >= 0)
		journal_compact_abort(j);
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j->tmp_path);
	free(j);
}

static int write_record(int fd, const char *rec, size_t len)
{
	char head[10];
	snprintf(head, sizeof(head), "%08x ", journal_crc32(rec, len));
	char small[4096];
	if (len + 10 <= sizeof(small)) { /* one write: fewer torn lines */
		memcpy(small, head, 9);
		memcpy(small + 9, rec, len);
		small[9 + len] = '\n';
		return write_all(fd, small, len + 10);
	}
	if (write_all(fd, head, 9) < 0 || write_all(fd, rec, len) < 0)
		return -1;
	return write_all(fd, "\n", 1);
}

int journal_append(struct journal *j, const char *rec, size_t len, char *err, size_t errlen)
{
	if (memchr(rec, '\n', len))
		return fail(err, errlen, "journal %s: a record cannot hold a newline", j->path);
	if (write_record(j->fd, rec, len) < 0) {
		fail(err, errlen, "journal %s: cannot append: %s", j->path, strerror(errno));
		/* A half-written line would hide every later record from replay. */
		if (ftruncate(j->fd, (off_t)j->size) < 0) {
			/* nothing more to do: the next open cuts it */
		}
		return -1;
	}
	j->size += len + 10;
	j->records++;
	return 0;
}

int journal_sync(struct journal *j, char *err, size_t errlen)
{
	if (fdatasync(j->fd) < 0)
		return fail(err, errlen, "journal %s: cannot sync: %s", j->path, strerror(errno));
	return 0;
}

int journal_compact_begin(struct journal *j, char *err, size_t errlen)
{
	if (j->tmp_fd >= 0)
		journal_compact_abort(j);
	j->tmp_fd = open(j->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (j->tmp_fd < 0)
		return fail(err, errlen, "journal %s: cannot create: %s", j->tmp_path, strerror(errno));
	j->tmp_records = 0;
	return 0;
}

int journal_compact_add(struct journal *j, const char *rec, size_t len, char *err, size_t errlen)
{
	if (j->tmp_fd < 0)
		return fail(err, errlen, "journal %s: no compaction in progress", j->path);
	if (memchr(rec, '\n', len))
		return fail(err, errlen, "journal %s: a record cannot hold a newline", j->path);
	if (write_record(j->tmp_fd, rec, len) < 0)
		return fail(err, errlen, "journal %s: cannot write: %s", j->tmp_path, strerror(errno));
	j->tmp_records++;
	return 0;
}

int journal_compact_commit(struct journal *j, char *err, size_t errlen)
{
	if (j->tmp_fd < 0)
		return fail(err, errlen, "journal %s: no compaction in progress", j->path);
	if (fsync(j->tmp_fd) < 0) {
		fail(err, errlen, "journal %s: cannot sync: %s", j->tmp_path, strerror(errno));
		journal_compact_abort(j);
		return -1;
	}
	if (rename(j->tmp_path, j->path) < 0) {
		fail(err, errlen, "journal %s: cannot rename %s over it: %s", j->path, j->tmp_path,
		     strerror(errno));
		journal_compact_abort(j);
		return -1;
	}
	/* The old fd names the unlinked file; append to the new one from now on. */
	close(j->fd);
	close(j->tmp_fd);
	j->tmp_fd = -1;
	j->fd = open(j->path, O_RDWR | O_APPEND | O_CLOEXEC);
	if (j->fd < 0)
		return fail(err, errlen, "journal %s: cannot reopen: %s", j->path, strerror(errno));
	if (sync_dir(j->path) < 0)
		return fail(err, errlen, "journal %s: cannot sync its directory: %s", j->path, strerror(errno));
	struct stat st;
	j->size = fstat(j->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	j->records = j->tmp_records;
	return 0;
}

void journal_compact_abort(struct journal *j)
{
	if (j->tmp_fd < 0)
		return;
	close(j->tmp_fd);
	j->tmp_fd = -1;
	unlink(j->tmp_path);
}

uint64_t journal_records(const struct journal *j)
{
	return j->records;
}

uint64_t journal_torn_bytes(const struct journal *j)
{
	return j->torn;
}

int journal_make_dir(const char *dir)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(dir, 0700) == 0 || errno == EEXIST) {
		struct stat st;
		if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
			return 0;
		errno = ENOTDIR;
	}
	return -1;
}
