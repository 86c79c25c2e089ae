/* store_spool — the projection writer's overflow file. See store_spool.h. */
#include "store_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "digest.h"
#include "proj.h"

enum {
	SPOOL_HEAD = 8,                  /* length + checksum */
	SPOOL_NULL = -1,                 /* as a u32: 0xffffffff */
	SPOOL_MAX_PARAMS = 64,           /* more than any kind has (proj.h) */
};
#define SPOOL_RECORD_MAX ((uint64_t)UINT32_MAX - 1)

int spool_init(struct spool *sp, const char *path, char *err, size_t errlen)
{
	memset(sp, 0, sizeof(*sp));
	sp->fd = -1;
	sp->path = strdup(path);
	if (!sp->path) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the old projection spool %s: %s", path, strerror(errno));
		free(sp->path);
		sp->path = NULL;
		return -1;
	}
	return 0;
}

void spool_remove(struct spool *sp)
{
	if (sp->fd >= 0) {
		close(sp->fd);
		sp->fd = -1;
	}
	if (sp->path)
		(void)unlink(sp->path);
	sp->end = sp->rd = 0;
}

void spool_release(struct spool *sp)
{
	spool_remove(sp);
	free(sp->path);
	free(sp->wbuf);
	free(sp->rbuf);
	memset(sp, 0, sizeof(*sp));
	sp->fd = -1;
}

static void put32(char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (char)(v >> (8 * i));
}

static uint32_t get32(const char *p)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v |= (uint32_t)(unsigned char)p[i] << (8 * i);
	return v;
}

static bool grow(char **buf, size_t *cap, uint64_t need)
{
	if (need <= *cap)
		return true;
	if (need > SIZE_MAX / 2)
		return false;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	char *p = realloc(*buf, n);
	if (!p)
		return false;
	*buf = p;
	*cap = n;
	return true;
}

size_t spool_encode(struct spool *sp, const struct proj_batch *b, char *err, size_t errlen)
{
	uint64_t len = 12; /* index + count */
	for (const struct proj_change *c = b->head; c; c = c->next) {
		len += 4;
		for (int i = 0; i < c->nparams; i++)
			len += 4 + (c->params[i] ? strlen(c->params[i]) : 0);
	}
	if (len > SPOOL_RECORD_MAX - SPOOL_HEAD) {
		snprintf(err, errlen,
			 "the batch of entry %" PRIu64 " (%" PRIu64 " bytes) is too large for one spool record",
			 b->index, len);
		return 0;
	}
	if (!grow(&sp->wbuf, &sp->wcap, SPOOL_HEAD + len)) {
		snprintf(err, errlen, "out of memory encoding a %" PRIu64 "-byte spool record", len);
		return 0;
	}
	char *p = sp->wbuf + SPOOL_HEAD;
	put32(p, (uint32_t)b->index);
	put32(p + 4, (uint32_t)(b->index >> 32));
	put32(p + 8, (uint32_t)b->n);
	p += 12;
	for (const struct proj_change *c = b->head; c; c = c->next) {
		p[0] = (char)c->kind;
		p[1] = (char)(c->fresh ? 1 : 0);
		p[2] = (char)(c->nparams & 0xff);
		p[3] = (char)(c->nparams >> 8);
		p += 4;
		for (int i = 0; i < c->nparams; i++) {
			if (!c->params[i]) {
				put32(p, (uint32_t)SPOOL_NULL);
				p += 4;
				continue;
			}
			size_t n = strlen(c->params[i]);
			put32(p, (uint32_t)n);
			memcpy(p + 4, c->params[i], n);
			p += 4 + n;
		}
	}
	put32(sp->wbuf, (uint32_t)len);
	put32(sp->wbuf + 4, digest_crc32c(0, sp->wbuf + SPOOL_HEAD, (size_t)len));
	return (size_t)(SPOOL_HEAD + len);
}

