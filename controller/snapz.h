/* snapz — a snapshot's bytes on disk and on the wire: the model's text
 * (model_snapshot_dump) in one zstd frame. JSON of tens of thousands of similar
 * objects shrinks ~16x at level 1 (42 MB -> 2.7 MB at 100,000 actors, in ~90 ms
 * of the snapshot child's CPU), so raft writes, fsyncs and sends (InstallSnapshot)
 * a fraction of it: written uncompressed, one 42 MB snapshot per replica kept
 * the disk busy for ~650 ms, and every log append waited behind it.
 *
 * The frame records its content size and a checksum; unpacking refuses a frame
 * without them, a damaged or cut one, and bytes after it. A snapshot that is not
 * a zstd frame is text from a build before this one and is read as it is
 * (docs/snapshots.md). */
#ifndef LATTICE_SNAPZ_H
#define LATTICE_SNAPZ_H

#include <stdbool.h>
#include <stddef.h>

/* The largest text unpacking accepts: a frame claiming more is refused before
 * anything is allocated. */
#define SNAPZ_MAX_TEXT ((size_t)1 << 34) /* 16 GiB */

enum snapz_rc {
	SNAPZ_OK = 0,
	SNAPZ_MALFORMED, /* not a frame this build reads; err says why */
	SNAPZ_NOMEM,
};

/* Whether buf starts like a zstd frame (else: uncompressed snapshot text). */
bool snapz_is_packed(const void *buf, size_t len);
/* Compresses text[0..len) into fd as one frame, streaming (the snapshot child).
 * Returns 0, or -1 (errno set for a write error). */
int snapz_write(int fd, const void *text, size_t len);
/* Compresses text[0..len) into a new raft_malloc'd buffer (the caller frees it
 * with raft_free), its length in *out_len; NULL when out of memory. */
void *snapz_pack(const void *text, size_t len, size_t *out_len);
/* Decompresses the frame buf[0..len) into a new malloc'd buffer *text (caller
 * frees) of *text_len bytes. */
enum snapz_rc snapz_unpack(const void *buf, size_t len, char **text, size_t *text_len, char *err, size_t errlen);

#endif
