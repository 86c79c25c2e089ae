/* test_snapz — snapshots as one zstd frame: a real model's snapshot text packs
 * (into a buffer and, streamed, into a file) and unpacks to the same bytes;
 * unpacking refuses, with a message, a frame that is damaged, cut short, has
 * bytes after it, does not record its size, or claims more than SNAPZ_MAX_TEXT;
 * uncompressed text is told apart from a frame. */
#include "model_fixture.h"
#include "snapz.h"
#include "tap.h"

#include <raft.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

/* snapz_unpack of buf: the rc, and the message in err. */
static enum snapz_rc unpack(const void *buf, size_t len, char *err, size_t errlen)
{
	char *text = NULL;
	size_t n = 0;
	enum snapz_rc rc = snapz_unpack(buf, len, &text, &n, err, errlen);
	free(text);
	return rc;
}

int main(void)
{
	tap_plan(20);
	struct model m;
	model_init(&m);
	fill_model(&m, 300, 2000, "'cpu_required':1,'memory_required_mb':1");
	size_t len = 0;
	char *text = model_snapshot_dump(&m, 4242, &len);
	ok(text != NULL && len > 100000, "a snapshot of 300 nodes and 2,000 actors: %zu bytes of text", len);
	ok(!snapz_is_packed(text, len), "its text is not taken for a frame");

	size_t plen = 0;
	char *packed = snapz_pack(text, len, &plen);
	ok(packed != NULL && snapz_is_packed(packed, plen), "snapz_pack makes a frame");
	ok(plen * 8 < len, "... at least 8x smaller (%zu bytes)", plen);
	char *out = NULL, err[256] = "";
	size_t olen = 0;
	is_int(snapz_unpack(packed, plen, &out, &olen, err, sizeof(err)), SNAPZ_OK, "it unpacks %s", err);
	ok(olen == len && memcmp(out, text, len) == 0, "... to the same text, byte for byte");
	free(out);

	/* Streamed into a file, as the snapshot child writes it. */
	char path[] = "/tmp/test_snapz.XXXXXX";
	int fd = mkstemp(path);
	is_int(snapz_write(fd, text, len), 0, "snapz_write streams a frame into a file");
	off_t fsize = lseek(fd, 0, SEEK_END);
	char *file = malloc((size_t)fsize);
	ok(file != NULL && pread(fd, file, (size_t)fsize, 0) == fsize, "... of %lld bytes", (long long)fsize);
	close(fd);
	unlink(path);
	out = NULL;
	is_int(snapz_unpack(file, (size_t)fsize, &out, &olen, err, sizeof(err)), SNAPZ_OK, "which unpacks");
	ok(olen == len && out && memcmp(out, text, len) == 0, "... to the same text");
	free(out);
	free(file);

	/* Refusals. */
	char *bad = malloc(plen + 8);
	memcpy(bad, packed, plen);
	bad[plen / 2] ^= 0x5a;
	is_int(unpack(bad, plen, err, sizeof(err)), SNAPZ_MALFORMED, "a flipped byte in the middle: refused (%s)", err);
	memcpy(bad, packed, plen);
	is_int(unpack(bad, plen - 1, err, sizeof(err)), SNAPZ_MALFORMED, "cut by one byte: refused (%s)", err);
	ok(strstr(err, "cut short") != NULL || strstr(err, "damaged") != NULL, "... saying so");
	memcpy(bad + plen, "trailing", 8);
	is_int(unpack(bad, plen + 8, err, sizeof(err)), SNAPZ_MALFORMED, "bytes after the frame: refused (%s)", err);
	is_int(unpack(text, len, err, sizeof(err)), SNAPZ_MALFORMED, "text is not a frame: refused (%s)", err);
	free(bad);

	/* A frame without its content size (a plain streaming compressor's). */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	char nosize[4096];
	ZSTD_outBuffer ob = {.dst = nosize, .size = sizeof(nosize), .pos = 0};
	ZSTD_inBuffer ib = {.src = "{\"v\":2}", .size = 7, .pos = 0};
	size_t left = ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end);
	ok(left == 0 && ZSTD_getFrameContentSize(nosize, ob.pos) == ZSTD_CONTENTSIZE_UNKNOWN,
	   "a frame without its content size");
	is_int(unpack(nosize, ob.pos, err, sizeof(err)), SNAPZ_MALFORMED, "... is refused (%s)", err);
	ZSTD_freeCCtx(c);

	/* A frame claiming more than SNAPZ_MAX_TEXT: refused before allocating. A
	 * frame header alone is enough to claim it (single-segment off, 8-byte
	 * content size): magic, descriptor 0xC0, window byte, 8 bytes of size. */
	unsigned char huge[32] = {0x28, 0xB5, 0x2F, 0xFD, 0xC0, 0x58};
	uint64_t claim = (uint64_t)SNAPZ_MAX_TEXT + 1;
	for (int i = 0; i < 8; i++)
		huge[6 + i] = (unsigned char)(claim >> (8 * i));
	/* an empty raw last block */
	huge[14] = 0x01;
	huge[15] = 0x00;
	huge[16] = 0x00;
	unsigned long long claimed = ZSTD_getFrameContentSize(huge, 17);
	ok(claimed == claim, "a frame header claiming %llu bytes", claimed);
	is_int(unpack(huge, 17, err, sizeof(err)), SNAPZ_MALFORMED, "... is refused (%s)", err);
	ok(strstr(err, "claims") != NULL, "... naming the claim");

	raft_free(packed);
	raft_free(text);
	model_release(&m);
	return tap_done();
}