int spool_append(struct spool *sp, char *err, size_t errlen)
{
	size_t len = SPOOL_HEAD + get32(sp->wbuf);
	if (sp->fd < 0) {
		sp->fd = open(sp->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (sp->fd < 0) {
			snprintf(err, errlen, "cannot create the projection spool %s: %s", sp->path, strerror(errno));
			return -1;
		}
		sp->end = sp->rd = 0;
	}
	/* At sp->end, not O_APPEND: a record cut short by a full disk is then
	 * simply overwritten by the next one. */
	for (size_t done = 0; done < len;) {
		ssize_t n = pwrite(sp->fd, sp->wbuf + done, len - done, (off_t)(sp->end + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot write the projection spool %s at offset %" PRIu64 ": %s", sp->path,
				 sp->end + done, n < 0 ? strerror(errno) : "wrote nothing");
			return -1;
		}
		done += (size_t)n;
	}
	sp->end += len;
	/* The encoding buffer follows the largest record; a rebuild's must not stay. */
	if (sp->wcap > (16u << 20)) {
		free(sp->wbuf);
		sp->wbuf = NULL;
		sp->wcap = 0;
	}
	return 0;
}

static int read_at(struct spool *sp, char *buf, size_t len, uint64_t off, char *err, size_t errlen)
{
	for (size_t done = 0; done < len;) {
		ssize_t n = pread(sp->fd, buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read the projection spool %s at offset %" PRIu64 ": %s", sp->path,
				 off + done, n < 0 ? strerror(errno) : "unexpected end of file");
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Decodes a checked payload into a new batch; NULL when its fields do not add up. */
static struct proj_batch *decode(const char *p, size_t len)
{
	if (len < 12)
		return NULL;
	uint64_t index = get32(p) | (uint64_t)get32(p + 4) << 32;
	uint32_t n = get32(p + 8);
	const char *at = p + 12, *end = p + len;
	struct proj_batch *b = proj_batch_new(index);
	if (!b)
		return NULL;
	const char *params[SPOOL_MAX_PARAMS];
	size_t lens[SPOOL_MAX_PARAMS];
	for (uint32_t k = 0; k < n; k++) {
		if (end - at < 4)
			goto bad;
		int kind = (unsigned char)at[0], np = (unsigned char)at[2] | (unsigned char)at[3] << 8;
		bool fresh = at[1] != 0;
		at += 4;
		if (np > SPOOL_MAX_PARAMS || kind >= PROJ_KIND_COUNT)
			goto bad;
		for (int i = 0; i < np; i++) {
			if (end - at < 4)
				goto bad;
			uint32_t l = get32(at);
			at += 4;
			if (l == (uint32_t)SPOOL_NULL) {
				params[i] = NULL;
				lens[i] = 0;
				continue;
			}
			if ((uint64_t)(end - at) < l)
				goto bad;
			params[i] = at;
			lens[i] = l;
			at += l;
		}
		proj_raw(b, (enum proj_kind)kind, fresh, np, params, lens);
		if (b->failed)
			goto bad;
	}
	if (at != end)
		goto bad;
	return b;
bad:
	proj_batch_free(b);
	return NULL;
}

int spool_read(struct spool *sp, uint64_t limit, struct proj_batch **out, char *err, size_t errlen)
{
	char head[SPOOL_HEAD];
	if (sp->fd < 0 || sp->rd + SPOOL_HEAD > limit) {
		snprintf(err, errlen, "no record at offset %" PRIu64 " of the projection spool %s", sp->rd,
			 sp->path ? sp->path : "");
		return -1;
	}
	if (read_at(sp, head, sizeof(head), sp->rd, err, errlen) != 0)
		return -1;
	uint32_t len = get32(head), crc = get32(head + 4);
	if (sp->rd + SPOOL_HEAD + len > limit) {
		snprintf(err, errlen, "the record at offset %" PRIu64 " of the projection spool %s runs past its end",
			 sp->rd, sp->path);
		return -1;
	}
	if (!grow(&sp->rbuf, &sp->rcap, len ? len : 1)) {
		snprintf(err, errlen, "out of memory reading a %" PRIu32 "-byte spool record", len);
		return -1;
	}
	if (read_at(sp, sp->rbuf, len, sp->rd + SPOOL_HEAD, err, errlen) != 0)
		return -1;
	if (digest_crc32c(0, sp->rbuf, len) != crc) {
		snprintf(err, errlen,
			 "the record at offset %" PRIu64 " of the projection spool %s is corrupt (checksum mismatch)",
			 sp->rd, sp->path);
		return -1;
	}
	struct proj_batch *b = decode(sp->rbuf, len);
	if (!b) {
		snprintf(err, errlen,
			 "the record at offset %" PRIu64 " of the projection spool %s does not decode (or out of memory)",
			 sp->rd, sp->path);
		return -1;
	}
	/* The reader's buffer follows the largest record; a rebuild's must not stay. */
	if (sp->rcap > (16u << 20)) {
		free(sp->rbuf);
		sp->rbuf = NULL;
		sp->rcap = 0;
	}
	sp->rd += SPOOL_HEAD + len;
	*out = b;
	return 0;
}
