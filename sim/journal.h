/* journal — an append-only file of small records, made durable with fsync.
 *
 * Each record is one line: 8 hex digits of the payload's CRC-32, a space, the
 * payload, '\n'. A payload is any bytes but '\n' (the agent writes compact JSON,
 * which escapes newlines). A crash can leave the last line torn (no '\n', or a
 * CRC that does not match); journal_open replays every record before the first
 * bad one and cuts the file there, so a torn tail is dropped, never replayed.
 *
 * Compaction writes the live records to "<path>.tmp", fsyncs it, renames it over
 * the journal and fsyncs the directory: a crash at any point leaves either the
 * old journal or the new one, whole.
 *
 * Not thread-safe: one owner. Errors: -1 with a message in err (errno kept). */
#ifndef LATTICE_JOURNAL_H
#define LATTICE_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

struct journal;

/* Called once per valid record, in file order. rec is borrowed for the call
 * and NUL-terminated (len excludes the NUL). A non-zero return stops the
 * replay and makes journal_open fail with that record's line number. */
typedef int (*journal_replay_fn)(void *ctx, const char *rec, size_t len);

/* Opens (creating it when missing) the journal at path, replays it into fn,
 * and cuts a torn tail. path is copied. On success *out owns the journal. */
int journal_open(struct journal **out, const char *path, journal_replay_fn fn, void *ctx, char *err,
		 size_t errlen);
/* mkdir -p (mode 0700): an agent's state dir and any parent it lacks.
 * Returns 0 when dir is a directory afterwards, else -1 with errno set. */
int journal_make_dir(const char *dir);
/* Closes the file and frees j (NULL is fine). Does not sync. */
void journal_close(struct journal *j);

/* Appends one record (rec borrowed; must not contain '\n'). Written with
 * write(2) but not synced: call journal_sync before relying on it. */
int journal_append(struct journal *j, const char *rec, size_t len, char *err, size_t errlen);
/* fsync: every record appended so far survives a crash once this returns 0. */
int journal_sync(struct journal *j, char *err, size_t errlen);

/* Compaction: begin, add every live record, commit (durable and atomic) or
 * abort. Records appended to j between begin and commit are lost: do not. */
int journal_compact_begin(struct journal *j, char *err, size_t errlen);
int journal_compact_add(struct journal *j, const char *rec, size_t len, char *err, size_t errlen);
int journal_compact_commit(struct journal *j, char *err, size_t errlen);
void journal_compact_abort(struct journal *j);

/* Records in the file (replayed + appended since open or the last compaction). */
uint64_t journal_records(const struct journal *j);
/* Bytes dropped from a torn tail at open (0 when the file ended cleanly). */
uint64_t journal_torn_bytes(const struct journal *j);
/* CRC-32 (IEEE, as zlib's crc32) of len bytes. */
uint32_t journal_crc32(const void *data, size_t len);

#endif
