/* store_spool — where the projection writer's queue goes beyond its memory
 * bound: an append-only file in the data dir holding batches in log order, each
 * as one record (store.c decides when; see store.h).
 *
 * The file lives only as long as the process: after a restart raft replays every
 * entry above the database's applied index, so the store removes any spool it
 * finds at open, and nothing is ever synced to disk.
 *
 * Record: u32 payload length, u32 CRC-32C of the payload (both little-endian),
 * then the payload: u64 index, u32 number of changes, and per change u8 kind,
 * u8 fresh, u16 number of parameters, and per parameter a u32 length
 * (0xffffffff = SQL NULL) and its bytes — the batch as the writer would send it.
 *
 * Not thread-safe: store.c appends under its lock and reads on the writer
 * thread (see the fields). */
#ifndef LATTICE_STORE_SPOOL_H
#define LATTICE_STORE_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct proj_batch;

struct spool {
	char *path;   /* owned */
	int fd;       /* -1: no file */
	uint64_t end; /* bytes of complete records written (the appender's) */
	uint64_t rd;  /* bytes read back (the reader's) */
	char *wbuf;   /* the appender's encoding buffer */
	size_t wcap;
	char *rbuf;   /* the reader's buffer */
	size_t rcap;
};

/* Sets up sp for the file at path (copied). Removes a file left there by an
 * earlier process. 0, or -1 with a message in err. */
int spool_init(struct spool *sp, const char *path, char *err, size_t errlen);
/* Closes and removes the file, frees the buffers. */
void spool_release(struct spool *sp);
/* Encodes b (borrowed) as one record into sp's buffer and returns its length,
 * or 0 with a message in err (out of memory, or a batch too large for one
 * record). spool_append then writes it. */
size_t spool_encode(struct spool *sp, const struct proj_batch *b, char *err, size_t errlen);
/* Writes the record spool_encode made at the end of the file (created on first
 * use). 0, or -1 with a message in err: the spool is unchanged then (a partial
 * record is past sp->end, overwritten by the next append). */
int spool_append(struct spool *sp, char *err, size_t errlen);
/* Reads the record at sp->rd, below limit (a value of sp->end), into a new batch
 * (*out, owned by the caller) and moves sp->rd past it. 0, or -1 with a message
 * in err (the file could not be read, or the record is corrupt: its checksum or
 * its fields do not match), sp->rd unchanged. */
int spool_read(struct spool *sp, uint64_t limit, struct proj_batch **out, char *err, size_t errlen);
/* Every record was read back (sp->rd == sp->end): removes the file. */
void spool_remove(struct spool *sp);

#endif
