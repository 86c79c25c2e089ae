#include "snapz.h"

#include <errno.h>
#include <raft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

/* Level 1: the ratio of higher levels is within ~10% on this JSON, at several
 * times the CPU. */
#define SNAPZ_LEVEL 1
#define SNAPZ_CHUNK (1u << 20)

bool snapz_is_packed(const void *buf, size_t len)
{
	static const unsigned char magic[4] = {0x28, 0xB5, 0x2F, 0xFD}; /* ZSTD_MAGICNUMBER, little-endian */
	return len >= sizeof(magic) && memcmp(buf, magic, sizeof(magic)) == 0;
}

static ZSTD_CCtx *cctx_new(size_t len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	if (c == NULL)
		return NULL;
	if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, SNAPZ_LEVEL)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1)) ||
	    ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, len))) {
		ZSTD_freeCCtx(c);
		return NULL;
	}
	return c;
}

static bool write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

int snapz_write(int fd, const void *text, size_t len)
{
	ZSTD_CCtx *c = cctx_new(len);
	char *chunk = malloc(SNAPZ_CHUNK);
	int rc = -1;
	if (c == NULL || chunk == NULL) {
		errno = ENOMEM;
		goto out;
	}
	ZSTD_inBuffer in = {.src = text, .size = len, .pos = 0};
	for (;;) {
		ZSTD_outBuffer out = {.dst = chunk, .size = SNAPZ_CHUNK, .pos = 0};
		size_t left = ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
		if (ZSTD_isError(left)) {
			errno = EINVAL;
			goto out;
		}
		if (!write_all(fd, chunk, out.pos))
			goto out;
		if (left == 0)
			break;
	}
	rc = 0;
out:
	free(chunk);
	ZSTD_freeCCtx(c);
	return rc;
}

void *snapz_pack(const void *text, size_t len, size_t *out_len)
{
	ZSTD_CCtx *c = cctx_new(len);
	size_t cap = ZSTD_compressBound(len);
	void *out = c ? raft_malloc(cap) : NULL;
	size_t n = out ? ZSTD_compress2(c, out, cap, text, len) : 0;
	ZSTD_freeCCtx(c);
	if (out == NULL || ZSTD_isError(n)) {
		raft_free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

enum snapz_rc snapz_unpack(const void *buf, size_t len, char **text, size_t *text_len, char *err, size_t errlen)
{
	*text = NULL;
	*text_len = 0;
	if (!snapz_is_packed(buf, len)) {
		snprintf(err, errlen, "not a zstd frame");
		return SNAPZ_MALFORMED;
	}
	size_t frame = ZSTD_findFrameCompressedSize(buf, len);
	if (ZSTD_isError(frame)) {
		snprintf(err, errlen, "the zstd frame is damaged or cut short (%s)", ZSTD_getErrorName(frame));
		return SNAPZ_MALFORMED;
	}
	if (frame != len) {
		snprintf(err, errlen, "%zu bytes follow the zstd frame", len - frame);
		return SNAPZ_MALFORMED;
	}
	unsigned long long size = ZSTD_getFrameContentSize(buf, len);
	if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN) {
		snprintf(err, errlen, "the zstd frame does not record its content size");
		return SNAPZ_MALFORMED;
	}
	if (size == 0 || size > SNAPZ_MAX_TEXT) {
		snprintf(err, errlen, "the zstd frame claims %llu bytes of text (at most %zu are read)", size,
			 SNAPZ_MAX_TEXT);
		return SNAPZ_MALFORMED;
	}
	char *out = malloc((size_t)size);
	if (out == NULL) {
		snprintf(err, errlen, "out of memory for %llu bytes of snapshot text", size);
		return SNAPZ_NOMEM;
	}
	size_t n = ZSTD_decompress(out, (size_t)size, buf, len);
	if (ZSTD_isError(n) || n != size) {
		snprintf(err, errlen, "the zstd frame does not decompress (%s)",
			 ZSTD_isError(n) ? ZSTD_getErrorName(n) : "shorter than it claims");
		free(out);
		return SNAPZ_MALFORMED;
	}
	*text = out;
	*text_len = n;
	return SNAPZ_OK;
}
